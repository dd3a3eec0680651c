// The home page's channel tester: on a click (never on page load, so a link
// cannot make someone join a presence channel and reveal who they are), asks
// /pusher/auth exactly as pusher-js would, shows the raw answer, and, when a
// Pusher server is configured, subscribes for real with pusher-js.
"use strict";

(function () {
  const tester = document.getElementById("try-auth");
  const button = document.getElementById("try-run");
  if (!tester || !button) return;
  button.addEventListener("click", () => {
    button.disabled = true;
    run(tester.dataset.channel);
  });
})();

function run(channel) {
  const show = (id, text, state) => {
    const el = document.getElementById(id);
    el.textContent = text;
    if (state) el.dataset.state = state;
  };

  // A socket id of the form Pusher servers hand out.
  const part = () => String(Math.floor(Math.random() * 1e9));
  const socketId = part() + "." + part();
  show("auth-request", "POST /pusher/auth\nsocket_id=" + socketId + "&channel_name=" + channel);
  fetch("/pusher/auth", {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ socket_id: socketId, channel_name: channel }),
    credentials: "same-origin",
  })
    .then(async (r) => {
      const text = await r.text();
      let pretty = text;
      try { pretty = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* not JSON */ }
      show("auth-response", "HTTP " + r.status + "\n" + pretty, String(r.status));
    })
    .catch((e) => show("auth-response", "request failed: " + e, "error"));

  const live = document.getElementById("live");
  if (!live || typeof Pusher === "undefined") return;
  const d = live.dataset;
  const options = {
    cluster: d.cluster,
    forceTLS: d.tls === "true",
    enabledTransports: ["ws", "wss"],
    channelAuthorization: { endpoint: "/pusher/auth", transport: "ajax" },
  };
  if (d.host) {
    options.wsHost = d.host;
    options.wsPort = Number(d.port);
    options.wssPort = Number(d.port);
  }
  const pusher = new Pusher(d.key, options);
  const status = (text, state) => show("live-status", text, state);
  status("connecting to " + (d.host ? d.host + ":" + d.port : "cluster " + d.cluster) + "…", "connecting");
  pusher.connection.bind("state_change", (s) => {
    if (s.current === "unavailable" || s.current === "failed") {
      status("no Pusher server reachable (" + s.current + ")", "unavailable");
    }
  });
  pusher.connection.bind("error", (e) => {
    const code = e && e.error && e.error.data && e.error.data.code;
    if (code) status("the Pusher server refused: " + code + " " + (e.error.data.message || ""), "refused");
  });
  const sub = pusher.subscribe(channel);
  sub.bind("pusher:subscription_succeeded", (members) => {
    let text = "subscribed to " + channel;
    if (members && typeof members.each === "function") {
      const logins = [];
      members.each((m) => logins.push(m.info && m.info.login));
      text += " with members: " + logins.join(", ");
    }
    status(text, "subscribed");
  });
  sub.bind("pusher:subscription_error", (e) => {
    status("subscription refused (HTTP " + (e && e.status) + ")", "denied");
  });
}
