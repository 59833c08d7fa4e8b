// The live-orders demo app in a real browser: a dcc.Interval ticks every 2 s, a clientside
// callback turns the tick into the current 2-second window, and the memoized aggregate
// over the demo's `orders` table (the `sales` SQLite source, fed one order a second by the
// demo) answers. Two viewers polling in the same window share one computed answer: each
// answer carries the time it was computed, so a stamp both pages received is a memo hit.
//
//   node --test tests/e2e/live-orders.test.mjs

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { launchBrowser, openTracedPage, screenshot, startTessera, waitForText } from './harness.mjs';

const WAIT = { timeout: 30_000 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let server;
let browser;

before(async () => {
  server = await startTessera({ name: 'e2e-live-orders' });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop(5000);
});

/** The `computed at …` stamps of every aggregate answer the page received. */
function recordStamps(page) {
  const stamps = [];
  page.on('response', async (res) => {
    if (!res.url().includes('_dash-update-component') || res.status() !== 200) return;
    try {
      const body = JSON.parse(await res.text());
      const stamp = body?.response?.['orders-stamp']?.children;
      if (stamp) stamps.push(stamp);
    } catch {
      // Not JSON (a 204 has no body): not an aggregate answer.
    }
  });
  return stamps;
}

test('the interval polls the orders and a second viewer shares the memoized answer', { timeout: 120_000 }, async () => {
  const first = await openTracedPage(browser.context);
  const second = await openTracedPage(browser.context);
  try {
    const firstStamps = recordStamps(first.page);
    const secondStamps = recordStamps(second.page);
    await first.page.goto(`${server.appsUrl}/apps/demo/live-orders/`, WAIT);
    const count = await waitForText(first.page, '#orders-count', /^\d+ orders, \$\d+\.\d\d$/, 'the number of orders');
    await first.page.waitForSelector('#orders-chart .main-svg', WAIT);
    await second.page.goto(`${server.appsUrl}/apps/demo/live-orders/`, WAIT);
    await waitForText(second.page, '#orders-count', /^\d+ orders/, 'the second viewer\'s number');

    // The interval keeps firing: new answers arrive and the feed's orders show up.
    const deadline = Date.now() + 30_000;
    let shared = [];
    let grown = false;
    while (Date.now() < deadline) {
      await sleep(1000);
      shared = firstStamps.filter((s) => secondStamps.includes(s));
      const now = await first.page.textContent('#orders-count');
      grown = Number(now.match(/^(\d+)/)?.[1]) > Number(count.match(/^(\d+)/)[1]);
      if (shared.length > 0 && grown && new Set(firstStamps).size >= 3) break;
    }
    assert.ok(new Set(firstStamps).size >= 3, `the interval did not keep polling: ${JSON.stringify(firstStamps)}`);
    assert.ok(grown, `the number of orders never grew from ${count}`);
    assert.ok(
      shared.length > 0,
      `no answer was shared between the two viewers (memo hit): ${JSON.stringify({ firstStamps, secondStamps })}`,
    );
    for (const { trace } of [first, second]) {
      assert.deepEqual(trace.pageErrors, [], 'page errors');
      assert.deepEqual(trace.failedUpdates, [], 'failed _dash-update-component requests');
    }
    await screenshot(first.page, 'live-orders.png');
  } catch (err) {
    await screenshot(first.page, 'live-orders-failure.png').catch(() => {});
    throw err;
  } finally {
    await first.page.close();
    await second.page.close();
  }
});
