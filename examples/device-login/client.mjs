// A program without a browser (a command-line tool, a bot) on Pusher
// channels that channelgate authorizes:
//
// 1. signs in with GitHub's device flow through the gateway
//    (POST /auth/device, then POST /auth/device/token until approved),
//    which gives a channelgate bearer token (cg_...), never GitHub's token;
// 2. signs in to Pusher (pusher.signin()) so the gateway can end the
//    connection if access is taken back (hosted Pusher ends only signed-in
//    connections, and a gateway with [revocation] require_signin signs
//    channels only for them), and subscribes with pusher-js, sending that
//    token with every request (headersProvider);
// 3. prints what happens, one line each: events as JSON.
//
//   npm ci
//   GATEWAY_URL=http://127.0.0.1:8080 PUSHER_KEY=channelgate-demo-key \
//     PUSHER_HOST=127.0.0.1 PUSHER_PORT=6001 node client.mjs private-supersecretchat
//
// Env: GATEWAY_URL and PUSHER_KEY (required); PUSHER_CLUSTER (default mt1),
// or PUSHER_HOST and PUSHER_PORT for a self-hosted server without TLS;
// CHANNELGATE_TOKEN to skip the sign-in with a token made on the gateway's
// home page; TOKEN_NAME, what the token is called on that page.
// Arguments: channel names; --once exits after the first event.
import Pusher from "pusher-js";

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) {
    console.error(`${name} is not set`);
    process.exit(2);
  }
  return value;
};
const gateway = env("GATEWAY_URL").replace(/\/$/, "");
const once = process.argv.includes("--once");
const channels = process.argv.slice(2).filter((a) => a !== "--once");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function post(path, body) {
  const response = await fetch(gateway + path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json().catch(() => ({})) };
}

// GitHub's device flow, through the gateway. Polls no faster than asked.
async function deviceLogin(name) {
  const start = await post("/auth/device", { name });
  if (start.status !== 200) {
    throw new Error(`the gateway would not start a sign-in: HTTP ${start.status} ${start.body.error ?? ""}`);
  }
  const { device_code, user_code, verification_uri, expires_in } = start.body;
  let interval = start.body.interval;
  console.log(`To sign in, open ${verification_uri} and enter the code ${user_code}`);
  const deadline = Date.now() + expires_in * 1000;
  while (Date.now() < deadline) {
    await sleep(interval * 1000);
    const poll = await post("/auth/device/token", { device_code });
    if (poll.status === 200) return poll.body.access_token;
    switch (poll.body.error) {
      case "authorization_pending":
        break;
      case "slow_down":
        interval = poll.body.interval ?? interval + 5;
        break;
      default:
        throw new Error(`sign-in failed: ${poll.body.error ?? `HTTP ${poll.status}`} ${poll.body.error_description ?? ""}`);
    }
  }
  throw new Error("the code expired before anyone approved it");
}

const token = process.env.CHANNELGATE_TOKEN || (await deviceLogin(env("TOKEN_NAME", "device-login example")));
const me = await fetch(`${gateway}/auth/me`, { headers: { Authorization: `Bearer ${token}` } });
if (me.status !== 200) {
  console.error(`the gateway refused the token: HTTP ${me.status}`);
  process.exit(1);
}
console.log(`signed in as ${(await me.json()).login}`);

// Every authorization request carries the token; no cookie is involved.
const headersProvider = () => ({ Authorization: `Bearer ${token}` });
const options = {
  cluster: env("PUSHER_CLUSTER", "mt1"),
  channelAuthorization: { endpoint: `${gateway}/pusher/auth`, transport: "ajax", headersProvider },
  userAuthentication: { endpoint: `${gateway}/pusher/user-auth`, transport: "ajax", headersProvider },
};
if (process.env.PUSHER_HOST) {
  Object.assign(options, {
    wsHost: process.env.PUSHER_HOST,
    wsPort: Number(env("PUSHER_PORT", "80")),
    forceTLS: false,
    enabledTransports: ["ws"],
  });
}
const pusher = new Pusher(env("PUSHER_KEY"), options);
// Before subscribing: pusher-js sends the sign-in and the subscriptions
// together once connected, and the gateway waits for the sign-in.
pusher.signin();
pusher.connection.bind("state_change", ({ current }) => console.log(`connection ${current}`));
pusher.bind("pusher:error", (error) => {
  if (error?.code === 4009) console.log("the gateway ended this connection: access was taken back");
});
for (const name of channels) {
  const channel = pusher.subscribe(name);
  channel.bind("pusher:subscription_succeeded", () => console.log(`subscribed to ${name}`));
  channel.bind("pusher:subscription_error", (e) => console.log(`refused ${name}: HTTP ${e.status}`));
  channel.bind_global((event, data) => {
    if (event.startsWith("pusher:")) return;
    console.log(JSON.stringify({ channel: name, event, data }));
    if (once) {
      pusher.disconnect();
      process.exit(0);
    }
  });
}
