// Access taken back live, against a real Pusher-protocol server (sockudo):
// two people subscribe through pusher-js with channelgate's signatures and
// sign in; then one of them loses a channel on GitHub (a POST to the
// stand-in's admin page, which sends a signed webhook when the gateway takes
// them, or changes GitHub silently when it does not). The loser's connection
// must be ended by the server (pusher:error 4009) within DEADLINE_MS of the
// change; the other person's must stay; after reconnecting, the lost channel
// is refused with a 403 and the kept one is joined again. With AFTER=unknown
// (GitHub could not confirm the change, and the gateway failed closed) both
// are refused with a 503 until GitHub answers.
//
// Env: GATEWAY_URL, ADMIN_URL, CHANGE (the admin form, urlencoded),
// COOKIE_LOSER, LOGIN_LOSER, COOKIE_KEEPER, LOGIN_KEEPER, LOST, KEPT,
// DEADLINE_MS, PUSHER_HOST, PUSHER_PORT, PUSHER_KEY; AFTER (optional).
import Pusher from "pusher-js";

import { env, letXhrSendCookies, reporter, within } from "./common.mjs";

const TIMEOUT_MS = 10_000;
const DEADLINE_MS = Number(env("DEADLINE_MS"));

const { prove, fail } = reporter("revocation");
letXhrSendCookies(Pusher);

function client(cookie) {
  const headers = { Cookie: cookie };
  const gateway = env("GATEWAY_URL");
  const pusher = new Pusher(env("PUSHER_KEY"), {
    cluster: "mt1",
    wsHost: env("PUSHER_HOST"),
    wsPort: Number(env("PUSHER_PORT")),
    forceTLS: false,
    enabledTransports: ["ws"],
    channelAuthorization: { endpoint: `${gateway}/pusher/auth`, transport: "ajax", headers },
    userAuthentication: { endpoint: `${gateway}/pusher/user-auth`, transport: "ajax", headers },
  });
  // Every connection-level error code, in order.
  pusher.errors = [];
  pusher.connection.bind("error", (e) => {
    const code = e && e.error && e.error.data && e.error.data.code;
    if (code) pusher.errors.push(code);
  });
  return pusher;
}

function subscribed(pusher, name) {
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

function refused(pusher, name) {
  return within(
    new Promise((resolve, reject) => {
      const channel = pusher.subscribe(name);
      channel.bind("pusher:subscription_succeeded", () => reject(new Error(`${name} was joined but must be refused`)));
      channel.bind("pusher:subscription_error", resolve);
    }),
    TIMEOUT_MS,
    `the refusal of ${name}`,
  );
}

async function signedIn(pusher) {
  pusher.signin();
  await within(
    new Promise((resolve) => {
      const wait = () => (pusher.user.signinDonePromise ? pusher.user.signinDonePromise.then(resolve) : setTimeout(wait, 20));
      wait();
    }),
    TIMEOUT_MS,
    "pusher.signin()",
  );
  if (!pusher.user.user_data) fail("pusher.signin() did not sign in");
}

function ended(pusher) {
  return new Promise((resolve) => {
    pusher.connection.bind("error", (e) => {
      const code = e && e.error && e.error.data && e.error.data.code;
      if (code === 4009) resolve(Date.now());
    });
  });
}

async function main() {
  const LOST = env("LOST");
  const KEPT = env("KEPT");
  const loserLogin = env("LOGIN_LOSER");
  const keeperLogin = env("LOGIN_KEEPER");

  const loser = client(env("COOKIE_LOSER"));
  const keeper = client(env("COOKIE_KEEPER"));
  await signedIn(loser);
  await signedIn(keeper);
  await subscribed(loser, LOST);
  await subscribed(loser, KEPT);
  await subscribed(keeper, KEPT);
  prove(`${loserLogin} signed in and joined ${LOST} and ${KEPT}; ${keeperLogin} joined ${KEPT}`);

  const loserEnded = ended(loser);
  const keeperEnded = ended(keeper);
  const changedAt = Date.now();
  const change = await fetch(env("ADMIN_URL"), {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: env("CHANGE"),
    redirect: "manual",
  });
  if (change.status !== 303) fail(`the admin page answered ${change.status}`);
  prove(`GitHub changed: ${decodeURIComponent(env("CHANGE")).replaceAll("&", " ")}`);

  const endedAt = await within(loserEnded, DEADLINE_MS + 2_000, `the end of ${loserLogin}'s connection`);
  const took = endedAt - changedAt;
  if (took > DEADLINE_MS) fail(`${loserLogin}'s connection ended ${took} ms after the change; the bound is ${DEADLINE_MS} ms`);
  prove(`${loserLogin}'s connection was ended by the server (pusher:error 4009) ${took} ms after the change (bound ${DEADLINE_MS} ms)`);

  // The other person lost nothing: their connection stays.
  const stayed = await Promise.race([keeperEnded.then(() => false), new Promise((r) => setTimeout(() => r(true), 1_500))]);
  if (!stayed || keeper.connection.state !== "connected") {
    fail(`${keeperLogin}'s connection did not stay (state ${keeper.connection.state}, errors ${keeper.errors})`);
  }
  prove(`${keeperLogin}, who lost nothing, is still connected and subscribed to ${KEPT}`);

  // pusher-js does not reconnect after 4009 by itself; the page reconnects.
  loser.disconnect();
  const again = client(env("COOKIE_LOSER"));
  if (process.env.AFTER === "unknown") {
    for (const name of [LOST, KEPT]) {
      const denial = await refused(again, name);
      if (denial.status !== 503) fail(`${name} refused without a 503 after reconnecting: ${JSON.stringify(denial)}`);
    }
    prove(`after reconnecting, ${loserLogin}'s access is unknown until GitHub answers: ${LOST} and ${KEPT} are refused with HTTP 503`);
  } else {
    const denial = await refused(again, LOST);
    if (denial.status !== 403) fail(`${LOST} refused without a 403 after reconnecting: ${JSON.stringify(denial)}`);
    await subscribed(again, KEPT);
    prove(`after reconnecting, ${LOST} is refused with HTTP 403 and ${KEPT} is joined again`);
  }

  again.disconnect();
  keeper.disconnect();
  process.exit(0);
}

main().catch((e) => fail(e.stack || String(e)));
