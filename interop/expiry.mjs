// An expiring GitHub token is not a revocation, against a real
// Pusher-protocol server (sockudo): a person subscribes through pusher-js and
// signs in while GitHub's tokens (the stand-in's) live a few seconds; their
// token expires, the gateway's sweep re-reads them after it, and their
// connection must stay open (no pusher:error 4009) and subscribed; a new
// subscription after the expiry is signed (the gateway refreshed the token).
//
// Env: GATEWAY_URL, COOKIE, LOGIN, CHANNEL, CHANNEL_AFTER, WAIT_MS,
// PUSHER_HOST, PUSHER_PORT, PUSHER_KEY.
import Pusher from "pusher-js";

import { env, letXhrSendCookies, reporter, within } from "./common.mjs";

const TIMEOUT_MS = 10_000;

const { prove, fail } = reporter("expiry");
letXhrSendCookies(Pusher);

const gateway = env("GATEWAY_URL");
const headers = { Cookie: env("COOKIE") };
const pusher = new Pusher(env("PUSHER_KEY"), {
  cluster: "mt1",
  wsHost: env("PUSHER_HOST"),
  wsPort: Number(env("PUSHER_PORT")),
  forceTLS: false,
  enabledTransports: ["ws"],
  channelAuthorization: { endpoint: `${gateway}/pusher/auth`, transport: "ajax", headers },
  userAuthentication: { endpoint: `${gateway}/pusher/user-auth`, transport: "ajax", headers },
});
const errors = [];
pusher.connection.bind("error", (e) => {
  const code = e && e.error && e.error.data && e.error.data.code;
  if (code) errors.push(code);
});

function subscribed(name) {
  return within(
    new Promise((resolve, reject) => {
      const channel = pusher.subscribe(name);
      channel.bind("pusher:subscription_succeeded", () => resolve(channel));
      channel.bind("pusher:subscription_error", (e) => reject(new Error(`${name} refused: ${JSON.stringify(e)}`)));
    }),
    TIMEOUT_MS,
    `the subscription to ${name}`,
  );
}

async function main() {
  const login = env("LOGIN");
  const channel = env("CHANNEL");
  const after = env("CHANNEL_AFTER");
  const waitMs = Number(env("WAIT_MS"));

  pusher.signin();
  await subscribed(channel);
  prove(`${login} signed in and joined ${channel}`);

  await new Promise((r) => setTimeout(r, waitMs));
  if (errors.includes(4009) || pusher.connection.state !== "connected") {
    fail(`the connection did not stay after the token expired (state ${pusher.connection.state}, errors ${errors})`);
  }
  if (!pusher.channel(channel) || !pusher.channel(channel).subscribed) fail(`${channel} is no longer subscribed`);
  prove(`${waitMs} ms later, past the token's expiry and the sweep, ${login} is still connected and subscribed to ${channel}`);

  await subscribed(after);
  prove(`a new subscription after the expiry, to ${after}, is signed`);
  pusher.disconnect();
  process.exit(0);
}

main().catch((e) => fail(e.stack || String(e)));
