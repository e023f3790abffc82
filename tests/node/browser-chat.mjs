// Browser end-to-end test of ZRocket: real headless Chromium, one browser context per user,
// against the real stack (MongoDB → source-server → zero-cache, the zrocket app serving the
// built UI), locally or in a cluster. Started by app/tests/e2e_browser.rs and the cluster
// end-to-end test, which own the services; this script only drives the browsers and exits
// non-zero on the first failed expectation.
//
// E2E_SCENARIO picks what runs:
//   chat (default): two users sign up through the UI, then
//     1. one creates a private group with the other; it appears in the other's room list live;
//     2. a message each way arrives without a reload;
//     3. the sender's message is confirmed by the server: the UI marks it "pending" until the
//        mutation's `.server` promise resolves success (the client's lastMutationID, written by
//        the app's mutate endpoint, synced back through the source and zero-cache). A
//        MutationObserver records the pending → confirmed transition, so a marker that never
//        appeared, or never cleared, fails the test.
//   auth: chat, with the server's dev login off, plus the sign-in life cycle: inline
//     validation before any request, a taken username (another case), the session cookie is
//     HttpOnly and no script sees the token, sign-out (a reload shows the sign-in form and the
//     old cookie no longer opens a session), a wrong password, changing the password, a session
//     revoked elsewhere (the open tab goes to the sign-in form through Zero's needs-auth), an
//     unreachable server, and the rate limit (five wrong passwords, the sixth is refused with a
//     wait).
//   dev-login: the server runs with dev login on: the banner is on the sign-in screen and,
//     after a dev login as the seeded alice, on the chat screen, where her rooms sync.
//
// Environment: APP_URL (required, e.g. http://127.0.0.1:8011), E2E_SCENARIO, ARTIFACTS_DIR
// (screenshots; default tests/artifacts), CHROMIUM (default /usr/bin/chromium), E2E_TIMEOUT_MS
// (per step).
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
const SCENARIO = process.env.E2E_SCENARIO ?? 'chat';
if (!['chat', 'auth', 'dev-login'].includes(SCENARIO)) {
  console.error(`browser-chat.mjs: E2E_SCENARIO=${SCENARIO} is not one of chat, auth, dev-login`);
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

// Fresh accounts per run, so the script can run again against the same database.
const run = Math.random().toString(36).slice(2, 8);
const alice = { username: `alice_${run}`, name: `Alice ${run}`, password: `alice-pw-${run}-1` };
const bob = { username: `bob_${run}`, name: `Bob ${run}`, password: `bob-pw-${run}-1` };
const groupName = `e2e-group-${run}`;
const aliceText = `hello bob from alice ${run}`;
const bobText = `hi alice, bob here ${run}`;

const WRONG_PASSWORD = 'Wrong username or password.';
const RATE_LIMITED = /^Too many attempts — try again in \d+ s$/;
const UNREACHABLE = "Can't reach the ZRocket server. Check your connection and try again.";

function step(msg) {
  console.log(`[e2e] ${msg}`);
}

/** Fails with a message that says what was expected. */
function expect(cond, msg) {
  if (!cond) throw new Error(`expectation failed: ${msg}`);
}

async function newPage(browser, label) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') {
      console.log(`[${label} console.${m.type()}] ${m.text()}`);
    }
  });
  page.on('pageerror', (e) => console.log(`[${label} pageerror] ${e.message}`));
  await page.goto(APP_URL);
  return { context, page, label };
}

/**
 * Waits until the test id's element shows a text that `ok` accepts (a string: exactly that) and
 * returns it; on timeout, fails naming the last text seen. Polling rather than reading once: a
 * message from the previous attempt may still be on screen when the next answer arrives.
 */
async function waitText(page, testId, ok, what) {
  const accept = typeof ok === 'string' ? (t) => t === ok : (t) => ok.test(t);
  const el = page.getByTestId(testId);
  const deadline = Date.now() + TIMEOUT;
  let last = '(not shown)';
  while (Date.now() < deadline) {
    if ((await el.count()) > 0) {
      last = (await el.first().innerText()).trim();
      if (accept(last)) return last;
    }
    await page.waitForTimeout(100);
  }
  throw new Error(`expectation failed: ${what}: ${testId} should say ${ok} (last seen: "${last}")`);
}

async function waitSignedIn(page, user) {
  await page.locator(`[data-testid="me"]`, { hasText: `@${user.username}` }).waitFor();
  await page.locator('[data-testid="connection-state"][data-state="connected"]').waitFor();
}

async function fillSignUp(page, { username, name, password, confirm = password }) {
  await page.getByTestId('auth-tab-signup').click();
  await page.getByTestId('signup-username').fill(username);
  await page.getByTestId('signup-name').fill(name);
  await page.getByTestId('signup-password').fill(password);
  await page.getByTestId('signup-confirm').fill(confirm);
}

/** Signs up through the form, submitting with Enter as a person would. */
async function signUp(page, user) {
  await fillSignUp(page, user);
  await page.getByTestId('signup-confirm').press('Enter');
  await waitSignedIn(page, user);
}

/** Fills the sign-in form and submits it with Enter; waits for the request to finish. */
async function submitSignIn(page, username, password) {
  await page.getByTestId('auth-tab-signin').click();
  await page.getByTestId('signin-username').fill(username);
  await page.getByTestId('signin-password').fill(password);
  const answered = page.waitForResponse((r) => r.url().endsWith('/api/auth/login'));
  await page.getByTestId('signin-password').press('Enter');
  return (await answered).status();
}

/** The session cookie(s) the app set: the HttpOnly ones for the app's origin. */
async function sessionCookies(context) {
  return (await context.cookies(APP_URL)).filter((c) => c.httpOnly);
}

/** GET /api/auth/session from outside the browser, presenting the given cookies. */
async function sessionStatus(cookies) {
  const res = await fetch(`${APP_URL}/api/auth/session`, {
    headers: { cookie: cookies.map((c) => `${c.name}=${c.value}`).join('; ') },
  });
  return res.status;
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

/** The form checks its rules before sending anything, and says what is wrong at each field. */
async function checkInlineValidation(page) {
  let signupRequests = 0;
  const count = (r) => {
    if (r.url().endsWith('/api/auth/signup')) signupRequests += 1;
  };
  page.on('request', count);
  await fillSignUp(page, { username: 'a b', name: ' ', password: 'short', confirm: 'other' });
  await page.getByTestId('signup-confirm').press('Enter');
  for (const [field, text] of [
    ['signup-username', 'Use only letters, digits, and _ . -'],
    ['signup-name', 'Enter the name others will see.'],
    ['signup-password', 'At least 8 characters.'],
    ['signup-confirm', 'The passwords do not match.'],
  ]) {
    await waitText(page, `${field}-error`, text, `the ${field} message`);
    expect((await page.getByTestId(field).getAttribute('aria-invalid')) === 'true', `${field} is marked invalid`);
  }
  page.off('request', count);
  expect(signupRequests === 0, `an invalid form sends nothing (sent ${signupRequests} sign-up requests)`);
  step('sign-up: inline messages at every bad field, nothing sent');
}

async function chat(a, b, first, second) {
  // 1. one creates a group with the other; the other's list shows it without a reload.
  await a.getByTestId('new-group').click();
  await a.getByTestId('new-room-name').fill(groupName);
  await a.getByTestId(`new-room-member-${second.username}`).check();
  await a.getByTestId('new-room-submit').click();
  const aRoom = a.locator(`[data-testid^="room-"][data-room-name="${groupName}"]`);
  await aRoom.waitFor();
  const roomTestId = await aRoom.getAttribute('data-testid');
  expect(roomTestId && roomTestId.startsWith('room-'), `room button has a room-<id> test id (got ${roomTestId})`);
  expect((await aRoom.getAttribute('data-room-type')) === 'p', 'the new room is listed under Groups');
  step(`${first.username}: created ${groupName} (${roomTestId})`);
  const bRoom = b.getByTestId(roomTestId);
  await bRoom.waitFor();
  expect((await bRoom.getAttribute('data-room-name')) === groupName, "the other's list shows the group's name");
  expect((await bRoom.getAttribute('data-room-type')) === 'p', "the other's list shows it under Groups");
  step(`${second.username}: the group appeared in the room list`);

  // The second user can only see the group once the server wrote it, so it is real. Both open it.
  await aRoom.click();
  await bRoom.click();
  await a.locator(`[data-testid="room-view"][data-room-id="${roomTestId.slice(5)}"]`).waitFor();
  await b.locator(`[data-testid="room-view"][data-room-id="${roomTestId.slice(5)}"]`).waitFor();

  // 2 + 3. a message is pending until confirmed, and the other sees it live.
  await watchPendingMarkers(a);
  await a.getByTestId('composer').fill(aliceText);
  await a.getByTestId('send').click();
  const aMsg = a.locator('[data-testid="message"]', { hasText: aliceText });
  await aMsg.waitFor();
  const msgId = await aMsg.getAttribute('data-message-id');
  expect(msgId, 'the sent message carries its id');
  step(`${first.username}: message ${msgId} shown (optimistic)`);

  await a.locator(`[data-testid="message"][data-message-id="${msgId}"][data-pending="false"]`).waitFor();
  const history = await a.evaluate((id) => window.__pendingHistory[id] ?? [], msgId);
  expect(
    history.length >= 2 && history[0] === 'true' && history[history.length - 1] === 'false',
    `the message went from pending to confirmed (data-pending history: ${JSON.stringify(history)})`,
  );
  expect(
    (await a.locator(`[data-testid="message"][data-message-id="${msgId}"] [data-testid="message-failed"]`).count()) === 0,
    'the message is not marked failed',
  );
  step(`${first.username}: message confirmed by the server (pending history ${JSON.stringify(history)})`);

  const bSees = b.locator(`[data-testid="message"][data-message-id="${msgId}"]`);
  await bSees.waitFor();
  expect((await bSees.getByTestId('message-text').innerText()).trim() === aliceText, 'the other sees the same text');
  expect((await bSees.getAttribute('data-sender')) === first.username, 'the other sees the right sender');
  step(`${second.username}: sees the message without reloading`);

  await b.getByTestId('composer').fill(bobText);
  await b.getByTestId('send').click();
  await a.locator(`[data-testid="message"][data-sender="${second.username}"]`, { hasText: bobText }).waitFor();
  step(`${first.username}: sees the reply without reloading`);

  expect((await a.getByTestId('mutation-error').count()) === 0, `${first.username} saw no mutation errors`);
  expect((await b.getByTestId('mutation-error').count()) === 0, `${second.username} saw no mutation errors`);
}

async function chatScenario(browser, users, { authChecks }) {
  users.alice = await newPage(browser, 'alice');
  const a = users.alice.page;
  await a.getByTestId('auth-screen').waitFor();
  if (authChecks) {
    expect((await a.getByTestId('dev-login-banner').count()) === 0, 'no dev login banner when dev login is off');
    expect((await a.getByTestId('dev-login-form').count()) === 0, 'no dev login form when dev login is off');
    await a.getByTestId('auth-tab-signup').click();
    await checkInlineValidation(a);
  }
  await signUp(a, alice);
  step(`${alice.username}: signed up, signed in and connected`);

  users.bob = await newPage(browser, 'bob');
  const b = users.bob.page;
  if (authChecks) {
    // The name is taken whatever its case; the server says so at the username field.
    await fillSignUp(b, { ...bob, username: alice.username.toUpperCase() });
    await b.getByTestId('signup-submit').click();
    await waitText(b, 'signup-username-error', 'That username is taken. Try another one.', 'a taken username, any case');
    step(`bob: ${alice.username.toUpperCase()} is refused as taken`);
  }
  await signUp(b, bob);
  step(`${bob.username}: signed up, signed in and connected`);

  await chat(a, b, alice, bob);
  if (!authChecks) return;

  // The token stays out of scripts' reach: HttpOnly cookie, not in document.cookie, not in JSON.
  const cookies = await sessionCookies(users.alice.context);
  expect(cookies.length > 0, 'the app set an HttpOnly session cookie');
  const visible = await a.evaluate(() => document.cookie);
  for (const c of cookies) {
    expect(!visible.includes(c.value), `the session cookie ${c.name} is not readable by scripts`);
  }
  const sessionJson = await a.evaluate(async () => (await fetch('/api/auth/session')).text());
  for (const c of cookies) {
    expect(!sessionJson.includes(c.value), '/api/auth/session does not return the token');
  }
  expect(!/"token"/.test(sessionJson), `/api/auth/session has no token field (got ${sessionJson})`);
  expect((await sessionStatus(cookies)) === 200, 'the cookie opens a session before sign-out');
  step(`${alice.username}: session cookie is HttpOnly and no script sees the token`);

  // Sign out: back to the sign-in form, also after a reload, and the old cookie is dead.
  await a.getByTestId('logout').click();
  await a.getByTestId('signin-form').waitFor();
  await a.reload();
  await a.getByTestId('signin-form').waitFor();
  expect((await a.getByTestId('me').count()) === 0, 'after sign-out and a reload nobody is signed in');
  const status = await sessionStatus(cookies);
  expect(status === 401, `the signed-out cookie no longer opens a session (GET /api/auth/session: ${status})`);
  step(`${alice.username}: signed out; a reload shows the sign-in form; the old cookie gets 401`);

  // A wrong password is refused in words; the right one signs in.
  const wrong = await submitSignIn(a, alice.username, 'not-the-password');
  expect(wrong === 401, `a wrong password gets 401 (got ${wrong})`);
  await waitText(a, 'signin-error', WRONG_PASSWORD, 'a wrong password');
  await submitSignIn(a, alice.username, alice.password);
  await waitSignedIn(a, alice);
  step(`${alice.username}: wrong password refused in words, right one signs in`);

  // Change the password, sign out, and sign in with the new one.
  const newPassword = `${alice.password}-new`;
  await a.getByTestId('change-password').click();
  await a.getByTestId('change-password-current').fill(alice.password);
  await a.getByTestId('change-password-new').fill(newPassword);
  await a.getByTestId('change-password-confirm').fill(newPassword);
  await a.getByTestId('change-password-confirm').press('Enter');
  await a.getByTestId('change-password-done').waitFor();
  await a.getByTestId('change-password-close').click();
  await a.getByTestId('logout').click();
  await a.getByTestId('signin-form').waitFor();
  const old = await submitSignIn(a, alice.username, alice.password);
  expect(old === 401, `the old password no longer works (got ${old})`);
  await submitSignIn(a, alice.username, newPassword);
  await waitSignedIn(a, alice);
  step(`${alice.username}: changed the password; the old one is refused, the new one works`);

  // A session revoked elsewhere (here: signed out with bob's cookie from outside the browser)
  // sends the open tab to the sign-in form: the next write gets 401 through zero-cache, Zero
  // goes to needs-auth, the UI asks /api/auth/session and finds no session.
  const bobCookies = await sessionCookies(users.bob.context);
  const out = await fetch(`${APP_URL}/api/auth/logout`, {
    method: 'POST',
    headers: { cookie: bobCookies.map((c) => `${c.name}=${c.value}`).join('; ') },
  });
  expect(out.status === 204, `signing bob out from outside the browser gets 204 (got ${out.status})`);
  await b.getByTestId('composer').fill(`after revocation ${run}`);
  await b.getByTestId('send').click();
  await b.getByTestId('signin-form').waitFor();
  step(`${bob.username}: session revoked elsewhere; the next write sent the tab to the sign-in form`);

  // The rate limit, from a third browser: five wrong passwords for bob, the sixth is refused.
  users.stranger = await newPage(browser, 'stranger');
  const s = users.stranger.page;
  // First the server out of reach (the request dies in the browser, so it counts for nothing).
  await s.route('**/api/auth/login', (route) => route.abort('connectionrefused'));
  await s.getByTestId('signin-username').fill(bob.username);
  await s.getByTestId('signin-password').fill(bob.password);
  await s.getByTestId('signin-password').press('Enter');
  await waitText(s, 'signin-error', UNREACHABLE, 'the server out of reach');
  await s.unroute('**/api/auth/login');
  step(`stranger: an unreachable server says "${UNREACHABLE}"`);
  for (let i = 1; i <= 5; i++) {
    const got = await submitSignIn(s, bob.username, `guess-${i}-wrong`);
    expect(got === 401, `wrong attempt ${i} gets 401 (got ${got})`);
    await waitText(s, 'signin-error', WRONG_PASSWORD, `wrong attempt ${i}`);
  }
  const sixth = await submitSignIn(s, bob.username, 'guess-6-wrong');
  expect(sixth === 429, `the sixth wrong attempt is rate limited (got HTTP ${sixth})`);
  const limited = await waitText(s, 'signin-error', RATE_LIMITED, 'the sixth attempt');
  expect((await s.getByTestId('me').count()) === 0, 'the stranger is not signed in');
  step(`stranger: attempts 1–5 "${WRONG_PASSWORD}", attempt 6 "${limited}"`);
}

async function devLoginScenario(browser, users) {
  users.dev = await newPage(browser, 'dev');
  const p = users.dev.page;
  await p.getByTestId('auth-screen').waitFor();
  const banner = p.getByTestId('dev-login-banner');
  expect(await banner.isVisible(), 'the dev login banner is visible on the sign-in screen');
  const words = (await banner.innerText()).trim();
  expect(
    words === 'Dev login is on: anyone can sign in as anyone — local use only',
    `the banner says what dev login means (got "${words}")`,
  );
  await p.getByTestId('dev-login-username').fill('alice');
  await p.getByTestId('dev-login-username').press('Enter');
  await waitSignedIn(p, { username: 'alice' });
  expect(await p.getByTestId('dev-login-banner').isVisible(), 'the banner stays visible on the chat screen');
  // The dev session is a real session: zero-cache forwards its cookie and alice's seeded rooms sync.
  await p.locator('[data-testid="rooms-c"] [data-room-name="general"]').waitFor();
  step('dev: banner on the sign-in screen, dev login as alice, banner on the chat screen, her rooms synced');
}

async function main() {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
  });
  const users = {};
  try {
    if (SCENARIO === 'dev-login') await devLoginScenario(browser, users);
    else await chatScenario(browser, users, { authChecks: SCENARIO === 'auth' });
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
