// A failing callback in a real browser: its authors see the panic and the callback's last
// log lines in Dash's dev tools' error pop-up (the `ui` of `_dash-config` and the renderer's
// development build, as Dash's debug mode serves them, for the authors only); a viewer
// of the same app gets no dev tools and an answer with nothing but an error id, which the
// server log ties to the details. The app is the demo's dash-features (its Crash button
// panics), opened to the tenant's members only, by an admin of the tenant and by a viewer.
//
//   node --test tests/e2e/callback-errors.test.mjs
//
// Screenshots and the server log go to tests/artifacts/.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';

import { launchBrowser, repo, screenshot, startTessera, PAGE_WAIT } from './harness.mjs';

const APP = '/apps/demo/dash-features/';
// examples/dash-features: CRASH_PANIC and CRASH_LOG.
const PANIC = 'the quarterly total overflowed at row 17';
const LOGGED = 'summing the quarterly rows';

let server;
let browser;

const targetDir = process.env.CARGO_TARGET_DIR ?? path.join(repo, 'target');
const tessera = path.join(targetDir, 'release', 'tessera');

function admin(args, input) {
  return execFileSync(tessera, ['admin', ...args], {
    env: { ...process.env, TESSERA_DATA_DIR: server.dataDir },
    input,
    encoding: 'utf8',
  });
}

before(async () => {
  server = await startTessera({ name: 'e2e-callback-errors' });
  admin(['set-visibility', 'demo/dash-features', 'tenant']);
  admin(['create-user', 'ada@example.org', '--password-stdin'], 'ada-long-password\n');
  admin(['grant', 'ada@example.org', 'demo', 'admin']);
  admin(['create-user', 'vic@example.org', '--password-stdin'], 'vic-long-password\n');
  admin(['grant', 'vic@example.org', 'demo', 'viewer']);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop(5000);
});

/** Signs in with the local form (the app sends an anonymous visitor there) and opens the app. */
async function openAs(email, password) {
  await browser.context.clearCookies();
  const page = await browser.context.newPage();
  await page.goto(`${server.appsUrl}${APP}`);
  await page.waitForURL(/\/login\?/, PAGE_WAIT);
  await page.fill('#email', email);
  await page.fill('#password', password);
  await Promise.all([page.waitForNavigation(PAGE_WAIT), page.click('button[type=submit]')]);
  await page.waitForURL((u) => u.pathname === APP, PAGE_WAIT);
  await page.waitForSelector('#crash', PAGE_WAIT);
  return page;
}

/** Clicks Crash and returns the failed update's status and error message. */
async function crash(page) {
  const isUpdate = (res) => res.url().includes('_dash-update-component') && res.request().method() === 'POST';
  const [res] = await Promise.all([page.waitForResponse(isUpdate, PAGE_WAIT), page.click('#crash')]);
  const body = await res.json();
  return { status: res.status(), code: body?.error?.code, message: body?.error?.message ?? '' };
}

/** The renderer script the page loaded: Dash's debug mode serves the development build, the
 *  only one that holds the dev tools' error pop-up (`dash-fe-error__…` classes). */
async function rendererScript(page) {
  return page.$$eval('script[src]', (scripts) => scripts.map((s) => s.src).find((src) => src.includes('dash_renderer.')));
}

test("the app's author gets Dash's dev tools, whose error pop-up shows the panic and the log", { timeout: 120_000 }, async () => {
  const page = await openAs('ada@example.org', 'ada-long-password');
  const config = JSON.parse(await page.textContent('#_dash-config'));
  assert.equal(config.ui, true, 'the author gets the dev tools');
  assert.match(await rendererScript(page), /\.dev\.js$/, 'the renderer with the dev tools');
  const answer = await crash(page);
  assert.equal(answer.status, 500);
  assert.equal(answer.code, 'callback_panicked');
  assert.ok(answer.message.includes(PANIC), answer.message);
  assert.ok(answer.message.includes(LOGGED), answer.message);
  // The dev tools open their errors pop-up by themselves: the failed callback, and the
  // server's answer (its text, with the panic and the log) under it.
  const title = await page.waitForSelector('.dash-fe-error__title', PAGE_WAIT);
  assert.match(await title.textContent(), /Callback error updating crash-out\.children/);
  if (!(await page.$('.dash-be-error__str'))) await page.click('.test-devtools-error-toggle');
  const shown = await (await page.waitForSelector('.dash-be-error__str', PAGE_WAIT)).textContent();
  assert.ok(shown.includes(PANIC), `the pop-up shows ${JSON.stringify(shown)}`);
  assert.ok(shown.includes(LOGGED), `the pop-up shows ${JSON.stringify(shown)}`);
  await screenshot(page, 'callback-errors-author.png');
  // The output stays as it was: the failure is visible, not the old value passed off as new.
  assert.equal(await page.textContent('#crash-out'), 'not run');
  await page.close();
});

test('a viewer gets no dev tools and an answer with only an error id, which the server log explains', { timeout: 120_000 }, async () => {
  const page = await openAs('vic@example.org', 'vic-long-password');
  const config = JSON.parse(await page.textContent('#_dash-config'));
  assert.equal(config.ui, false);
  const answer = await crash(page);
  assert.equal(answer.status, 500);
  assert.equal(answer.code, 'callback_panicked');
  for (const secret of [PANIC, LOGGED, '.rs', 'panicked at']) {
    assert.ok(!answer.message.includes(secret), `the viewer sees ${JSON.stringify(secret)}: ${answer.message}`);
  }
  const id = answer.message.match(/error id ([a-z0-9]{10})/)?.[1];
  assert.ok(id, `no error id in ${answer.message}`);
  // The author finds the details under the same id in the server log.
  let line;
  for (let i = 0; i < 50 && !line; i++) {
    line = server.log().split('\n').find((l) => l.includes(id));
    if (!line) await page.waitForTimeout(100);
  }
  assert.ok(line, `no server log line with error id ${id}`);
  assert.ok(line.includes(PANIC), line);
  // No dev tools: the minified renderer (without the pop-up), and nothing of the pop-up on
  // the page by the time the author's opened (a viewer served the author's page, as a
  // regression would, gets the pop-up and fails here).
  assert.match(await rendererScript(page), /\.min\.js$/, 'the renderer without the dev tools');
  await page.waitForTimeout(1000);
  assert.equal(await page.$('.dash-fe-error__title'), null, 'no error pop-up for a viewer');
  assert.equal(await page.$('.dash-debug-menu__outer'), null, 'no dev tools menu for a viewer');
  assert.ok(!(await page.textContent('body')).includes(PANIC), 'the panic is nowhere on the viewer\'s page');
  await screenshot(page, 'callback-errors-viewer.png');
  await page.close();
});
