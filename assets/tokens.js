// The home page's tokens: create one (shown once, with a pusher-js snippet
// that sends it), and revoke any. Calls the JSON API at /auth/tokens with
// this page's cookie; the gateway checks that the Origin is its own.
"use strict";

(function () {
  const form = document.getElementById("token-create");
  if (!form) return;
  const status = (text) => (document.getElementById("token-status").textContent = text);
  const table = document.getElementById("token-list");

  const revoke = async (button) => {
    button.disabled = true;
    const r = await fetch("/auth/tokens/" + encodeURIComponent(button.dataset.revoke), {
      method: "DELETE",
      credentials: "same-origin",
    }).catch(() => null);
    if (r && r.status === 204) {
      button.closest("tr").remove();
      status("Revoked: it no longer works.");
    } else {
      button.disabled = false;
      status("Not revoked: " + (r ? await message(r) : "the gateway did not answer"));
    }
  };
  const message = async (r) => {
    const body = await r.json().catch(() => ({}));
    return body.error || "HTTP " + r.status;
  };
  document.querySelectorAll("[data-revoke]").forEach((b) => b.addEventListener("click", () => revoke(b)));
  document.getElementById("token-copy").addEventListener("click", () => {
    const token = document.getElementById("token-value").textContent;
    navigator.clipboard
      .writeText(token)
      .then(() => status("Copied."))
      .catch(() => status("This browser would not copy it: select the token and copy it by hand."));
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = document.getElementById("token-name").value;
    const r = await fetch("/auth/tokens", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name }),
      credentials: "same-origin",
    }).catch(() => null);
    if (!r || r.status !== 201) {
      status("Not created: " + (r ? await message(r) : "the gateway did not answer"));
      return;
    }
    const made = await r.json();
    document.getElementById("token-value").textContent = made.token;
    const s = document.getElementById("token-snippet");
    const url = s.dataset.publicUrl;
    const auth = (path) =>
      `{\n    endpoint: "${url}${path}",\n    transport: "ajax",\n    headersProvider: () => ({ Authorization: "Bearer ${made.token}" }),\n  }`;
    s.textContent =
      `const pusher = new Pusher("${s.dataset.key}", {\n  cluster: "${s.dataset.cluster}",\n` +
      `  channelAuthorization: ${auth("/pusher/auth")},\n  userAuthentication: ${auth("/pusher/user-auth")},\n});`;
    document.getElementById("token-new").hidden = false;

    const row = table.tBodies[0].insertRow();
    row.dataset.id = made.id;
    for (const text of [made.name, "app", "just now", "never"]) row.insertCell().textContent = text;
    const button = document.createElement("button");
    button.className = "button";
    button.type = "button";
    button.dataset.revoke = made.id;
    button.textContent = "Revoke";
    button.setAttribute("aria-label", "Revoke " + made.name);
    button.addEventListener("click", () => revoke(button));
    row.insertCell().appendChild(button);
    table.hidden = false;
    const none = document.getElementById("no-tokens");
    if (none) none.remove();
    form.reset();
    status("Created " + made.name + ".");
  });
})();
