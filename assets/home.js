// The home page's channel tester: on a click (never on page load, so a link
// cannot make someone join a presence channel and reveal who they are),
// signs in and asks /pusher/auth exactly as pusher-js would, shows the raw
// answer, and, when a Pusher server is configured, subscribes for real with
// pusher-js, signing in first with pusher.signin() (so the gateway can end
// this connection if the person loses access), and says what ended and why
// if it does.
"use strict";

// The page's own connection, ended when its person logs out (their other
// devices keep theirs: logging out here is not a revocation).
let connection = null;
(function () {
  const logout = document.querySelector('form[action="/auth/logout"]');
  if (logout) logout.addEventListener("submit", () => connection && connection.disconnect());
})();

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
  // Signed in first, as pusher-js does when the page calls pusher.signin():
  // a gateway with [revocation] require_signin signs channels only for
  // connections that signed in. A refused sign-in is left to /pusher/auth
  // to explain.
  show(
    "auth-request",
    "POST /pusher/user-auth\nsocket_id=" + socketId +
      "\n\nPOST /pusher/auth\nsocket_id=" + socketId + "&channel_name=" + channel,
  );
  const post = (path, fields) =>
    fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(fields),
      credentials: "same-origin",
    });
  post("/pusher/user-auth", { socket_id: socketId })
    .catch(() => null)
    .then(() => post("/pusher/auth", { socket_id: socketId, channel_name: channel }))
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
    userAuthentication: { endpoint: "/pusher/user-auth", transport: "ajax" },
  };
  if (d.host) {
    options.wsHost = d.host;
    options.wsPort = Number(d.port);
    options.wssPort = Number(d.port);
  }
  const pusher = new Pusher(d.key, options);
  connection = pusher;
  // Signed-in connections are the ones Pusher can end by user id.
  pusher.signin();
  let ended = false;
  const status = (text, state) => {
    if (!ended) show("live-status", text, state);
  };
  status("connecting to " + (d.host ? d.host + ":" + d.port : "cluster " + d.cluster) + "…", "connecting");
  pusher.connection.bind("state_change", (s) => {
    if (s.current === "unavailable" || s.current === "failed") {
      status("no Pusher server reachable (" + s.current + ")", "unavailable");
    }
  });
  pusher.connection.bind("error", (e) => {
    const code = e && e.error && e.error.data && e.error.data.code;
    if (code === 4009) {
      // The gateway ended this connection: a grant was taken back.
      status("the connection was ended by the gateway; asking why…", "ended");
      ended = true;
      explainEnd(channel);
    } else if (code) {
      status("the Pusher server refused: " + code + " " + (e.error.data.message || ""), "refused");
    }
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

// Says which access ended and why, from /auth/me.
function explainEnd(channel) {
  const el = document.getElementById("live-status");
  fetch("/auth/me", { credentials: "same-origin" })
    .then(async (r) => {
      if (r.status === 401) {
        el.textContent = "Your access ended: you are no longer logged in (GitHub no longer accepts your login). Log in again.";
        return;
      }
      const me = await r.json();
      const e = me.ended;
      if (e && e.lost && e.lost.length) {
        el.textContent = "Your access ended: " + e.lost.join(", ") + " (" + e.reason + "). " +
          "The connection was closed; reload to subscribe to what you still may.";
      } else {
        el.textContent = "The gateway ended this connection (" + channel + "); reload to subscribe again.";
      }
    })
    .catch(() => { el.textContent = "The gateway ended this connection; reload to subscribe again."; });
}
