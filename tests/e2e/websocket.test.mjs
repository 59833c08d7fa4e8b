// Dash's WebSocket callbacks in a real browser with the stock renderer (dash-renderer
// 3.4.1 and its SharedWorker, dash-ws-worker.js): the live-orders page streams 100 ticks
// from one callback while it runs, each appended to a list through set_props and a Patch,
// and all 100 reach the page, in order, in more than one step; a second WebSocket callback
// answers over the same socket, and a third reads the feed back from the page while it runs
// (the server's get_props_request, the renderer's get_props_response). None goes through
// _dash-update-component.
//
//   node --test tests/e2e/websocket.test.mjs

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { launchBrowser, openTracedPage, screenshot, startTessera, waitForText } from './harness.mjs';

const WAIT = { timeout: 30_000 };
const APP = '/apps/demo/live-orders/';
const TICKS = 100;

let server;
let browser;

before(async () => {
  server = await startTessera({ name: 'e2e-websocket' });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop(5000);
});

test('a WebSocket callback streams 100 updates that all reach the page', { timeout: 120_000 }, async () => {
  const { page, trace } = await openTracedPage(browser.context);
  try {
    await page.goto(`${server.appsUrl}${APP}`, { waitUntil: 'load', ...WAIT });
    await page.waitForSelector('#stream-start', WAIT);
    const config = await page.$eval('#_dash-config', (el) => JSON.parse(el.textContent));
    assert.equal(config.websocket.url, `${APP}_dash-ws-callback`);
    assert.match(config.websocket.worker_url, /dash-ws-worker\.v[\w-]+m[0-9a-f]+\.js$/);
    // Count the feed's growth steps as the renderer applies them.
    await page.$eval('#stream-feed', (feed) => {
      window.feedSteps = [];
      new MutationObserver(() => window.feedSteps.push(feed.children.length)).observe(feed, { childList: true });
    });

    await page.click('#stream-start');
    await waitForText(page, '#stream-status', /^streamed 100 ticks$/, 'the streaming callback');
    await page.waitForFunction((n) => document.querySelectorAll('#stream-feed li').length === n, TICKS, WAIT);
    const items = await page.$$eval('#stream-feed li', (lis) => lis.map((li) => li.textContent));
    assert.deepEqual(items, Array.from({ length: TICKS }, (_, i) => `tick ${i + 1}`));
    // Streamed while the callback ran, not delivered with its answer in one piece.
    const steps = await page.evaluate(() => window.feedSteps);
    assert.ok(steps.length > 1, `the feed grew in ${steps.length} step(s): ${JSON.stringify(steps)}`);
    assert.equal(steps.at(-1), TICKS);

    await page.click('#stream-ping');
    await waitForText(page, '#stream-clock', /^server clock \d\d:\d\d:\d\d\.\d{3} UTC$/, 'the clock over the socket');
    // The server asks the page for the feed; the renderer answers what it shows.
    await page.click('#stream-ask');
    await waitForText(page, '#stream-count', /^the page shows 100 ticks$/, 'props read from the page');
    await screenshot(page, 'websocket-stream.png');

    // Both callbacks went over the socket: no HTTP request names them.
    const overHttp = trace.updates.filter((u) => JSON.stringify(u.body ?? '').includes('stream-'));
    assert.deepEqual(overHttp, [], 'stream callbacks sent over HTTP');
    assert.deepEqual(trace.pageErrors, [], 'page errors');
    assert.deepEqual(trace.failedUpdates, [], 'failed update requests');
    assert.deepEqual(trace.consoleErrors, [], 'console errors');
  } finally {
    await page.close();
  }
});
