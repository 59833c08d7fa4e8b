// The web console in headless Chromium: an admin signs in, opens an app's page, rolls it
// back with the button, sets a secret (never shown again), deletes an app by typing its
// name; invites a person who accepts with a new account; finds both in the audit log,
// filters it and exports it; follows an app's log while a viewer crashes one of its
// callbacks; the app's usage shows in a table and in plotly.js charts. Every page works
// without JavaScript (our two scripts, from the platform's origin, only add following the
// log and the charts); axe-core checks every page (no serious or critical violation);
// screenshots go to tests/artifacts/console-*.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';

import fs from 'node:fs';

import { checkAccessibility, launchBrowser, repo, screenshot, startTessera, waitForText, PAGE_WAIT } from './harness.mjs';

let server;
let browser;

const targetDir = process.env.CARGO_TARGET_DIR ?? path.join(repo, 'target');
const tessera = path.join(targetDir, 'release', 'tessera');
const hello = path.join(targetDir, 'wasm32-wasip2', 'guest', 'hello.wasm');

function cli(args, input) {
  return execFileSync(tessera, args, {
    env: { ...process.env, TESSERA_DATA_DIR: server.dataDir },
    input,
    encoding: 'utf8',
  });
}

before(async () => {
  server = await startTessera({ name: 'console' });
  cli(['admin', 'create-user', 'ada@example.org', '--password-stdin'], 'ada-long-password\n');
  cli(['admin', 'grant', 'ada@example.org', 'demo', 'admin']);
  // Two versions of console-app to roll back between, and one app to delete.
  cli(['deploy', 'demo/console-app', hello]);
  cli(['deploy', 'demo/console-app', hello]);
  cli(['deploy', 'demo/doomed', hello]);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function submit(page, selector) {
  await Promise.all([page.waitForNavigation(PAGE_WAIT), page.click(selector)]);
}

test('an admin rolls back, sets a secret and deletes an app from the console', async () => {
  const page = await browser.context.newPage();
  const errors = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(msg.text());
  });
  page.on('requestfailed', (req) => errors.push(`${req.url()}: ${req.failure()?.errorText}`));

  // A signed-out deep link to the app page goes through sign-in and back.
  await page.goto(`${server.baseUrl}/ui/demo/apps/console-app`);
  assert.equal(new URL(page.url()).pathname, '/login');
  await checkAccessibility(page, 'login');
  await page.fill('#email', 'ada@example.org');
  await page.fill('#password', 'ada-long-password');
  await submit(page, 'button[type=submit]');
  assert.equal(new URL(page.url()).pathname, '/ui/demo/apps/console-app');
  assert.match(await page.textContent('#status'), /version 2/);
  assert.match(await page.textContent('#git-remote'), /git remote add tessera http:\/\/.*\/git\/demo\/console-app\.git/);
  await screenshot(page, 'console-app.png');
  await checkAccessibility(page, 'app');

  await submit(page, '#rollback-1');
  assert.match(await page.textContent('#notice'), /The version is live/);
  assert.match(await page.textContent('#status'), /version 1/);

  await page.fill('#setting-name', 'API_KEY');
  await page.fill('#setting-value', 'sekret-value-123');
  await page.check('#setting-secret');
  await submit(page, '#set-setting-submit');
  assert.match(await page.textContent('#setting-API_KEY'), /secret, set/);
  assert.doesNotMatch(await page.content(), /sekret-value-123/);
  await screenshot(page, 'console-app-after.png');

  // Usage: callbacks the app runs on the apps origin show on its page at once, in the
  // table and in four plotly.js charts (our usage.js and plotly.min.js, both from the
  // platform's origin under its CSP).
  await page.goto(`${server.appsUrl}/apps/demo/console-app/`, PAGE_WAIT);
  await page.waitForURL((u) => u.pathname === '/apps/demo/console-app/', PAGE_WAIT);
  await waitForText(page, '#greeting', /^Hello, world!$/, 'the first greeting');
  await page.fill('#name', 'usage');
  await waitForText(page, '#greeting', /^Hello, usage!$/, 'the second greeting');
  await page.goto(`${server.baseUrl}/ui/demo/apps/console-app`, PAGE_WAIT);
  const callbacks = Number(await page.textContent('#usage-totals td'));
  assert.ok(callbacks >= 2, `usage shows ${callbacks} callbacks`);
  await page.waitForFunction(
    () => document.querySelectorAll('#usage-charts .js-plotly-plot .main-svg').length >= 4,
    null,
    PAGE_WAIT,
  );
  assert.equal(await page.locator('#usage-charts .js-plotly-plot').count(), 4);
  assert.equal(await page.locator('#usage-chart-callbacks .bars .point').count() > 0, true, 'the callbacks chart has bars');
  await page.locator('#usage-heading').scrollIntoViewIfNeeded();
  await screenshot(page, 'console-usage.png');
  await checkAccessibility(page, 'app-usage');
  await submit(page, '#usage-window-24h');
  assert.equal(await page.getAttribute('#usage-window-24h', 'aria-current'), 'page');
  assert.equal(Number(await page.textContent('#usage-totals td')), callbacks);

  await page.goto(`${server.baseUrl}/`);
  assert.ok(await page.$('#app-demo-doomed'), 'doomed is listed');
  await screenshot(page, 'console-home.png');
  await checkAccessibility(page, 'home');
  await page.goto(`${server.baseUrl}/ui/demo/apps/doomed`);
  await page.fill('#confirm', 'doomed');
  await submit(page, '#delete-app');
  assert.equal(new URL(page.url()).pathname, '/');
  assert.equal(await page.$('#app-demo-doomed'), null, 'doomed is gone');

  await page.goto(`${server.baseUrl}/account`);
  await page.selectOption('#token-tenant', 'demo');
  await submit(page, '#create-token-submit');
  assert.match(await page.textContent('#new-token-value'), /^tsr_/);
  await screenshot(page, 'console-account.png');
  await checkAccessibility(page, 'account');

  const missing = await page.goto(`${server.baseUrl}/no/such/page`);
  assert.equal(missing.status(), 404);
  assert.match(await page.textContent('#error-heading'), /Not found/);
  await screenshot(page, 'console-404.png');
  await checkAccessibility(page, 'not-found');
  // The 404 above is the one failed request expected.
  assert.deepEqual(errors.filter((e) => !e.includes('404')), []);
});

test("an app's page follows its log as viewers use the app", async () => {
  const page = await browser.context.newPage();
  const errors = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(msg.text());
  });
  page.on('requestfailed', (req) => errors.push(`${req.url()}: ${req.failure()?.errorText}`));
  await page.goto(`${server.baseUrl}/login?next=/ui/demo/apps/dash-features`);
  if (new URL(page.url()).pathname === '/login') {
    await page.fill('#email', 'ada@example.org');
    await page.fill('#password', 'ada-long-password');
    await submit(page, 'button[type=submit]');
  }
  await page.goto(`${server.baseUrl}/ui/demo/apps/dash-features`);
  // The script shows its controls once it follows the log.
  await page.waitForSelector('#log-toggle', { state: 'visible', ...PAGE_WAIT });
  assert.equal(await page.$$eval('#log tbody tr.log-error', (rows) => rows.length), 0);

  // A viewer crashes a callback of the public app in another tab…
  const app = await browser.context.newPage();
  try {
    await app.goto(`${server.appsUrl}/apps/demo/dash-features/`, { waitUntil: 'load', ...PAGE_WAIT });
    await app.waitForSelector('#crash', PAGE_WAIT);
    const answered = app.waitForResponse((r) => r.url().includes('_dash-update-component') && r.status() === 500, PAGE_WAIT);
    await app.click('#crash');
    await answered;
  } finally {
    await app.close();
  }
  // …and the author's page shows the failure and the guest's last line without a reload.
  await page.waitForSelector('#log tbody tr.log-error', PAGE_WAIT);
  const failure = await page.textContent('#log tbody tr.log-error');
  assert.match(failure, /callback crash-out\.children failed \(error id [a-z0-9]{10}\)/);
  assert.match(failure, /the quarterly total overflowed at row 17/);
  await page.waitForFunction(() => document.querySelector('#log tbody').innerText.includes('summing the quarterly rows'), null, PAGE_WAIT);
  assert.match(await page.textContent('#log-status'), /Following new lines/);

  // Paused, it stops asking.
  await page.click('#log-toggle');
  assert.equal(await page.getAttribute('#log-toggle', 'aria-pressed'), 'false');
  await screenshot(page, 'console-log.png');
  await checkAccessibility(page, 'app-log');
  assert.deepEqual(errors, []);
});

test('an admin invites a person who accepts; the audit log shows it, filtered and exported', async () => {
  const page = await browser.context.newPage();
  const errors = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(msg.text());
  });
  page.on('requestfailed', (req) => errors.push(`${req.url()}: ${req.failure()?.errorText}`));

  await page.goto(`${server.baseUrl}/login?next=/ui/demo/members`);
  if (new URL(page.url()).pathname === '/login') {
    await page.fill('#email', 'ada@example.org');
    await page.fill('#password', 'ada-long-password');
    await submit(page, 'button[type=submit]');
  }
  await page.goto(`${server.baseUrl}/ui/demo/members`);
  assert.ok(await page.$('#members'), 'the members table');
  await checkAccessibility(page, 'members');
  await page.selectOption('#invite-role', 'author');
  await page.fill('#invite-note', 'Nina from sales');
  await submit(page, '#invite-submit');
  const link = await page.inputValue('#invitation-link');
  assert.match(link, /\/invite\/demo\/[A-Za-z0-9]{40}$/);
  await screenshot(page, 'console-members.png');
  await checkAccessibility(page, 'members-new-invitation');

  // Nina, in a browser of her own (no session), opens the link and creates her account.
  const nina = await launchBrowser();
  try {
    const invitee = await nina.context.newPage();
    invitee.on('console', (msg) => {
      if (msg.type() === 'error') errors.push(`invitee: ${msg.text()}`);
    });
    await invitee.goto(`${server.baseUrl}${new URL(link).pathname}`);
    assert.match(await invitee.textContent('#invited-role'), /author/);
    await screenshot(invitee, 'console-invite.png');
    await checkAccessibility(invitee, 'invite');
    await invitee.fill('#email', 'nina@example.org');
    await invitee.fill('#password', 'nina-long-password');
    await submit(invitee, '#accept');
    assert.equal(new URL(invitee.url()).pathname, '/');
    assert.match(await invitee.textContent('#person'), /nina@example\.org/);
    // The link worked once.
    const again = await invitee.goto(`${server.baseUrl}${new URL(link).pathname}`);
    assert.equal(again.status(), 404);
  } finally {
    await nina.close();
  }

  // The admin finds the invitation and its acceptance in the audit log.
  await page.goto(`${server.baseUrl}/ui/demo/audit`);
  await checkAccessibility(page, 'audit');
  assert.match(await page.textContent('#audit'), /invitation\.accept/);
  assert.match(await page.textContent('#audit'), /app\.rollback/);
  await page.fill('#f-action', 'invitation.accept');
  await submit(page, '#filter');
  const rows = await page.$$('#audit tbody tr');
  assert.equal(rows.length, 1, 'one acceptance');
  await screenshot(page, 'console-audit.png');
  const [download] = await Promise.all([page.waitForEvent('download', PAGE_WAIT), page.click('#export')]);
  const csv = fs.readFileSync(await download.path(), 'utf8');
  const lines = csv.trim().split('\n');
  assert.equal(lines[0], 'id,time_utc,actor,action,target,remote_addr,detail');
  assert.equal(lines.length, 2, csv);
  assert.match(lines[1], /invitation\.accept/);
  assert.deepEqual(errors.filter((e) => !e.includes('404')), []);
});

test('tessera login is approved in the browser and gets a token', async () => {
  const { spawn } = await import('node:child_process');
  const os = await import('node:os');
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-login-'));
  const login = spawn(tessera, ['login', server.baseUrl, '--tenant', 'demo', '--no-git', '--client-name', 'ada-laptop'], {
    env: { ...process.env, HOME: home, XDG_CONFIG_HOME: '', TESSERA_CONFIG_DIR: '' },
  });
  let stdout = '';
  let stderr = '';
  login.stdout.on('data', (d) => { stdout += d; });
  const exited = new Promise((resolve) => login.on('exit', resolve));
  const code = await new Promise((resolve, reject) => {
    login.stderr.on('data', (d) => {
      stderr += d;
      const m = stderr.match(/Your code: ([A-Z]{4}-[A-Z]{4})/);
      if (m) resolve(m[1]);
    });
    login.on('exit', () => reject(new Error(`tessera login ended early: ${stderr}`)));
  });
  const link = stderr.match(/(http\S+\/device\?code=\S+)/)[1];

  const page = await browser.context.newPage();
  const errors = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(msg.text());
  });
  page.on('requestfailed', (req) => errors.push(`${req.url()}: ${req.failure()?.errorText}`));
  await page.goto(link);
  if (new URL(page.url()).pathname === '/login') {
    await page.fill('#email', 'ada@example.org');
    await page.fill('#password', 'ada-long-password');
    await submit(page, 'button[type=submit]');
  }
  assert.equal(new URL(page.url()).pathname, '/device');
  assert.equal(await page.textContent('#user-code'), code);
  assert.match(await page.textContent('#client-name'), /ada-laptop/);
  await checkAccessibility(page, 'device');
  await screenshot(page, 'console-device.png');
  await submit(page, '#approve');
  assert.match(await page.textContent('#done'), /signed in to demo/);

  assert.equal(await exited, 0, stderr);
  assert.match(stdout, /Signed in to .* as ada@example\.org in tenant demo/);
  const stored = fs.readFileSync(path.join(home, '.config/tessera/credentials.toml'), 'utf8');
  assert.match(stored, /token = "tsr_/);
  fs.rmSync(home, { recursive: true, force: true });
  assert.deepEqual(errors, []);
});
