// Channels only for connections that signed in ([revocation] require_signin),
// against a real Pusher-protocol server (sockudo): pusher-js as the same
// logged-in person on two connections. The first calls pusher.signin() and
// subscribes at once (pusher-js sends both when it connects, in either
// order): its subscription succeeds. The second never signs in: its
// subscription fails with the gateway's 403 once SIGNIN_WAIT_MS has passed.
//
// Env: GATEWAY_URL, COOKIE, LOGIN, CHANNEL, SIGNIN_WAIT_MS, PUSHER_HOST,
// PUSHER_PORT, PUSHER_KEY.
import Pusher from "pusher-js";

import { env, letXhrSendCookies, reporter, within } from "./common.mjs";

const TIMEOUT_MS = 10_000;

const { prove, fail } = reporter("signin");
letXhrSendCookies(Pusher);

function client() {
  const headers = { Cookie: env("COOKIE") };
  const gateway = env("GATEWAY_URL");
  return new Pusher(env("PUSHER_KEY"), {
    cluster: "mt1",
    wsHost: env("PUSHER_HOST"),
    wsPort: Number(env("PUSHER_PORT")),
    forceTLS: false,
    enabledTransports: ["ws"],
    channelAuthorization: { endpoint: `${gateway}/pusher/auth`, transport: "ajax", headers },
    userAuthentication: { endpoint: `${gateway}/pusher/user-auth`, transport: "ajax", headers },
  });
}

/** Resolves with "subscribed" or with the subscription error's event. */
function outcome(pusher, name) {
  return within(
    new Promise((resolve) => {
      const channel = pusher.subscribe(name);
      channel.bind("pusher:subscription_succeeded", () => resolve("subscribed"));
      channel.bind("pusher:subscription_error", resolve);
    }),
    TIMEOUT_MS,
    `the answer to the subscription to ${name}`,
  );
}

async function main() {
  const login = env("LOGIN");
  const channel = env("CHANNEL");
  const waitMs = Number(env("SIGNIN_WAIT_MS"));

  // Signs in and subscribes together, as a page does on load.
  const signed = client();
  signed.signin();
  const joined = await outcome(signed, channel);
  if (joined !== "subscribed") fail(`${login} signed in but was refused ${channel}: ${JSON.stringify(joined)}`);
  await within(signed.user.signinDonePromise, TIMEOUT_MS, "pusher.signin()");
  if (!signed.user.user_data) fail("pusher.signin() did not sign in");
  prove(`${login} called pusher.signin() and subscribed at once: ${channel} joined, signed in as ${signed.user.user_data.id}`);

  // Never signs in: refused after the gateway's wait.
  const unsigned = client();
  const started = Date.now();
  const refusal = await outcome(unsigned, channel);
  const took = Date.now() - started;
  if (refusal === "subscribed") fail(`${channel} was joined by a connection that never signed in`);
  if (refusal.status !== 403) fail(`${channel} refused without a 403: ${JSON.stringify(refusal)}`);
  if (took < waitMs) fail(`refused after ${took} ms, before the gateway's signin_wait of ${waitMs} ms`);
  prove(`a connection of ${login} that never signed in was refused ${channel} with HTTP 403 after ${took} ms (signin_wait ${waitMs} ms)`);

  signed.disconnect();
  unsigned.disconnect();
  process.exit(0);
}

main().catch((e) => fail(e.stack || String(e)));
