// Drives the dashboard in headless Chromium (Playwright's `playwright-core`, the system's
// Chromium): the login page, logging in through the form (an HttpOnly session cookie that no
// script can read and that is not the key), the lanes of the running gateway, a live update
// after a request, without reloading, and signing out. Run by `tests/it/dashboard.rs`:
//
//   PLAYWRIGHT_CORE=/path/to/node_modules/playwright-core \
//     node dashboard.mjs GATEWAY_URL KEY SCREENSHOT.png
//
// It checks what needs a browser and prints what it saw as one JSON line; the Rust test
// compares that with the gateway it started. Exits non-zero, saying why, on any failed check.
import { createRequire } from 'node:module';

const [url, key, shot] = process.argv.slice(2);
if (!url || !key || !shot) {
  console.error('usage: node dashboard.mjs GATEWAY_URL KEY SCREENSHOT.png');
  process.exit(2);
}
const { chromium } = createRequire(import.meta.url)(process.env.PLAYWRIGHT_CORE || 'playwright-core');
const executablePath = process.env.SWITCHYARD_CHROMIUM || '/usr/bin/chromium';

class CheckFailed extends Error {}
function check(ok, what) {
  if (!ok) throw new CheckFailed(what);
}
// The whole run has a deadline, so a hung browser fails the test instead of stalling it.
setTimeout(() => {
  console.error('dashboard check failed: no result after 90 s');
  process.exit(3);
}, 90_000).unref();

const browser = await chromium.launch({ executablePath, headless: true });
let page;
try {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, colorScheme: process.env.SWITCHYARD_COLOR_SCHEME || 'light' });
  page = await context.newPage();
  page.setDefaultTimeout(10_000);
  // Script errors and CSP refusals show up here; the login page's own 401 is expected.
  const problems = [];
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 401/.test(m.text())) problems.push('console: ' + m.text());
  });

  // 1. Without the cookie: the login page, with status 401.
  const first = await page.goto(url + '/');
  check(first.status() === 401, `GET / without a key answered ${first.status()}, expected 401`);
  await page.getByTestId('login').waitFor();
  check(!(await page.getByTestId('login-error').isVisible()), 'the login page says a key was rejected before one was sent');

  // 2. A wrong key: the login page again, now saying so.
  await page.fill('#key', 'not-the-key');
  await Promise.all([page.waitForEvent('load'), page.click('button[type=submit]')]);
  await page.getByTestId('login-error').waitFor({ state: 'visible' });
  await page.screenshot({ path: shot.replace(/\.png$/, '') + '-login.png' });

  // 3. The right key, through the form.
  await page.fill('#key', key);
  await Promise.all([page.waitForEvent('load'), page.click('button[type=submit]')]);
  await page.getByTestId('lanes').waitFor();
  check(new URL(page.url()).pathname === '/', `after signing in the page is ${page.url()}, expected /`);

  // The session is HttpOnly: no script reads it (here, or on another port of this host, where
  // the browser sends it too), and nothing the browser keeps holds the key.
  const documentCookie = await page.evaluate(() => document.cookie);
  const jar = await context.cookies(url);
  const session = jar.find((c) => c.name === 'switchyard_session');
  check(session, 'no switchyard_session cookie after signing in: ' + JSON.stringify(jar));
  check(!documentCookie.includes('switchyard_session') && !documentCookie.includes(session.value),
    'document.cookie shows the session: ' + documentCookie);
  const keyForms = [key, encodeURIComponent(key), key.replace(/ /g, '+')];
  check(!keyForms.some((k) => documentCookie.includes(k)), 'document.cookie holds the key: ' + documentCookie);
  check(!jar.some((c) => keyForms.some((k) => c.value.includes(k))), 'a cookie holds the key: ' + JSON.stringify(jar));
  const sessionCookie = { http_only: session.httpOnly, same_site: session.sameSite, path: session.path,
    in_document_cookie: documentCookie.includes(session.value), names: jar.map((c) => c.name) };
  await page.locator('[data-testid=lane]').first().waitFor();
  // Wait for a full poll (every API answered), then read the lanes.
  await page.waitForFunction(() => document.querySelector('[data-testid=updated]').classList.contains('live'));
  const lanes = await page.locator('[data-testid=lane]').evaluateAll((els) =>
    els.map((e) => [e.querySelector('[data-testid=lane-name]').textContent, e.querySelector('[data-testid=lane-state]').textContent]));
  const windows = await page.locator('[data-testid=budget-window]').count();
  const count = async () => Number((await page.getByTestId('total-requests').textContent()).replace(/[^0-9]/g, ''));
  const before = await count();
  const rowsBefore = await page.locator('[data-testid=request-row]').count();

  // 4. The cookie opens the dashboard's reads, never the model endpoints.
  const cookieOnly = await page.evaluate(async () => {
    const r = await fetch('/v1/chat/completions', {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'default', messages: [{ role: 'user', content: 'hi' }] }),
    });
    return r.status;
  });
  check(cookieOnly === 401, `a POST to /v1/chat/completions with only the cookie answered ${cookieOnly}, expected 401`);

  // 5. A request from elsewhere (the key in a header), and the page shows it without a reload.
  await page.evaluate(() => { window.__sameDocument = true; });
  const answer = await fetch(url + '/v1/chat/completions', {
    method: 'POST',
    headers: { authorization: 'Bearer ' + key, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'default', messages: [{ role: 'user', content: 'Say hello' }] }),
  });
  check(answer.status === 200, `the chat request answered ${answer.status}: ${await answer.text()}`);
  const attempts = answer.headers.get('x-switchyard-attempts');
  try {
    await page.waitForFunction(([b, rows]) => {
      const total = Number(document.querySelector('[data-testid=total-requests]').textContent.replace(/[^0-9]/g, ''));
      return total > b && document.querySelectorAll('[data-testid=request-row]').length > rows;
    }, [before, rowsBefore], { timeout: 10_000 });
  } catch {
    throw new CheckFailed(`the page did not show the new request within 10 s (requests: ${before} → ${await count()})`);
  }
  check(await page.evaluate(() => window.__sameDocument === true), 'the page reloaded to show the request');
  const after = await count();
  const newest = page.locator('[data-testid=request-row]').first();
  const row = {
    lane: await newest.getAttribute('data-lane'),
    status: await newest.getByTestId('request-status').textContent(),
    trail: await newest.getByTestId('attempt').evaluateAll((els) =>
      els.map((e) => ({ text: e.textContent, failed: e.classList.contains('failed'), title: e.title }))),
  };
  // Text from upstreams stays text: nothing in the list became markup or ran.
  check(await page.locator('[data-testid=requests] img').count() === 0, 'an upstream error detail became an <img> element');
  check(await page.evaluate(() => window.__xss === undefined), 'an upstream error detail ran as script');
  check(await page.getByTestId('connection-lost').isHidden(), 'the connection-lost banner is showing: ' +
    await page.getByTestId('connection-lost').textContent());
  check(/updated/.test(await page.getByTestId('updated').textContent()), 'no "updated … ago" in the header');
  check(problems.length === 0, 'the page reported errors: ' + problems.join(' | '));

  await page.screenshot({ path: shot, fullPage: true });

  // 6. Signing out: the login page again, and the cookie is gone.
  await Promise.all([page.waitForEvent('load'), page.getByTestId('sign-out').getByRole('button').click()]);
  await page.getByTestId('login').waitFor();
  const signedOut = !(await context.cookies(url)).some((c) => c.name === 'switchyard_session');
  check(signedOut, 'the session cookie is still there after signing out');

  console.log(JSON.stringify({ lanes, windows, before, after, attempts, row, cookie_only_post: cookieOnly,
    session_cookie: sessionCookie, signed_out: signedOut, screenshot: shot }));
} catch (e) {
  if (page) await page.screenshot({ path: shot.replace(/\.png$/, '') + '-failed.png', fullPage: true }).catch(() => {});
  console.error('dashboard check failed: ' + (e instanceof CheckFailed ? e.message : e.stack || e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
