// The device-login example (examples/device-login/client.mjs) run as its
// user would run it, against the demo gateway and a real Pusher-protocol
// server (sockudo): it signs in with the device flow (the stand-in approves
// at once), subscribes with a bearer token and no cookie, is refused the
// channel its person may not join, and prints an event sent to the one it
// may join.
//
// Env: GATEWAY_URL, PUSHER_HOST, PUSHER_PORT, PUSHER_APP_ID, PUSHER_KEY,
// PUSHER_SECRET, CHANNEL_ALLOWED, CHANNEL_DENIED, LOGIN. Exits non-zero on
// the first broken promise.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import PusherServer from "pusher";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const ALLOWED = env("CHANNEL_ALLOWED");
const DENIED = env("CHANNEL_DENIED");
const fail = (why) => {
  console.error(`example: FAILED: ${why}`);
  process.exit(1);
};
setTimeout(() => fail("timed out after 20 s"), 20_000).unref();

const child = spawn(process.execPath, ["client.mjs", "--once", ALLOWED, DENIED], {
  cwd: new URL("../examples/device-login/", import.meta.url),
  env: { ...process.env, TOKEN_NAME: "interop example" },
  stdio: ["ignore", "pipe", "inherit"],
});
const server = new PusherServer({
  appId: env("PUSHER_APP_ID"),
  key: env("PUSHER_KEY"),
  secret: env("PUSHER_SECRET"),
  host: env("PUSHER_HOST"),
  port: env("PUSHER_PORT"),
  useTLS: false,
});
const seen = new Set();
const payload = { hello: "from the interop suite", at: Date.now() };
let sent = false;
let received = false;
createInterface({ input: child.stdout }).on("line", async (line) => {
  console.log(`example> ${line}`);
  if (line === `signed in as ${env("LOGIN")}`) seen.add("signed in");
  if (line === `subscribed to ${ALLOWED}`) seen.add("subscribed");
  if (line === `refused ${DENIED}: HTTP 403`) seen.add("refused");
  if (line === `subscribed to ${DENIED}`) fail(`${DENIED} was authorized`);
  if (line.startsWith("{")) {
    const event = JSON.parse(line);
    if (event.channel !== ALLOWED || event.event !== "greeting" || event.data.at !== payload.at) {
      fail(`unexpected event ${line}`);
    }
    received = true;
  }
  if (!sent && seen.has("signed in") && seen.has("subscribed") && seen.has("refused")) {
    sent = true;
    await server.trigger(ALLOWED, "greeting", payload);
  }
});
child.on("exit", (code) => {
  if (code !== 0) fail(`the example exited with ${code}`);
  if (!received) fail(`the example ended without the event (saw: ${[...seen].join(", ")})`);
  console.log("example: device login, bearer-authorized subscription, refusal and event all as promised");
});
