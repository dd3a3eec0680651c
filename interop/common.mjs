// What the interop scripts that drive pusher-js in Node share: required
// environment variables, their report lines, a timeout on any promise, and
// pusher-js's XHR let to send the session cookie as a browser would.

/** The environment variable `name`; throws when it is not set. */
export const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

/** `prove(line)` and `fail(why)` for the script `name`, each on its own line. */
export const reporter = (name) => ({
  prove: (line) => console.log(`${name}: ${line}`),
  fail: (why) => {
    console.error(`${name}: FAILED: ${why}`);
    process.exit(1);
  },
});

/** `promise`, or a rejection naming `what` after `ms`. */
export const within = (promise, ms, what) =>
  Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)),
  ]);

/** Lets pusher-js's own XHR (node's xmlhttprequest) send a Cookie header. */
export const letXhrSendCookies = (Pusher) => {
  const createXHR = Pusher.Runtime.createXHR;
  Pusher.Runtime.createXHR = function (...args) {
    const xhr = createXHR.apply(this, args);
    xhr.setDisableHeaderCheck(true);
    return xhr;
  };
};
