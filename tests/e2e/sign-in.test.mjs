// Sign-in in a real browser: headless Chromium signs in with a local password, through the
// test OpenID provider's own login form (tests/services/oidc, started here), and with the
// directory form against a throwaway slapd (scripts/services/start-ldap.sh, StartTLS), then
// opens a restricted app; a person whose groups grant nothing gets the 404.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { freePort, launchBrowser, repo, screenshot, startTessera, PAGE_WAIT } from './harness.mjs';

let server;
let browser;
let oidc;
let ldap;

const targetDir = process.env.CARGO_TARGET_DIR ?? path.join(repo, 'target');
const tessera = path.join(targetDir, 'release', 'tessera');

/** `tessera admin …` against the running server's data directory. */
function admin(args, input) {
  return execFileSync(tessera, ['admin', ...args], {
    env: { ...process.env, TESSERA_DATA_DIR: server.dataDir },
    input,
    encoding: 'utf8',
  });
}

/**
 * Starts the test OpenID provider with Tessera's callback as its redirect URI, shaped like an
 * Auth0 or Keycloak client set to "client secret sent as post": ES256 id_tokens, and
 * `client_secret_post` the only token endpoint authentication it takes (Tessera picks it
 * from the discovery document).
 */
function startProvider(baseUrl, port) {
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-e2e-oidc-'));
  const out = execFileSync(path.join(repo, 'scripts/services/start-oidc.sh'), [runDir], {
    env: {
      ...process.env,
      OIDC_PORT: String(port),
      OIDC_REDIRECT_URIS: `${baseUrl}/auth/oidc/callback`,
      OIDC_ID_TOKEN_ALG: 'ES256',
      OIDC_TOKEN_AUTH_METHOD: 'client_secret_post',
    },
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

/** Starts a throwaway slapd (StartTLS on, stopped by `stop()`) on free ports. */
async function startDirectory() {
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-e2e-ldap-'));
  const out = execFileSync(path.join(repo, 'scripts/services/start-ldap.sh'), [runDir], {
    env: {
      ...process.env,
      LDAP_PORT: String(await freePort()),
      LDAP_TLS: '1',
      LDAP_TLS_PORT: String(await freePort()),
      LDAP_WATCH_PID: String(process.pid),
    },
    encoding: 'utf8',
  });
  const vars = Object.fromEntries(out.trim().split('\n').map((l) => l.split(/=(.*)/s).slice(0, 2)));
  return {
    vars,
    stop() {
      execFileSync(path.join(repo, 'scripts/services/start-ldap.sh'), ['stop', runDir]);
    },
  };
}

before(async () => {
  server = await startTessera({ name: 'sign-in' });
  oidc = startProvider(server.baseUrl, await freePort());
  admin(['set-visibility', 'demo/hello', 'restricted']);
  // For the directory case: open to every member of the tenant, closed to everyone else.
  admin(['set-visibility', 'demo/report-builder', 'tenant']);
  admin(['create-user', 'dana@example.org', '--password-stdin'], 'dana-long-password\n');
  admin(['grant', 'dana@example.org', 'demo', 'admin']);
  const file = path.join(server.dataDir, 'sso.toml');
  fs.writeFileSync(
    file,
    [
      'kind = "oidc"',
      'display_name = "Example SSO"',
      `issuer = "${oidc.issuer}"`,
      'client_id = "dashboard"',
      'client_secret = "dashboard-secret"',
      '[[groups]]',
      'group = "admins"',
      'role = "admin"',
      '',
    ].join('\n'),
  );
  admin(['idp', 'set', 'demo', 'sso', '--file', file]);
  ldap = await startDirectory();
  const directory = path.join(server.dataDir, 'directory.toml');
  const v = ldap.vars;
  fs.writeFileSync(
    directory,
    [
      'kind = "ldap"',
      'display_name = "Example directory"',
      `url = "${v.LDAP_URL}"`,
      'starttls = true',
      `ca_cert_file = "${v.LDAP_CA_CERT}"`,
      `bind_dn = "${v.LDAP_BIND_DN}"`,
      `bind_password = "${v.LDAP_BIND_PASSWORD}"`,
      `user_base = "${v.LDAP_USER_BASE}"`,
      `group_base = "${v.LDAP_GROUP_BASE}"`,
      '[[groups]]',
      'group = "analysts"',
      'role = "viewer"',
      '',
    ].join('\n'),
  );
  admin(['idp', 'set', 'demo', 'directory', '--file', directory]);
  // The Active-Directory-shaped tree of the same slapd: sAMAccountName logins, disabled
  // accounts filtered by userAccountControl, roles through nested `group` objects.
  const corp = path.join(server.dataDir, 'corp.toml');
  fs.writeFileSync(
    corp,
    [
      'kind = "ldap"',
      'display_name = "Corp AD"',
      `url = "${v.LDAP_URL}"`,
      'starttls = true',
      `ca_cert_file = "${v.LDAP_CA_CERT}"`,
      `bind_dn = "${v.LDAP_AD_BIND_DN}"`,
      `bind_password = "${v.LDAP_AD_BIND_PASSWORD}"`,
      `user_base = "${v.LDAP_AD_USER_BASE}"`,
      `group_base = "${v.LDAP_AD_GROUP_BASE}"`,
      'user_filter = "(&(objectClass=user)(sAMAccountName={username})(!(userAccountControl:1.2.840.113556.1.4.803:=2)))"',
      'group_filter = "(&(objectClass=group)(member={dn}))"',
      '[[groups]]',
      'group = "Dash-Viewers"',
      'role = "viewer"',
      '',
    ].join('\n'),
  );
  admin(['idp', 'set', 'demo', 'corp', '--file', corp]);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  oidc?.stop();
  ldap?.stop();
  await server?.stop();
});

const app = () => `${server.appsUrl}/apps/demo/hello/`;

/** Signs in at Tessera's page with the local form. */
export async function signInLocally(page, email, password) {
  await page.goto(app());
  await page.waitForURL(/\/login\?/, PAGE_WAIT);
  await page.fill('#email', email);
  await page.fill('#password', password);
  await Promise.all([page.waitForNavigation(PAGE_WAIT), page.click('button[type=submit]')]);
}

/** Signs in through the OIDC provider: Tessera's button, then the provider's own form. */
export async function signInWithOidc(page, username, password) {
  await page.goto(app());
  await page.waitForURL(/\/login\?/, PAGE_WAIT);
  await Promise.all([page.waitForURL(/\/interaction\//, PAGE_WAIT), page.click('#sso-sso')]);
  await page.fill('#username', username);
  await page.fill('#password', password);
  await Promise.all([page.waitForURL((u) => u.href.startsWith(app()), PAGE_WAIT), page.click('#submit')]);
}

/** Signs in with the directory (LDAP) form of provider `slug` on Tessera's page. */
export async function signInWithLdap(page, slug, username, password, target = app()) {
  await page.goto(target);
  await page.waitForURL(/\/login\?/, PAGE_WAIT);
  await page.fill(`#ldap-user-${slug}`, username);
  await page.fill(`#ldap-password-${slug}`, password);
  await Promise.all([page.waitForNavigation(PAGE_WAIT), page.click(`#ldap-submit-${slug}`)]);
}

/** The restricted app's Dash page rendered (its layout came from the server). */
async function assertAppOpens(page, pathname = '/apps/demo/hello/') {
  await page.waitForSelector('#react-entry-point', PAGE_WAIT);
  await page.waitForFunction(() => document.querySelector('#_dash-app-content, #react-entry-point > *') !== null, null, PAGE_WAIT);
  assert.equal(new URL(page.url()).pathname, pathname);
}

test('a local account signs in and opens the restricted app', async () => {
  const page = await browser.context.newPage();
  await signInLocally(page, 'dana@example.org', 'dana-long-password');
  await assertAppOpens(page);
  await screenshot(page, 'sign-in-local.png');
  await page.close();
});

test('OIDC (ES256, client_secret_post only) through the provider form: bob opens the app, carol gets the 404', async () => {
  const discovery = await (await fetch(`${oidc.issuer}/.well-known/openid-configuration`)).json();
  assert.deepEqual(discovery.id_token_signing_alg_values_supported, ['ES256']);
  assert.deepEqual(discovery.token_endpoint_auth_methods_supported, ['client_secret_post']);
  // One browser profile for everyone: clearing the cookies signs out of Tessera and of
  // the provider, so each person logs in at the provider's form.
  const page = await browser.context.newPage();
  await browser.context.clearCookies();
  await signInWithOidc(page, 'bob', 'bob-pw');
  await assertAppOpens(page);
  await screenshot(page, 'sign-in-oidc-bob.png');

  await browser.context.clearCookies();
  await signInWithOidc(page, 'carol', 'carol-pw');
  const response = await page.reload();
  assert.equal(response.status(), 404, 'carol has no group that grants the app');
  await screenshot(page, 'sign-in-oidc-carol-404.png');
  await page.close();
});

test('LDAP through the directory form: alice (analysts → viewer) opens a tenant app, carol gets the 404', async () => {
  const tenantApp = `${server.appsUrl}/apps/demo/report-builder/`;
  const page = await browser.context.newPage();
  await browser.context.clearCookies();
  await signInWithLdap(page, 'directory', 'alice', 'alice-pw', tenantApp);
  await assertAppOpens(page, '/apps/demo/report-builder/');
  await screenshot(page, 'sign-in-ldap-alice.png');

  await browser.context.clearCookies();
  await signInWithLdap(page, 'directory', 'carol', 'carol-pw', tenantApp);
  const response = await page.reload();
  assert.equal(response.status(), 404, 'carol is in no group that grants a role in the tenant');

  // A wrong password stays on the sign-in page with the error and signs nobody in.
  await browser.context.clearCookies();
  await signInWithLdap(page, 'directory', 'alice', 'not-her-password', tenantApp);
  assert.match(new URL(page.url()).pathname, /^\/login/);
  assert.ok((await page.textContent('[role=alert]'))?.length > 0, 'an error is shown');
  await page.goto(tenantApp);
  assert.match(new URL(page.url()).pathname, /^\/login/, 'still not signed in');
  await screenshot(page, 'sign-in-ldap-wrong-password.png');
  await page.close();
});

test('LDAP against the AD-shaped tree: ada (Analysts ⊂ Dash-Viewers) opens a tenant app, disabled cy is refused', async () => {
  const tenantApp = `${server.appsUrl}/apps/demo/report-builder/`;
  const page = await browser.context.newPage();
  await browser.context.clearCookies();
  await signInWithLdap(page, 'corp', 'ada', 'ada-pw', tenantApp);
  await assertAppOpens(page, '/apps/demo/report-builder/');
  await screenshot(page, 'sign-in-ldap-ad-ada.png');

  // cy's password is right, but userAccountControl marks the account disabled.
  await browser.context.clearCookies();
  await signInWithLdap(page, 'corp', 'cy', 'cy-pw', tenantApp);
  assert.match(new URL(page.url()).pathname, /^\/login/);
  assert.match((await page.textContent('[role=alert]')) ?? '', /Wrong user name or password/);
  await page.goto(tenantApp);
  assert.match(new URL(page.url()).pathname, /^\/login/, 'cy is not signed in');
  await page.close();
});
