// The multi-page demo app in a real browser: clientside callbacks that never reach the
// server, navigation between pages (link clicks, deep-link reload, 404), the app's assets
// (CSS applied, JS run, favicon), dcc.Interval ticking into a dcc.Store, and every page
// visited under the app's prefix without a single console error or failed request.
//
//   node --test tests/e2e/multi-page.test.mjs
//
// Screenshots and the server log go to tests/artifacts/.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { launchBrowser, openTracedPage, screenshot, startTessera } from './harness.mjs';

const WAIT = { timeout: 30_000 };
const APP = '/apps/demo/multi-page/';
const ROUTER = '.._pages_nav.children..._pages_content.children..._pages_store.data..';

let server;
let browser;

before(async () => {
  server = await startTessera({ name: 'e2e-multi-page' });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop(5000);
});

/** Every `_dash-update-component` request the page sends, by callback id, as it is sent. */
function recordUpdateRequests(page) {
  const sent = [];
  page.on('request', (req) => {
    if (!req.url().includes('_dash-update-component')) return;
    let output = null;
    try {
      output = req.postDataJSON()?.output ?? null;
    } catch {
      output = '(unparsable body)';
    }
    sent.push(output);
  });
  return sent;
}

async function open(path) {
  const { page, trace } = await openTracedPage(browser.context);
  const sent = recordUpdateRequests(page);
  await page.goto(`${server.appsUrl}${APP}${path}`, { waitUntil: 'load', ...WAIT });
  return { page, trace, sent };
}

function assertClean(trace, what) {
  assert.deepEqual(trace.pageErrors, [], `${what}: page errors`);
  assert.deepEqual(trace.failedUpdates, [], `${what}: failed update requests`);
}

test('clientside callbacks change the page without any request to the server', async () => {
  const { page, trace, sent } = await open('');
  await page.waitForSelector('#home', WAIT);
  // The asset script ran before the renderer and defined the named clientside function.
  assert.equal(await page.evaluate(() => window.tesseraMultiPageAssetLoaded), true);
  assert.equal(await page.evaluate(() => typeof window.dash_clientside?.ui?.theme), 'function');
  // Let the initial callbacks settle (the router has filled the navigation bar), then note
  // where the request log stands.
  await page.waitForSelector('#_pages_nav a', WAIT);
  await page.waitForTimeout(500);
  const before = sent.length;

  await page.fill('#note', 'hello');
  await page.waitForFunction(
    () => document.querySelector('#note-count')?.textContent === '5 characters',
    null,
    WAIT,
  );
  await page.click('#theme-toggle');
  await page.waitForSelector('#app-root.theme-dark', WAIT);
  // The asset stylesheet styles the new class.
  const background = await page.$eval('#app-root', (el) => getComputedStyle(el).backgroundColor);
  assert.equal(background, 'rgb(17, 24, 39)');
  await page.click('#theme-toggle');
  await page.waitForSelector('#app-root.theme-light', WAIT);

  await page.waitForTimeout(500);
  const after = sent.slice(before);
  assert.deepEqual(after, [], `clientside interactions sent requests: ${JSON.stringify(after)}`);
  assert.ok(!sent.includes('note-count.children'), 'the counter reached the server');
  assert.ok(!sent.includes('app-root.className'), 'the theme toggle reached the server');
  assertClean(trace, 'clientside');
  await screenshot(page, 'multi-page-clientside.png');
  await page.close();
});

test('assets: the stylesheet applies, the favicon is the app one', async () => {
  const { page, trace } = await open('');
  await page.waitForSelector('#home', WAIT);
  const border = await page.$eval('.mp-header', (el) => getComputedStyle(el).borderBottomColor);
  assert.equal(border, 'rgb(17, 157, 255)');
  const icon = await page.$eval('link[rel="icon"]', (el) => el.getAttribute('href'));
  assert.match(icon, /^\/apps\/demo\/multi-page\/assets\/favicon\.ico\?m=[0-9a-f]+$/);
  const res = await server.appRequest(icon);
  assert.equal(res.status, 200);
  assert.equal(res.headers['content-type'], 'image/x-icon');
  assertClean(trace, 'assets');
  await page.close();
});

test('navigation changes the URL and the layout; deep links reload; unknown paths 404', async () => {
  const { page, trace, sent } = await open('');
  await page.waitForSelector('#home', WAIT);
  assert.equal(await page.title(), 'Home');
  // The navigation bar is built from the registry (templates left out), current page marked.
  const nav = await page.$$eval('#_pages_nav a', (links) => links.map((a) => [a.textContent, a.getAttribute('href')]));
  assert.deepEqual(nav, [
    ['Home', APP],
    ['Live', `${APP}live`],
  ]);

  await page.click('#link-report-42');
  await page.waitForSelector('#report-title', WAIT);
  assert.equal(new URL(page.url()).pathname, `${APP}report/42`);
  assert.equal(await page.textContent('#report-title'), 'Report 42');
  await page.waitForFunction(() => document.title === 'Report', null, WAIT);
  assert.ok(sent.includes(ROUTER), 'page switching is a server-side callback');

  await page.click('#link-home');
  await page.waitForSelector('#home', WAIT);
  assert.equal(new URL(page.url()).pathname, APP);

  // Browser history goes back to the report.
  await page.goBack();
  await page.waitForSelector('#report-title', WAIT);
  assert.equal(await page.textContent('#report-title'), 'Report 42');

  // A deep link with a query, loaded fresh.
  await page.goto(`${server.appsUrl}${APP}report/7?view=full`, { waitUntil: 'load', ...WAIT });
  await page.waitForSelector('#report-title', WAIT);
  assert.equal(await page.textContent('#report-title'), 'Report 7');
  assert.equal(await page.textContent('#report-view'), 'view: full');
  // Reload keeps the page.
  await page.reload({ waitUntil: 'load' });
  await page.waitForSelector('#report-title', WAIT);
  assert.equal(await page.textContent('#report-title'), 'Report 7');

  await page.goto(`${server.appsUrl}${APP}no/such/page`, { waitUntil: 'load', ...WAIT });
  await page.waitForSelector('#not-found', WAIT);
  assert.match(await page.textContent('#not-found'), /There is no page at \/no\/such\/page\./);
  await page.waitForFunction(() => document.title === 'Page not found', null, WAIT);

  assertClean(trace, 'navigation');
  await screenshot(page, 'multi-page-404.png');
  await page.close();
});

test('dcc.Interval ticks into a session dcc.Store that another callback shows', async () => {
  const { page, trace } = await open('live');
  await page.waitForSelector('#live', WAIT);
  await page.waitForFunction(
    () => document.querySelector('#live-count')?.textContent === 'ticks: 5',
    null,
    WAIT,
  );
  // storage_type "session": the store's data is in sessionStorage under its id.
  const stored = await page.evaluate(() => JSON.parse(sessionStorage.getItem('live-store') ?? 'null'));
  assert.deepEqual(stored, { ticks: 5 });
  // max_intervals stops it: no sixth tick.
  await page.waitForTimeout(1000);
  assert.equal(await page.textContent('#live-count'), 'ticks: 5');
  assertClean(trace, 'live');
  await screenshot(page, 'multi-page-live.png');
  await page.close();
});

/**
 * Every console error, page error, failed request and 4xx/5xx answer of the page, for any
 * URL (the renderer's own bundles, assets and callbacks alike).
 */
function recordEverything(page) {
  const seen = { console: [], pageErrors: [], failed: [], badStatus: [] };
  page.on('console', (msg) => {
    if (msg.type() === 'error') seen.console.push(msg.text());
  });
  page.on('pageerror', (err) => seen.pageErrors.push(String(err?.stack ?? err)));
  page.on('requestfailed', (req) => seen.failed.push(`${req.url()}: ${req.failure()?.errorText}`));
  page.on('response', (res) => {
    if (res.status() >= 400) seen.badStatus.push(`${res.url()}: HTTP ${res.status()}`);
  });
  return seen;
}

test('every page, visited under the prefix by links and by URL, logs no console error and fails no request', async () => {
  const page = await browser.context.newPage();
  const seen = recordEverything(page);
  const at = () => new URL(page.url()).pathname + new URL(page.url()).search;

  // The renderer would log "ID not found in layout" here for the callbacks of pages not
  // shown yet, were it not for Dash's validation_layout.
  await page.goto(`${server.appsUrl}${APP}`, { waitUntil: 'load', ...WAIT });
  await page.waitForSelector('#home', WAIT);
  await page.waitForSelector('#_pages_nav a', WAIT);
  // The header link was written in the layout with get_relative_path.
  assert.equal(await page.getAttribute('#header-live', 'href'), `${APP}live`);

  await page.click('#link-report-42');
  await page.waitForSelector('#report-title', WAIT);
  assert.equal(at(), `${APP}report/42`);
  await page.click('#link-home');
  await page.waitForSelector('#home', WAIT);
  assert.equal(at(), APP);
  await page.click('#link-report-7');
  await page.waitForFunction(() => document.querySelector('#report-view')?.textContent === 'view: full', null, WAIT);
  assert.equal(at(), `${APP}report/7?view=full`);
  await page.click('#header-live');
  await page.waitForFunction(() => document.querySelector('#live-count')?.textContent === 'ticks: 5', null, WAIT);
  assert.equal(at(), `${APP}live`);
  await page.click('#_pages_nav a:text("Home")');
  await page.waitForSelector('#home', WAIT);
  assert.equal(at(), APP);

  // Each page loaded fresh by its URL, the 404 page included.
  for (const [path, selector] of [
    ['report/3', '#report-title'],
    ['live', '#live'],
    ['no/such/page', '#not-found'],
    ['', '#home'],
  ]) {
    await page.goto(`${server.appsUrl}${APP}${path}`, { waitUntil: 'load', ...WAIT });
    await page.waitForSelector(selector, WAIT);
    assert.ok(at().startsWith(APP), `${path} left the app: ${at()}`);
  }
  // Let late callbacks (the interval, the title) finish before judging.
  await page.waitForTimeout(1000);

  assert.deepEqual(seen.console, [], 'console errors');
  assert.deepEqual(seen.pageErrors, [], 'page errors');
  assert.deepEqual(seen.failed, [], 'failed requests');
  assert.deepEqual(seen.badStatus, [], 'answers with an error status');
  await page.close();
});
