// Signature oracle: for every case channelgate answered, compute the answer
// with Pusher's official Node server SDK (npm `pusher`) from the same inputs
// and compare them field by field, byte for byte.
//
// Usage: node oracle.mjs CASES.json
// Env: PUSHER_APP_ID, PUSHER_KEY, PUSHER_SECRET, PUSHER_MASTER_KEY_BASE64.
//
// Each case: {kind: "channel"|"user", socket_id, channel, user_id,
// user_info, body} where body is channelgate's raw response text.
import { readFileSync } from "node:fs";
import Pusher from "pusher";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const sdkVersion = JSON.parse(
  readFileSync(new URL("./node_modules/pusher/package.json", import.meta.url), "utf8"),
).version;

const pusher = new Pusher({
  appId: env("PUSHER_APP_ID"),
  key: env("PUSHER_KEY"),
  secret: env("PUSHER_SECRET"),
  encryptionMasterKeyBase64: env("PUSHER_MASTER_KEY_BASE64"),
  host: "127.0.0.1",
  useTLS: false,
});

const cases = JSON.parse(readFileSync(process.argv[2], "utf8"));
const counts = {};
const failures = [];
for (const c of cases) {
  let kind;
  let expected;
  if (c.kind === "user") {
    kind = "user authentication";
    expected = pusher.authenticateUser(c.socket_id, { id: c.user_id, user_info: c.user_info });
  } else if (c.channel.startsWith("presence-")) {
    kind = "presence";
    expected = pusher.authorizeChannel(c.socket_id, c.channel, { user_id: c.user_id, user_info: c.user_info });
  } else {
    kind = c.channel.startsWith("private-encrypted-") ? "private-encrypted" : "private";
    expected = pusher.authorizeChannel(c.socket_id, c.channel);
  }
  const got = JSON.parse(c.body);
  const keys = (o) => Object.keys(o).sort().join(",");
  const same =
    keys(got) === keys(expected) &&
    Object.keys(expected).every((k) => Buffer.from(got[k], "utf8").equals(Buffer.from(expected[k], "utf8")));
  if (same) {
    counts[kind] = (counts[kind] || 0) + 1;
  } else {
    failures.push({ case: c, expected });
  }
}

if (failures.length > 0) {
  for (const f of failures.slice(0, 5)) {
    console.error("MISMATCH", JSON.stringify(f, null, 2));
  }
  console.error(`oracle: ${failures.length} of ${cases.length} cases differ from Pusher's Node SDK`);
  process.exit(1);
}
const summary = Object.entries(counts).map(([k, n]) => `${n} ${k}`).join(", ");
console.log(`oracle: all ${cases.length} answers (${summary}) equal Pusher's official Node SDK (pusher ${sdkVersion}) field for field, byte for byte`);
