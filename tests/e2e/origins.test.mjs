// Apps on their own origin, in headless Chromium with the real Dash front end.
//
// An app's asset script (deployed here with `tessera deploy --assets`) runs on the apps
// origin http://demo.localhost:PORT in a signed-in visitor's browser and tries what issue 11
// reproduced: read the platform's CSRF token, call /api/v1 with the visitor's cookie, read
// the cookie. Every attempt must fail. The visitor stays signed in to both the platform and
// a tenant-visible app: sign in on the platform, open the app, pass the hand-off, run a
// callback, reload.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { launchBrowser, repo, screenshot, startTessera, PAGE_WAIT } from './harness.mjs';

let server;
let browser;

const targetDir = process.env.CARGO_TARGET_DIR ?? path.join(repo, 'target');
const tessera = path.join(targetDir, 'release', 'tessera');

function cli(args, input) {
  return execFileSync(tessera, args, {
    env: { ...process.env, TESSERA_DATA_DIR: server.dataDir },
    input,
    encoding: 'utf8',
  });
}

// The attacker's asset: everything an app script could try against the platform. It
// records each outcome in window.__attack and in a <pre id="attack-report">.
const STEAL_JS = String.raw`
(async () => {
  const platform = 'http://127.0.0.1:' + location.port;
  const report = { cookie: document.cookie };
  const attempt = async (name, fn) => {
    try { report[name] = await fn(); } catch (e) { report[name] = 'refused: ' + e.name; }
  };
  await attempt('platformLogin', async () => {
    const r = await fetch(platform + '/login', { credentials: 'include' });
    const html = await r.text();
    return 'read ' + r.status + (/name="csrf" value="[0-9a-f]{64}"/.test(html) ? ' with a CSRF token' : '');
  });
  await attempt('platformApi', async () => {
    const r = await fetch(platform + '/api/v1/tenants', { credentials: 'include' });
    return 'read ' + r.status + ' ' + (await r.text()).slice(0, 80);
  });
  await attempt('mintToken', async () => {
    const r = await fetch(platform + '/api/v1/tenants/demo/tokens', {
      method: 'POST', credentials: 'include',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'stolen', role: 'viewer' }),
    });
    return 'read ' + r.status;
  });
  await attempt('sameOriginAccount', async () => (await fetch('/account/password')).status);
  await attempt('sameOriginApi', async () => (await fetch('/api/v1/tenants')).status);
  window.__attack = report;
  const pre = document.createElement('pre');
  pre.id = 'attack-report';
  pre.textContent = JSON.stringify(report);
  document.body.appendChild(pre);
})();
`;

before(async () => {
  server = await startTessera({ name: 'origins' });
  cli(['admin', 'create-user', 'vera@example.org', '--password-stdin'], 'vera-long-password\n');
  cli(['admin', 'grant', 'vera@example.org', 'demo', 'admin']);
  cli(['admin', 'set-visibility', 'demo/hello', 'tenant']);
  const assets = fs.mkdtempSync(path.join(server.dataDir, 'thief-assets-'));
  fs.writeFileSync(path.join(assets, 'steal.js'), STEAL_JS);
  const hello = path.join(targetDir, 'wasm32-wasip2', 'guest', 'hello.wasm');
  cli(['deploy', 'demo/thief', hello, '--assets', assets]);
  cli(['admin', 'set-visibility', 'demo/thief', 'tenant']);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function signIn(page) {
  await page.goto(`${server.baseUrl}/login`);
  await page.fill('#email', 'vera@example.org');
  await page.fill('#password', 'vera-long-password');
  await Promise.all([page.waitForNavigation(PAGE_WAIT), page.click('button[type=submit]')]);
  // A first sign-in with a password set by the operator is not forced to change it.
  assert.doesNotMatch(new URL(page.url()).pathname, /^\/login/, 'signed in');
}

test('platform pages send a CSP and refuse framing', async () => {
  const res = await fetch(`${server.baseUrl}/login`);
  const csp = res.headers.get('content-security-policy') ?? '';
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.equal(res.headers.get('x-frame-options'), 'DENY');
});

test('signed in on the platform, the visitor opens a tenant app through the hand-off, uses it and reloads', async () => {
  const page = await browser.context.newPage();
  const visited = [];
  page.on('request', (r) => {
    if (r.isNavigationRequest()) visited.push(new URL(r.url()).origin + new URL(r.url()).pathname);
  });
  await signIn(page);
  const app = `${server.appsUrl}/apps/demo/hello/`;
  await page.goto(app);
  await page.waitForURL((u) => u.href === app, PAGE_WAIT);
  assert.ok(
    visited.some((u) => u === `${server.baseUrl}/auth/apps/handoff`) &&
      visited.some((u) => u === `${server.appsUrl}/_tessera/handoff`),
    `went through the hand-off: ${visited.join(' → ')}`,
  );
  await page.waitForSelector('#greeting', PAGE_WAIT);
  await page.fill('#name', 'origins');
  await page.waitForFunction(() => document.querySelector('#greeting')?.textContent?.includes('origins'), null, PAGE_WAIT);
  const response = await page.reload();
  assert.equal(response.status(), 200);
  assert.equal(page.url(), app, 'still signed in to the app after a reload');
  await page.waitForFunction(() => document.querySelector('#greeting')?.textContent?.length > 0, null, PAGE_WAIT);
  // And still signed in to the platform.
  const account = await page.goto(`${server.baseUrl}/account/password`);
  assert.equal(account.status(), 200);
  assert.equal(new URL(page.url()).pathname, '/account/password');
  // The platform's cookie is not the app's.
  const cookies = await browser.context.cookies();
  const platformCookie = cookies.find((c) => c.name === 'tessera_session');
  const appCookie = cookies.find((c) => c.name === 'tessera_app_session');
  assert.equal(platformCookie?.domain, '127.0.0.1');
  assert.equal(appCookie?.domain, 'demo.localhost');
  assert.ok(appCookie.httpOnly && platformCookie.httpOnly);
  await screenshot(page, 'origins-signed-in.png');
  await page.close();
});

test("an app's script on the apps origin cannot read the CSRF token, call /api/v1 or read the cookie", async () => {
  const page = await browser.context.newPage();
  await signIn(page);
  await page.goto(`${server.appsUrl}/apps/demo/thief/`);
  await page.waitForURL((u) => u.href.startsWith(`${server.appsUrl}/apps/demo/thief/`), PAGE_WAIT);
  await page.waitForSelector('#attack-report', PAGE_WAIT);
  const report = await page.evaluate(() => window.__attack);
  await screenshot(page, 'origins-attack.png');
  assert.equal(report.cookie, '', 'no cookie is readable by the app');
  for (const key of ['platformLogin', 'platformApi', 'mintToken']) {
    assert.match(String(report[key]), /^refused: TypeError$/, `${key}: ${report[key]}`);
  }
  assert.equal(report.sameOriginAccount, 404);
  assert.equal(report.sameOriginApi, 404);
  // The visitor has no token that the script could have minted.
  const cookies = await browser.context.cookies(server.baseUrl);
  const session = cookies.find((c) => c.name === 'tessera_session');
  const tokens = await fetch(`${server.baseUrl}/api/v1/tenants/demo/tokens`, {
    headers: { cookie: `tessera_session=${session.value}` },
  });
  assert.equal(tokens.status, 200);
  const listed = await tokens.json();
  assert.ok(!JSON.stringify(listed).includes('stolen'), JSON.stringify(listed));
  await page.close();
});
