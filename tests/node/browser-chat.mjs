// Browser end-to-end test of ZRocket: two users (alice and bob) in two headless Chromium
// contexts against the real stack (MongoDB → source-server → zero-cache, the zrocket app serving
// the built UI), locally or in a cluster. Started by app/tests/e2e_browser.rs and the cluster
// end-to-end test, which own the services; this script only drives the browsers and exits
// non-zero on the first failed expectation.
//
// Checks:
//   1. alice creates a private group with bob; it appears in bob's room list (live, no reload);
//   2. alice sends a message in that shared room; bob sees it without reloading (and alice sees
//      bob's reply the same way);
//   3. alice's message is confirmed by the server: the UI marks a message "pending" until the
//      mutation's `.server` promise resolves success (which happens when the client's
//      lastMutationID, written by the app's mutate endpoint, has synced back through the source
//      and zero-cache). A MutationObserver in the page records the pending → confirmed
//      transition, so a marker that never appeared, or never cleared, fails the test.
//
// Environment: APP_URL (required, e.g. http://127.0.0.1:8011), ARTIFACTS_DIR (screenshots;
// default tests/artifacts), CHROMIUM (default /usr/bin/chromium), E2E_TIMEOUT_MS (per step).
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

const APP_URL = process.env.APP_URL;
if (!APP_URL) {
  console.error('browser-chat.mjs: APP_URL is not set (the zrocket server URL, e.g. http://127.0.0.1:8011)');
  process.exit(2);
}
const ARTIFACTS = path.resolve(process.env.ARTIFACTS_DIR ?? path.join(repo, 'tests/artifacts'));
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const TIMEOUT = Number(process.env.E2E_TIMEOUT_MS ?? 30000);

// Flags for Chromium on these machines: no sandbox as root, and no background networking
// (the closed network refuses it). Playwright adds --headless and a fresh temporary profile.
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const run = Math.random().toString(36).slice(2, 8);
const groupName = `e2e-group-${run}`;
const aliceText = `hello bob from alice ${run}`;
const bobText = `hi alice, bob here ${run}`;

function step(msg) {
  console.log(`[e2e] ${msg}`);
}

/** Fails with a message that says what was expected. */
function expect(cond, msg) {
  if (!cond) throw new Error(`expectation failed: ${msg}`);
}

async function openUser(browser, username) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') {
      console.log(`[${username} console.${m.type()}] ${m.text()}`);
    }
  });
  page.on('pageerror', (e) => console.log(`[${username} pageerror] ${e.message}`));
  await page.goto(APP_URL);
  await page.getByTestId(`login-user-${username}`).click();
  await page.getByTestId('me').waitFor();
  await page.locator('[data-testid="connection-state"][data-state="connected"]').waitFor();
  step(`${username}: logged in and connected`);
  return { context, page };
}

/** Records every value of data-pending each message element ever had, by message id. */
async function watchPendingMarkers(page) {
  await page.evaluate(() => {
    const seen = {};
    const record = (el) => {
      const id = el.getAttribute('data-message-id');
      if (!id) return;
      const v = el.getAttribute('data-pending');
      const list = (seen[id] ??= []);
      if (list[list.length - 1] !== v) list.push(v);
    };
    const scan = (node) => {
      if (!(node instanceof Element)) return;
      if (node.matches('[data-testid="message"]')) record(node);
      node.querySelectorAll('[data-testid="message"]').forEach(record);
    };
    new MutationObserver((mutations) => {
      for (const m of mutations) {
        if (m.type === 'attributes') scan(m.target);
        m.addedNodes.forEach(scan);
      }
    }).observe(document.body, {
      subtree: true,
      childList: true,
      attributes: true,
      attributeFilter: ['data-pending'],
    });
    document.querySelectorAll('[data-testid="message"]').forEach(record);
    window.__pendingHistory = seen;
  });
}

async function screenshots(users) {
  mkdirSync(ARTIFACTS, { recursive: true });
  for (const [name, u] of Object.entries(users)) {
    if (!u) continue;
    const file = path.join(ARTIFACTS, `e2e-${name}.png`);
    try {
      await u.page.screenshot({ path: file, fullPage: true });
      step(`screenshot: ${file}`);
    } catch (e) {
      console.log(`[e2e] screenshot of ${name} failed: ${e.message}`);
    }
  }
}

async function main() {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
  });
  const users = { alice: null, bob: null };
  try {
    users.alice = await openUser(browser, 'alice');
    users.bob = await openUser(browser, 'bob');
    const a = users.alice.page;
    const b = users.bob.page;

    // 1. alice creates a group with bob; bob's list shows it without a reload.
    await a.getByTestId('new-group').click();
    await a.getByTestId('new-room-name').fill(groupName);
    await a.getByTestId('new-room-member-bob').check();
    await a.getByTestId('new-room-submit').click();
    const aliceRoom = a.locator(`[data-testid^="room-"][data-room-name="${groupName}"]`);
    await aliceRoom.waitFor();
    const roomTestId = await aliceRoom.getAttribute('data-testid');
    expect(roomTestId && roomTestId.startsWith('room-'), `room button has a room-<id> test id (got ${roomTestId})`);
    expect((await aliceRoom.getAttribute('data-room-type')) === 'p', 'the new room is listed under Groups');
    step(`alice: created ${groupName} (${roomTestId})`);
    const bobRoom = b.getByTestId(roomTestId);
    await bobRoom.waitFor();
    expect((await bobRoom.getAttribute('data-room-name')) === groupName, "bob's list shows the group's name");
    expect((await bobRoom.getAttribute('data-room-type')) === 'p', "bob's list shows it under Groups");
    step('bob: the group appeared in his room list');

    // The group must also survive the server's verdict on alice's side (not just optimistic):
    // bob can only see it once the server wrote it, so it is real. Both open it.
    await aliceRoom.click();
    await bobRoom.click();
    await a.locator(`[data-testid="room-view"][data-room-id="${roomTestId.slice(5)}"]`).waitFor();
    await b.locator(`[data-testid="room-view"][data-room-id="${roomTestId.slice(5)}"]`).waitFor();

    // 2 + 3. alice sends a message; it is pending until confirmed; bob sees it live.
    await watchPendingMarkers(a);
    await a.getByTestId('composer').fill(aliceText);
    await a.getByTestId('send').click();
    const aliceMsg = a.locator('[data-testid="message"]', { hasText: aliceText });
    await aliceMsg.waitFor();
    const msgId = await aliceMsg.getAttribute('data-message-id');
    expect(msgId, 'the sent message carries its id');
    step(`alice: message ${msgId} shown (optimistic)`);

    await a.locator(`[data-testid="message"][data-message-id="${msgId}"][data-pending="false"]`).waitFor();
    const history = await a.evaluate((id) => window.__pendingHistory[id] ?? [], msgId);
    expect(
      history.length >= 2 && history[0] === 'true' && history[history.length - 1] === 'false',
      `alice's message went from pending to confirmed (data-pending history: ${JSON.stringify(history)})`,
    );
    expect(
      (await a.locator(`[data-testid="message"][data-message-id="${msgId}"] [data-testid="message-failed"]`).count()) === 0,
      "alice's message is not marked failed",
    );
    step(`alice: message confirmed by the server (pending history ${JSON.stringify(history)})`);

    const bobSees = b.locator(`[data-testid="message"][data-message-id="${msgId}"]`);
    await bobSees.waitFor();
    expect((await bobSees.getByTestId('message-text').innerText()).trim() === aliceText, 'bob sees the same text');
    expect((await bobSees.getAttribute('data-sender')) === 'alice', 'bob sees alice as the sender');
    step("bob: sees alice's message without reloading");

    // And back: bob replies, alice sees it live.
    await b.getByTestId('composer').fill(bobText);
    await b.getByTestId('send').click();
    await a.locator('[data-testid="message"][data-sender="bob"]', { hasText: bobText }).waitFor();
    step("alice: sees bob's reply without reloading");

    // No server error was reported to either user.
    expect((await a.getByTestId('mutation-error').count()) === 0, 'alice saw no mutation errors');
    expect((await b.getByTestId('mutation-error').count()) === 0, 'bob saw no mutation errors');

    await screenshots(users);
    step('PASS');
  } catch (e) {
    await screenshots(users);
    throw e;
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(`[e2e] FAIL: ${e.stack ?? e}`);
  process.exit(1);
});
