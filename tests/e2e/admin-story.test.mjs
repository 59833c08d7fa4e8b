// The admin's story in headless Chromium, in order: a superadmin creates a tenant and
// changes its quotas, sets an OpenID provider (the test provider of tests/services/oidc)
// and tests it, tests a data source's connection; the tenant's owner invites a viewer who
// accepts, takes an API token from the console and deploys an app with the real `git push`,
// rolls it back from the app page, changes its visibility, sets a secret, deletes another
// app, and finds each action in the audit log and its CSV export. The viewer sees only the
// apps they may open and follows a signed-out deep link through sign-in and back. axe-core
// checks every page (no serious or critical violation); screenshots go to
// tests/artifacts/story-*.png; no console error and no failed request.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { checkAccessibility, freePort, launchBrowser, repo, screenshot, startTessera, PAGE_WAIT } from './harness.mjs';

let server;
let oidc;
let admins;
let viewer;
let scratch;

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

/** The test OpenID provider (tests/services/oidc) on a free port. */
async function startProvider(baseUrl) {
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-e2e-oidc-'));
  const out = execFileSync(path.join(repo, 'scripts/services/start-oidc.sh'), [runDir], {
    env: { ...process.env, OIDC_PORT: String(await freePort()), OIDC_REDIRECT_URIS: `${baseUrl}/auth/oidc/callback` },
    encoding: 'utf8',
  });
  const vars = Object.fromEntries(out.trim().split('\n').map((l) => l.split(/=(.*)/s).slice(0, 2)));
  return {
    issuer: vars.OIDC_ISSUER,
    stop() {
      execFileSync(path.join(repo, 'scripts/services/start-oidc.sh'), ['stop', runDir]);
      fs.rmSync(runDir, { recursive: true, force: true });
    },
  };
}

/** `git` in the scratch repository, with no user or system configuration. */
function git(args) {
  return execFileSync('git', args, {
    cwd: path.join(scratch, 'repo'),
    env: {
      ...process.env,
      HOME: scratch,
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_AUTHOR_NAME: 'Ada',
      GIT_AUTHOR_EMAIL: 'ada@example.org',
      GIT_COMMITTER_NAME: 'Ada',
      GIT_COMMITTER_EMAIL: 'ada@example.org',
      GIT_TERMINAL_PROMPT: '0',
    },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Push `main`; returns what the server said (git prints its `remote:` lines on stderr). */
function pushLog(remote) {
  const child = spawnSync('git', ['push', remote, 'main'], {
    cwd: path.join(scratch, 'repo'),
    env: { ...process.env, HOME: scratch, GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0' },
    encoding: 'utf8',
  });
  assert.equal(child.status, 0, `git push failed:\n${child.stderr}`);
  return child.stderr;
}

before(async () => {
  server = await startTessera({ name: 'admin-story' });
  cli(['admin', 'create-user', 'root@example.org', '--password-stdin', '--superadmin'], 'root-long-password\n');
  cli(['admin', 'create-user', 'ada@example.org', '--password-stdin'], 'ada-long-password\n');
  oidc = await startProvider(server.baseUrl);
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-e2e-story-'));
  admins = await launchBrowser();
  viewer = await launchBrowser();
});

after(async () => {
  await admins?.close();
  await viewer?.close();
  oidc?.stop();
  await server?.stop();
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

async function submit(page, selector) {
  await Promise.all([page.waitForNavigation(PAGE_WAIT), page.click(selector)]);
}

async function signIn(page, email, password) {
  assert.equal(new URL(page.url()).pathname, '/login', `${email} is asked to sign in`);
  await page.fill('#email', email);
  await page.fill('#password', password);
  await submit(page, 'button[type=submit]');
}

/** A page that records console errors and failed requests (both must stay empty). */
async function watched(context, errors, who) {
  const page = await context.newPage();
  page.on('console', (msg) => {
    // The platform has no favicon yet: the browser's own request for it is not the page's.
    if (msg.type() === 'error' && !msg.location()?.url?.endsWith('/favicon.ico')) {
      errors.push(`${who}: ${msg.text()} (${msg.location()?.url ?? ''})`);
    }
  });
  page.on('requestfailed', (req) => errors.push(`${who}: ${req.url()}: ${req.failure()?.errorText}`));
  page.on('response', (res) => {
    if (res.status() >= 400 && !res.url().endsWith('/favicon.ico')) errors.push(`${who}: ${res.url()}: HTTP ${res.status()}`);
  });
  return page;
}

test('the admin story: tenant, quotas, provider, invitation, git push, rollback, visibility, secret, delete, audit', async () => {
  const errors = [];
  const page = await watched(admins.context, errors, 'admin');

  // The superadmin follows a signed-out deep link through sign-in and back.
  await page.goto(`${server.baseUrl}/ui/admin/tenants`);
  await signIn(page, 'root@example.org', 'root-long-password');
  assert.equal(new URL(page.url()).pathname, '/ui/admin/tenants');
  await checkAccessibility(page, 'story-tenants');

  // A tenant with its owner, then its quotas.
  await page.fill('#tenant-slug', 'acme');
  await page.fill('#tenant-name', 'Acme Corp');
  await page.fill('#tenant-owner', 'ada@example.org');
  await submit(page, '#create-tenant-submit');
  assert.match(await page.textContent('#notice'), /The tenant acme is created/);
  await page.click('#quotas-acme summary');
  await page.fill('#q-acme-max_apps', '20');
  await page.fill('#q-acme-max_concurrent_callbacks', '8');
  await submit(page, '#set-quotas-acme');
  assert.match(await page.textContent('#notice'), /The quotas of acme are changed/);
  assert.equal((await page.textContent('#tenant-acme .q-max_apps')).trim(), '20');
  await page.click('#quotas-acme summary');
  await screenshot(page, 'story-tenants.png');
  await checkAccessibility(page, 'story-tenants-quotas');

  // An OpenID provider for acme, set from its file and tested: discovery and keys.
  await page.goto(`${server.baseUrl}/ui/acme/connections`);
  await checkAccessibility(page, 'story-connections');
  await page.fill('#provider-slug', 'sso');
  await page.fill(
    '#provider-file',
    [
      'kind = "oidc"',
      'display_name = "Acme SSO"',
      `issuer = "${oidc.issuer}"`,
      'client_id = "dashboard"',
      'client_secret = "dashboard-secret"',
      '[[groups]]',
      'group = "admins"',
      'role = "admin"',
      '',
    ].join('\n'),
  );
  await submit(page, '#set-provider-submit');
  assert.match(await page.textContent('#notice'), /The identity provider is saved/);
  assert.ok(await page.$('#provider-sso'), 'the provider is listed');
  assert.doesNotMatch(await page.content(), /dashboard-secret/);
  await submit(page, '#test-provider-sso');
  const issuer = oidc.issuer.replace(/[.]/g, '\\.');
  assert.match(await page.textContent('#report-headline'), new RegExp(`The provider sso works: .*issuer ${issuer}.* \\d+ keys`));
  await page.click('#report summary');
  await screenshot(page, 'story-provider-test.png');
  await checkAccessibility(page, 'story-provider-test');

  // "Test connection" on the demo tenant's SQLite source.
  await page.goto(`${server.baseUrl}/ui/demo/connections`);
  await submit(page, '#test-source-sales');
  assert.match(await page.textContent('#report-headline'), /connected to the data source `sales` and ran a query/);
  await checkAccessibility(page, 'story-source-test');

  // The owner of acme, in the same browser once the superadmin's cookies are gone.
  await admins.context.clearCookies();
  await page.goto(`${server.baseUrl}/ui/acme/members`);
  await signIn(page, 'ada@example.org', 'ada-long-password');
  assert.equal(new URL(page.url()).pathname, '/ui/acme/members');
  await page.selectOption('#invite-role', 'viewer');
  await page.fill('#invite-note', 'Vic from finance');
  await submit(page, '#invite-submit');
  const link = await page.inputValue('#invitation-link');
  assert.match(link, /\/invite\/acme\/[A-Za-z0-9]{40}$/);
  await checkAccessibility(page, 'story-members');

  // Vic accepts in a browser of his own.
  const vic = await watched(viewer.context, errors, 'viewer');
  await vic.goto(`${server.baseUrl}${new URL(link).pathname}`);
  assert.match(await vic.textContent('#invited-role'), /viewer/);
  await vic.fill('#email', 'vic@example.org');
  await vic.fill('#password', 'vic-long-password');
  await submit(vic, '#accept');
  assert.match(await vic.textContent('#person'), /vic@example\.org/);

  // A token from the console, then `git push` of a prebuilt component to the /git/ endpoint.
  await page.goto(`${server.baseUrl}/account`);
  await page.selectOption('#token-tenant', 'acme');
  await submit(page, '#create-token-submit');
  const token = (await page.textContent('#new-token-value')).trim();
  assert.match(token, /^tsr_/);
  fs.mkdirSync(path.join(scratch, 'repo'));
  git(['init', '--quiet', '--initial-branch', 'main']);
  fs.copyFileSync(hello, path.join(scratch, 'repo', 'app.wasm'));
  fs.writeFileSync(
    path.join(scratch, 'repo', 'tessera.toml'),
    'name = "story"\nkind = "wasm"\ncomponent = "app.wasm"\nvisibility = "restricted"\n',
  );
  git(['add', '.']);
  git(['commit', '--quiet', '-m', 'the first version']);
  const remote = `${server.baseUrl.replace('://', `://git:${token}@`)}/git/acme/story.git`;
  assert.match(pushLog(remote), /deployed version 1 of acme\/story/);
  fs.writeFileSync(path.join(scratch, 'repo', 'NOTES.md'), 'The second version.\n');
  git(['add', '.']);
  git(['commit', '--quiet', '-m', 'the second version']);
  assert.match(pushLog(remote), /deployed version 2 of acme\/story/);
  cli(['deploy', 'acme/hidden', hello]);
  cli(['admin', 'set-visibility', 'acme/hidden', 'restricted']);
  cli(['deploy', 'acme/doomed', hello]);

  // The app page: the pushed versions with their commits; roll back with the button.
  await page.goto(`${server.baseUrl}/ui/acme/apps/story`);
  assert.match(await page.textContent('#status'), /version 2/);
  assert.match(await page.textContent('#version-2'), /[0-9a-f]{12}/);
  await checkAccessibility(page, 'story-app');
  await submit(page, '#rollback-1');
  assert.match(await page.textContent('#notice'), /The version is live/);
  assert.match(await page.textContent('#status'), /version 1/);

  // Before: story is restricted, so Vic does not see it; then the tenant may open it.
  await vic.goto(`${server.baseUrl}/`);
  assert.equal(await vic.$('#app-acme-story'), null, 'restricted: not for a viewer');
  await page.selectOption('#visibility-choice', 'tenant');
  await submit(page, '#visibility-submit');
  assert.match(await page.textContent('#notice'), /The visibility is changed/);
  assert.equal((await page.textContent('#visibility')).trim(), 'tenant');

  // A secret, never shown again.
  await page.fill('#setting-name', 'API_KEY');
  await page.fill('#setting-value', 'story-secret-4711');
  await page.check('#setting-secret');
  await submit(page, '#set-setting-submit');
  assert.match(await page.textContent('#setting-API_KEY'), /secret, set/);
  assert.doesNotMatch(await page.content(), /story-secret-4711/);
  await screenshot(page, 'story-app.png');

  // Delete an app by typing its name.
  await page.goto(`${server.baseUrl}/ui/acme/apps/doomed`);
  await page.fill('#confirm', 'doomed');
  await submit(page, '#delete-app');
  assert.equal(new URL(page.url()).pathname, '/');
  assert.equal(await page.$('#app-acme-doomed'), null, 'doomed is gone');
  assert.ok(await page.$('#app-acme-story'), 'story is listed');
  await screenshot(page, 'story-home.png');
  await checkAccessibility(page, 'story-home');

  // Every action of the story in acme's audit log, and in its CSV export.
  await page.goto(`${server.baseUrl}/ui/acme/audit`);
  await checkAccessibility(page, 'story-audit');
  const actions = [
    'tenant.create',
    'tenant.set_quotas',
    'identity_provider.set',
    'identity_provider.test',
    'invitation.create',
    'invitation.accept',
    'app.deploy',
    'app.rollback',
    'app.set_visibility',
    'app.settings.set',
    'app.delete',
  ];
  const logged = await page.textContent('#audit');
  for (const action of actions) assert.ok(logged.includes(action), `${action} is in the audit log`);
  await screenshot(page, 'story-audit.png');
  const [download] = await Promise.all([page.waitForEvent('download', PAGE_WAIT), page.click('#export')]);
  const csv = fs.readFileSync(await download.path(), 'utf8');
  assert.equal(csv.split('\n')[0], 'id,time_utc,actor,action,target,remote_addr,detail');
  for (const action of actions) assert.ok(csv.includes(`,${action},`), `${action} is in the export`);
  assert.doesNotMatch(csv, /story-secret-4711|dashboard-secret/);

  // The viewer sees only what he may open: story (tenant), not hidden (restricted).
  await vic.goto(`${server.baseUrl}/`);
  assert.ok(await vic.$('#app-acme-story'), 'story is open to the tenant');
  assert.equal(await vic.$('#app-acme-hidden'), null, 'hidden is restricted');
  // Another tenant's apps show only when they are public (the demo's are).
  assert.ok(await vic.$('#app-demo-hello'), "another tenant's public app is listed");
  await screenshot(vic, 'story-viewer-home.png');
  await checkAccessibility(vic, 'story-viewer-home');
  const seen = errors.length;
  const hidden = await vic.goto(`${server.baseUrl}/ui/acme/apps/hidden`);
  assert.equal(hidden.status(), 404);
  // That 404 (its response and the console's line about it) is the one expected.
  const after404 = errors.splice(seen);
  assert.ok(after404.every((e) => e.includes('404')), after404.join('\n'));

  // Signed out, a deep link to the app goes through sign-in and back to the app.
  await viewer.context.clearCookies();
  const appUrl = `${server.baseUrl.replace('127.0.0.1', 'acme.localhost')}/apps/acme/story/`;
  await vic.goto(appUrl);
  await vic.waitForURL(/\/login\?/, PAGE_WAIT);
  await signIn(vic, 'vic@example.org', 'vic-long-password');
  await vic.waitForURL((u) => u.href.startsWith(appUrl), PAGE_WAIT);
  await vic.waitForFunction(() => /world/.test(document.querySelector('#greeting')?.textContent ?? ''), null, PAGE_WAIT);
  await screenshot(vic, 'story-viewer-app.png');

  assert.deepEqual(errors, []);
});
