// Shared plumbing for the browser end-to-end tests: start Tessera the way README's first
// command does (scripts/demo.sh) on a free port with a fresh data directory, and drive
// Debian's Chromium through playwright-core.
//
// Nothing here skips: a missing Chromium, a missing playwright-core or a server that does
// not come up is a test failure with a message saying how to fix it.

import { spawn } from 'node:child_process';
import http from 'node:http';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const artifacts = path.join(repo, 'tests', 'artifacts');
export const chromiumPath = process.env.TESSERA_E2E_CHROMIUM ?? '/usr/bin/chromium';

// The flags this machine kind needs: root (no sandbox), no GPU, and no background
// connections to Google, which the closed network refuses.
const chromiumArgs = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

/** Seconds to wait for /healthz. Generous because demo.sh may still compile on a cold tree. */
const startTimeoutMs = Number(process.env.TESSERA_E2E_START_TIMEOUT ?? 180) * 1000;
// Compiled components, shared by the servers of all test files and by the Rust tests
// (platform/tests/it/support.rs): each server has a data directory of its own, and compiling
// the eight demo dashboards took ~20 s per server. The artifacts are keyed by component hash,
// wasmtime version and engine settings, and checked against their digest when loaded
// (sandbox::cache), so a stale one is only recompiled.
const sharedComponentCache = path.join(
  process.env.CARGO_TARGET_DIR ?? path.join(repo, 'target'),
  'tessera-test-component-cache',
);

function loadPlaywright() {
  // playwright-core is a devDependency of admin-ui; resolve it from there.
  const require = createRequire(path.join(repo, 'admin-ui', 'package.json'));
  try {
    return require('playwright-core');
  } catch (err) {
    throw new Error(
      `playwright-core is not installed in admin-ui/node_modules (${err.message}); run scripts/setup.sh --test`,
    );
  }
}

/** Asks the kernel for a free TCP port on loopback. */
export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts `scripts/demo.sh` in its own process group with TESSERA_LISTEN on a free port and
 * TESSERA_DATA_DIR in a fresh temp dir, and waits until GET /healthz answers 200.
 * Returns { baseUrl, appsUrl, appRequest(), stop(), exited, log() }: `baseUrl` is the platform
 * (pages, API, sign-in), `appsUrl` the demo tenant's apps origin (`http://demo.localhost:PORT`,
 * which Chromium resolves to loopback), where every `/apps/demo/…` is served.
 */
export async function startTessera({ name = 'tessera' } = {}) {
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-e2e-data-'));
  fs.mkdirSync(artifacts, { recursive: true });
  const logPath = path.join(artifacts, `${name}-server.log`);
  const logFile = fs.openSync(logPath, 'w');
  const listen = `127.0.0.1:${port}`;
  const child = spawn(path.join(repo, 'scripts', 'demo.sh'), [], {
    cwd: repo,
    detached: true, // own process group, so stop() reaches cargo and tessera alike
    stdio: ['ignore', logFile, logFile],
    env: {
      ...process.env,
      TESSERA_LISTEN: listen,
      TESSERA_DATA_DIR: dataDir,
      TESSERA_COMPONENT_CACHE_DIR: sharedComponentCache,
    },
  });
  fs.closeSync(logFile);

  let exitInfo = null;
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exitInfo = { code, signal };
      resolve(exitInfo);
    });
  });
  const killGroup = (sig) => {
    try {
      process.kill(-child.pid, sig);
    } catch {
      // The group is already gone.
    }
  };
  // If the test process dies first, do not leave a server behind.
  const onExit = () => killGroup('SIGKILL');
  process.on('exit', onExit);

  const log = () => fs.readFileSync(logPath, 'utf8');
  const tail = () => log().split('\n').slice(-40).join('\n');

  const baseUrl = `http://${listen}`;
  const deadline = Date.now() + startTimeoutMs;
  for (;;) {
    if (exitInfo) {
      throw new Error(
        `scripts/demo.sh exited (${JSON.stringify(exitInfo)}) before ${baseUrl}/healthz answered; log ${logPath}:\n${tail()}`,
      );
    }
    try {
      const res = await fetch(`${baseUrl}/healthz`, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      killGroup('SIGKILL');
      throw new Error(
        `Tessera did not answer ${baseUrl}/healthz within ${startTimeoutMs / 1000} s; log ${logPath}:\n${tail()}`,
      );
    }
    await sleep(250);
  }

  /** SIGTERM to the group; SIGKILL after `graceMs`. Resolves to how the server ended. */
  async function stop(graceMs = 15000) {
    if (!exitInfo) killGroup('SIGTERM');
    const timer = sleep(graceMs).then(() => 'timeout');
    const result = await Promise.race([exited, timer]);
    process.off('exit', onExit);
    if (result === 'timeout') {
      killGroup('SIGKILL');
      await exited;
    }
    // Stragglers in the group (there should be none).
    killGroup('SIGKILL');
    fs.rmSync(dataDir, { recursive: true, force: true });
    return result === 'timeout' ? { timedOut: true, ...exitInfo } : { timedOut: false, ...result };
  }

  const appsUrl = `http://demo.localhost:${port}`;

  /**
   * An HTTP request to the demo tenant's apps origin from Node: to 127.0.0.1 with the apps
   * origin's Host (Node's resolver does not know *.localhost, and fetch() overrides Host).
   * Resolves to { status, headers, text }.
   */
  function appRequest(pathname, { method = 'GET', headers = {}, body } = {}) {
    return new Promise((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port, path: pathname, method, headers: { ...headers, host: `demo.localhost:${port}` } },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
        },
      );
      req.on('error', reject);
      if (body !== undefined) req.write(body);
      req.end();
    });
  }

  return { baseUrl, appsUrl, appRequest, dataDir, stop, log, logPath };
}

/** Launches headless Chromium with a fresh profile. Returns { context, close() }. */
export async function launchBrowser() {
  if (!fs.existsSync(chromiumPath)) {
    throw new Error(`Chromium not found at ${chromiumPath}; run scripts/setup.sh --test`);
  }
  const { chromium } = loadPlaywright();
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-e2e-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: chromiumArgs,
    viewport: { width: 1280, height: 900 },
  });
  return {
    context,
    async close() {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Opens a page and records what the Dash front end did: page errors, console errors and
 * every `_dash-update-component` exchange (request body, status, failure; `answer` is a
 * promise of the response's text).
 */
export async function openTracedPage(context) {
  const page = await context.newPage();
  const trace = { pageErrors: [], consoleErrors: [], updates: [], failedUpdates: [] };
  page.on('pageerror', (err) => trace.pageErrors.push(String(err?.stack ?? err)));
  page.on('console', (msg) => {
    if (msg.type() === 'error') trace.consoleErrors.push(msg.text());
  });
  page.on('requestfailed', (req) => {
    if (req.url().includes('_dash-update-component')) {
      trace.failedUpdates.push(`${req.url()}: ${req.failure()?.errorText}`);
    }
  });
  page.on('response', (res) => {
    const req = res.request();
    if (!req.url().includes('_dash-update-component')) return;
    let body = null;
    try {
      body = req.postDataJSON();
    } catch {
      body = req.postData();
    }
    const update = { status: res.status(), body, answer: res.text().catch(() => null) };
    trace.updates.push(update);
    if (res.status() >= 400) trace.failedUpdates.push(`${req.url()}: HTTP ${res.status()}`);
  });
  return { page, trace };
}

/** Saves a screenshot under tests/artifacts and returns its path. */
export async function screenshot(page, file) {
  fs.mkdirSync(artifacts, { recursive: true });
  const p = path.join(artifacts, file);
  await page.screenshot({ path: p, fullPage: true });
  return p;
}

/** How long the page helpers below wait for the browser. */
export const PAGE_WAIT = { timeout: 30_000 };

/** Text of an element, trimmed, or null when it is not on the page. */
export async function text(page, selector) {
  const el = await page.$(selector);
  return el ? ((await el.textContent()) ?? '').trim() : null;
}

/** Waits until `selector`'s text matches `re`; the error says what the text was instead. */
export async function waitForText(page, selector, re, what) {
  try {
    await page.waitForFunction(
      ([sel, src, flags]) => new RegExp(src, flags).test(document.querySelector(sel)?.textContent?.trim() ?? ''),
      [selector, re.source, re.flags],
      PAGE_WAIT,
    );
  } catch (err) {
    throw new Error(`${what}: ${selector} never matched ${re}; it reads ${JSON.stringify(await text(page, selector))}`, {
      cause: err,
    });
  }
  return text(page, selector);
}

/**
 * Opens the dcc.Dropdown at `selector` and clicks the option labelled `label`. dcc 4.x renders
 * the dropdown as a <button aria-haspopup=listbox>; clicking it opens a Radix popover (the
 * element named by aria-controls) holding role=option labels.
 */
export async function chooseDropdownOption(page, selector, label) {
  await page.click(selector);
  await page.waitForSelector(`${selector}[aria-expanded="true"]`, PAGE_WAIT);
  const popup = await page.getAttribute(selector, 'aria-controls');
  if (!popup) throw new Error(`${selector} opened no popup (no aria-controls)`);
  await page.locator(`[id="${popup}"]`).getByRole('option', { name: label, exact: true }).click(PAGE_WAIT);
  await page.waitForSelector(`${selector}[aria-expanded="false"]`, PAGE_WAIT);
}

/**
 * Runs axe-core (pinned in admin-ui/package.json) on the page and fails on any serious or
 * critical violation, naming the rule and the elements. The full result of each page is
 * written to tests/artifacts/axe-<name>.json. axe is injected through the DevTools
 * protocol, so the page's CSP (no script but its own) stays as it is served.
 */
export async function checkAccessibility(page, name) {
  const require = createRequire(path.join(repo, 'admin-ui', 'package.json'));
  let source;
  try {
    source = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
  } catch (err) {
    throw new Error(`axe-core is not installed in admin-ui/node_modules (${err.message}); run scripts/setup.sh --test`);
  }
  await page.evaluate(source);
  const result = await page.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document, { resultTypes: ['violations'] }),
  );
  fs.mkdirSync(artifacts, { recursive: true });
  fs.writeFileSync(path.join(artifacts, `axe-${name}.json`), JSON.stringify(result.violations, null, 2));
  const serious = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  if (serious.length > 0) {
    const lines = serious.map(
      (v) => `${v.impact} ${v.id}: ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).slice(0, 5).join(', ')}`,
    );
    throw new Error(`axe-core on ${name} (${page.url()}):\n${lines.join('\n')}`);
  }
  return result.violations;
}
