// Real subscriptions: pusher-js (the official client, in Node) joins channels
// on a real Pusher-protocol server (sockudo) with channelgate as its
// authorization and user-authentication endpoint, as two logged-in people.
//
// Env: GATEWAY_URL, COOKIE_AUTHORIZED, LOGIN_AUTHORIZED, COOKIE_OTHER,
// LOGIN_OTHER, PUSHER_HOST, PUSHER_PORT, PUSHER_APP_ID, PUSHER_KEY,
// PUSHER_SECRET, PUSHER_MASTER_KEY_BASE64.
//
// The authorized person may join PRIVATE, PRESENCE and ENCRYPTED below; the
// other may join PRESENCE only. Exits non-zero on the first broken promise.
import Pusher from "pusher-js";
import PusherServer from "pusher";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const PRIVATE = process.env.CHANNEL_PRIVATE || "private-ops";
const PRESENCE = process.env.CHANNEL_PRESENCE || "presence-org-initech";
const ENCRYPTED = process.env.CHANNEL_ENCRYPTED || "private-encrypted-initech-secrets";
const DENIED = process.env.CHANNEL_DENIED || "private-user-nobody-else";
const TIMEOUT_MS = 10_000;

// pusher-js's Node XHR refuses to set a Cookie header, which a browser sends
// by itself. Lift that check so the default ajax transport (and its own
// HTTP error handling) is what gets exercised, with the session cookie.
const createXHR = Pusher.Runtime.createXHR;
Pusher.Runtime.createXHR = function (...args) {
  const xhr = createXHR.apply(this, args);
  xhr.setDisableHeaderCheck(true);
  return xhr;
};

const proved = [];
const prove = (line) => {
  proved.push(line);
  console.log(`realtime: ${line}`);
};
const fail = (why) => {
  console.error(`realtime: FAILED: ${why}`);
  process.exit(1);
};
const within = (promise, what) =>
  Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), TIMEOUT_MS)),
  ]);

function client(cookie) {
  const headers = { Cookie: cookie };
  const pusher = new Pusher(env("PUSHER_KEY"), {
    cluster: "mt1",
    wsHost: env("PUSHER_HOST"),
    wsPort: Number(env("PUSHER_PORT")),
    forceTLS: false,
    enabledTransports: ["ws"],
    channelAuthorization: { endpoint: `${env("GATEWAY_URL")}/pusher/auth`, transport: "ajax", headers },
    userAuthentication: { endpoint: `${env("GATEWAY_URL")}/pusher/user-auth`, transport: "ajax", headers },
  });
  pusher.connection.bind("error", (e) => {
    const data = e && e.error && e.error.data;
    if (data && data.code) console.error(`realtime: connection error ${data.code} ${data.message}`);
  });
  return pusher;
}

function subscribed(pusher, name) {
  return within(
    new Promise((resolve, reject) => {
      const channel = pusher.subscribe(name);
      channel.bind("pusher:subscription_succeeded", (members) => resolve({ channel, members }));
      channel.bind("pusher:subscription_error", (e) => reject(new Error(`subscription to ${name} refused: ${JSON.stringify(e)}`)));
      pusher.connection.bind("error", (e) => {
        const data = e && e.error && e.error.data;
        if (data && data.code) reject(new Error(`server refused ${name}: ${data.code} ${data.message}`));
      });
    }),
    `subscription to ${name}`,
  );
}

function refused(pusher, name) {
  return within(
    new Promise((resolve, reject) => {
      const channel = pusher.subscribe(name);
      channel.bind("pusher:subscription_succeeded", () => reject(new Error(`${name} was joined but must be refused`)));
      channel.bind("pusher:subscription_error", resolve);
    }),
    `the refusal of ${name}`,
  );
}

function received(channel, event) {
  return within(new Promise((resolve) => channel.bind(event, resolve)), `event ${event} on ${channel.name}`);
}

async function main() {
  const server = new PusherServer({
    appId: env("PUSHER_APP_ID"),
    key: env("PUSHER_KEY"),
    secret: env("PUSHER_SECRET"),
    encryptionMasterKeyBase64: env("PUSHER_MASTER_KEY_BASE64"),
    host: env("PUSHER_HOST"),
    port: env("PUSHER_PORT"),
    useTLS: false,
  });
  const authorizedLogin = env("LOGIN_AUTHORIZED");
  const otherLogin = env("LOGIN_OTHER");
  const authorized = client(env("COOKIE_AUTHORIZED"));
  const other = client(env("COOKIE_OTHER"));

  // Private: one person authorized, one not, on the same channel.
  const { channel: privateChannel } = await subscribed(authorized, PRIVATE);
  prove(`${authorizedLogin} subscribed to ${PRIVATE}`);
  const refusal = await refused(other, PRIVATE);
  if (refusal.status !== 403) fail(`${otherLogin} was refused ${PRIVATE} without a 403: ${JSON.stringify(refusal)}`);
  prove(`${otherLogin} was refused ${PRIVATE}; pusher-js surfaced HTTP ${refusal.status}`);
  let otherGotPrivate = false;
  other.bind_global((event, data) => {
    if (event === "secret-message") otherGotPrivate = true;
  });
  const message = received(privateChannel, "secret-message");
  await server.trigger(PRIVATE, "secret-message", { text: "for the team only" });
  const got = await message;
  if (got.text !== "for the team only") fail(`wrong message on ${PRIVATE}: ${JSON.stringify(got)}`);
  await new Promise((r) => setTimeout(r, 500));
  if (otherGotPrivate) fail(`${otherLogin} received a message on ${PRIVATE}`);
  prove(`a message triggered on ${PRIVATE} reached ${authorizedLogin} only`);

  // A denied channel for the authorized person too.
  const denied = await refused(authorized, DENIED);
  if (denied.status !== 403) fail(`${DENIED} refused without a 403: ${JSON.stringify(denied)}`);
  prove(`${authorizedLogin} was refused ${DENIED} with HTTP 403`);

  // Presence: members carry the GitHub login.
  await subscribed(authorized, PRESENCE);
  const { members } = await subscribed(other, PRESENCE);
  const logins = [];
  members.each((m) => logins.push(m.info.login));
  for (const login of [authorizedLogin, otherLogin]) {
    if (!logins.includes(login)) fail(`presence members ${JSON.stringify(logins)} lack ${login}`);
  }
  const me = members.me;
  if (!me || me.info.login !== otherLogin || !/^\d+$/.test(me.id)) fail(`presence me is ${JSON.stringify(me)}`);
  prove(`${PRESENCE} members are ${logins.sort().join(", ")} (GitHub logins; user ids are GitHub ids)`);

  // Encrypted: the server SDK encrypts, pusher-js decrypts with the shared secret.
  const { channel: encrypted } = await subscribed(authorized, ENCRYPTED);
  const secret = received(encrypted, "sealed");
  await server.trigger(ENCRYPTED, "sealed", { text: "end to end" });
  const opened = await secret;
  if (opened.text !== "end to end") fail(`encrypted message read as ${JSON.stringify(opened)}`);
  prove(`a message on ${ENCRYPTED} arrived and decrypted with the shared_secret`);

  // User authentication.
  const signedIn = within(
    new Promise((resolve) =>
      authorized.connection.bind("message", (m) => {
        if (m.event === "pusher:signin_success") resolve(m);
      }),
    ),
    "pusher:signin_success",
  );
  authorized.signin();
  const signin = await signedIn;
  const user = JSON.parse(signin.data.user_data);
  if (user.user_info.login !== authorizedLogin) fail(`signed in as ${signin.data.user_data}`);
  prove(`pusher.signin() succeeded as GitHub id ${user.id} (${user.user_info.login})`);

  authorized.disconnect();
  other.disconnect();
  console.log(`realtime: ${proved.length} checks passed`);
  process.exit(0);
}

main().catch((e) => fail(e.stack || String(e)));
