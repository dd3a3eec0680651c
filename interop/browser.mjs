// A real browser: headless Chromium opens the gateway's home page, logs in
// through the GitHub stand-in's consent page, and the page's own pusher-js
// subscribes through a Pusher-protocol server (sockudo) with the session
// cookie, as it would in production (same-origin XHR to /pusher/auth). It
// also makes, uses and revokes a token for apps on the home page.
//
// Usage: node browser.mjs [--screenshot FILE]
// Env: DEMO_URL (a running `channelgate demo` whose pusher host is up),
//      CHROMIUM (default /usr/bin/chromium).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const url = process.env.DEMO_URL;
if (!url) throw new Error("DEMO_URL is not set");
const screenshot = process.argv.indexOf("--screenshot") >= 0 ? process.argv[process.argv.indexOf("--screenshot") + 1] : null;

const fail = (why) => {
  console.error(`browser: FAILED: ${why}`);
  process.exit(1);
};

const profile = mkdtempSync(join(tmpdir(), "channelgate-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 900, height: 1100 },
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

try {
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(15_000);

  // Log in as a person would: the button, then the consent page.
  await page.goto(`${url}/`);
  await page.getByRole("link", { name: "Log in with GitHub" }).click();
  await page.locator('button[name="login"][value="ada"]').click();
  await page.waitForURL(`${url}/`);
  const heading = await page.locator("h1").first().textContent();
  if (!heading.includes("Ada Lovelace")) fail(`logged in page shows ${heading}`);
  console.log("browser: logged in as ada through the consent page");

  // A token for an app: made on the page, shown once with a snippet that
  // sends it, working from outside the browser, listed after a reload
  // (never shown again), and revoked from the list.
  await page.locator("#token-name").fill("phone app");
  await page.getByRole("button", { name: "Create a token" }).click();
  await page.locator("#token-new:not([hidden])").waitFor();
  const token = (await page.locator("#token-value").textContent()).trim();
  if (!/^cg_[A-Za-z0-9_-]{43}$/.test(token)) fail(`the page shows ${token} as the new token`);
  const snippet = await page.locator("#token-snippet").textContent();
  if (!snippet.includes(`Bearer ${token}`) || !snippet.includes("/pusher/auth")) fail(`snippet: ${snippet}`);
  const asApp = () => fetch(`${url}/auth/me`, { headers: { Authorization: `Bearer ${token}` } });
  if ((await asApp()).status !== 200) fail("the new token does not work");
  await page.reload();
  const row = page.getByRole("row").filter({ hasText: "phone app" });
  await row.waitFor();
  if ((await page.content()).includes(token)) fail("the page shows the token again after a reload");
  await row.getByRole("button", { name: "Revoke phone app" }).click();
  await row.waitFor({ state: "detached" });
  if ((await asApp()).status !== 401) fail("a revoked token still works");
  console.log("browser: a token made on the page works, is listed but never shown again, and is revoked from the list");

  // Every request the page makes to /pusher/auth, as the browser saw it.
  let authRequests = 0;
  page.on("request", (request) => {
    if (new URL(request.url()).pathname === "/pusher/auth") authRequests += 1;
  });

  // An allowed channel: the page's pusher-js subscribes through the server.
  const check = async (channel, wantAuth, wantLive) => {
    authRequests = 0;
    await page.goto(`${url}/?channel=${encodeURIComponent(channel)}`);
    await page.waitForLoadState("networkidle");
    // Nothing is asked or joined until the person clicks: a link cannot make
    // someone join a presence channel and reveal who they are.
    const idle = await page.locator("#live-status").getAttribute("data-state");
    if (idle !== "idle") fail(`${channel}: the page subscribed before any click (${idle})`);
    if (authRequests !== 0) fail(`${channel}: ${authRequests} /pusher/auth requests before any click`);
    await page.locator("#try-run").click();
    const auth = page.locator(`#auth-response[data-state="${wantAuth}"]`);
    await auth.waitFor();
    const live = page.locator("#live-status");
    await page.waitForFunction(
      () => !["idle", "connecting"].includes(document.querySelector("#live-status").dataset.state),
    );
    const state = await live.getAttribute("data-state");
    const text = await live.textContent();
    if (state !== wantLive) fail(`${channel}: live state ${state} (${text}), wanted ${wantLive}`);
    if (authRequests === 0) fail(`${channel}: the click made no /pusher/auth request`);
    console.log(`browser: ${channel}: /pusher/auth answered ${wantAuth}; pusher-js: ${text}`);
  };
  await check("private-supersecretchat", "200", "subscribed");
  await check("presence-org-acme", "200", "subscribed");
  await check("private-user-grace", "403", "denied");

  // Access taken back live: subscribed (and signed in) to the team's channel,
  // ada is taken out of the team on the stand-in's admin page, which sends
  // the gateway a signed webhook; the server ends her page's connection and
  // the page says which access ended and why.
  await page.goto(`${url}/?channel=private-supersecretchat`);
  await page.locator("#try-run").click();
  await page.waitForFunction(() => document.querySelector("#live-status").dataset.state === "subscribed");
  const admin = await context.newPage();
  await admin.goto(`${url}/_github/admin`);
  await admin
    .getByRole("row")
    .filter({ hasText: "Ada Lovelace" })
    .getByRole("button", { name: "Remove from team acme/secret-agents" })
    .click();
  await admin.waitForURL(/done=/);
  const status = page.locator("#live-status");
  await page.waitForFunction(
    () => /Your access ended: private-supersecretchat/.test(document.querySelector("#live-status").textContent),
  );
  const why = await status.textContent();
  if ((await status.getAttribute("data-state")) !== "ended") fail(`live state after the change: ${why}`);
  console.log(`browser: after the admin page took ada out of acme/secret-agents, the page says: ${why}`);
  await admin.close();

  if (screenshot) {
    await page.goto(`${url}/?channel=presence-org-acme`);
    await page.locator("#try-run").click();
    await page.waitForFunction(() => document.querySelector("#live-status").dataset.state === "subscribed");
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`browser: screenshot written to ${screenshot}`);
  }
  console.log("browser: all checks passed");
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
