// The dynamic-filters demo app in a real browser: pattern-matching cards added and removed
// at run time, a MATCH callback per card and an ALL callback over every card, all through
// the stock Dash front end and the wasm sandbox.
//
//   node --test tests/e2e/
//
// Screenshots and the server log go to tests/artifacts/.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import {
  chooseDropdownOption,
  launchBrowser,
  openTracedPage,
  screenshot,
  startTessera,
  text,
  waitForText,
} from './harness.mjs';

const WAIT = { timeout: 30_000 };

let server;
let browser;

before(async () => {
  server = await startTessera({ name: 'e2e-dynamic-filters' });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop(5000);
});

/** The CSS selector of a component whose id is a dictionary (Dash puts its sorted JSON in the DOM). */
function byId(type, index) {
  return `[id='{"index":${index},"type":"${type}"}']`;
}

test('filter cards are added, filtered and removed with MATCH and ALL callbacks', { timeout: 180_000 }, async () => {
  const { page, trace } = await openTracedPage(browser.context);
  try {
    await page.goto(`${server.appsUrl}/apps/demo/dynamic-filters/`, WAIT);
    await waitForText(page, '#summary', /^0 filter\(s\), none set: all 2000 orders/, 'initial summary');

    await page.click('#add-filter');
    await waitForText(page, byId('filter-label', 1), /^Filter 1: any region$/, 'label of the first card');
    await page.click('#add-filter');
    await waitForText(page, byId('filter-label', 2), /^Filter 2: any region$/, 'label of the second card');
    await waitForText(page, '#summary', /^2 filter\(s\), none set/, 'summary with two empty cards');
    assert.equal(await page.locator('.filter-card').count(), 2);

    await chooseDropdownOption(page, byId('filter-dropdown', 1), 'North');
    const north = await waitForText(page, byId('filter-label', 1), /^Filter 1: North \(\d+ orders\)$/, 'MATCH label of card 1');
    const northCount = Number(north.match(/\((\d+) orders/)[1]);
    // The MATCH callback wrote only its own card.
    assert.equal(await text(page, byId('filter-label', 2)), 'Filter 2: any region');
    const summaryNorth = await waitForText(page, '#summary', /^2 filter\(s\) on North: \d+ of 2000 orders/, 'ALL summary after North');
    assert.equal(Number(summaryNorth.match(/North: (\d+) of/)[1]), northCount, 'the summary disagrees with the card label');

    await chooseDropdownOption(page, byId('filter-dropdown', 2), 'West');
    const west = await waitForText(page, byId('filter-label', 2), /^Filter 2: West \(\d+ orders\)$/, 'MATCH label of card 2');
    const westCount = Number(west.match(/\((\d+) orders/)[1]);
    const both = await waitForText(page, '#summary', /^2 filter\(s\) on North, West: \d+ of 2000/, 'ALL summary after West');
    assert.equal(Number(both.match(/West: (\d+) of/)[1]), northCount + westCount);
    await screenshot(page, 'dynamic-filters-two-cards.png');

    await page.click(byId('remove-filter', 1));
    await page.waitForSelector(byId('filter-card', 1), { state: 'detached', ...WAIT });
    const after = await waitForText(page, '#summary', /^1 filter\(s\) on West: \d+ of 2000/, 'summary after removing card 1');
    assert.equal(Number(after.match(/West: (\d+) of/)[1]), westCount);
    // The remaining card kept its choice through the rebuild.
    await waitForText(page, byId('filter-label', 2), /^Filter 2: West/, 'card 2 after removing card 1');
    assert.equal(await page.locator('.filter-card').count(), 1);

    // The renderer's own pattern-matching requests went through the server.
    const matchUpdates = trace.updates.filter((u) => u.body?.output === '{"index":["MATCH"],"type":"filter-label"}.children');
    assert.ok(
      matchUpdates.some((u) => u.body.outputs?.id?.index === 2 && u.body.inputs[0]?.value === 'West'),
      `no MATCH request for card 2 with West: ${JSON.stringify(matchUpdates.map((u) => u.body))}`,
    );
    const allUpdates = trace.updates.filter((u) => u.body?.output === 'summary.children');
    assert.ok(
      allUpdates.some((u) => Array.isArray(u.body.inputs[0]) && u.body.inputs[0].length === 2),
      `no ALL request carrying both cards: ${JSON.stringify(allUpdates.map((u) => u.body))}`,
    );
    assert.deepEqual(trace.pageErrors, [], 'page errors');
    assert.deepEqual(trace.failedUpdates, [], 'failed _dash-update-component requests');
    await screenshot(page, 'dynamic-filters.png');
  } catch (err) {
    await screenshot(page, 'dynamic-filters-failure.png').catch(() => {});
    if (trace.consoleErrors.length) err.message += `\nbrowser console errors:\n${trace.consoleErrors.join('\n')}`;
    throw err;
  } finally {
    await page.close();
  }
});

test('the server stops cleanly on SIGTERM', { timeout: 30_000 }, async () => {
  const result = await server.stop(15_000);
  server = null;
  assert.equal(result.timedOut, false, 'tessera was still running 15 s after SIGTERM');
  assert.deepEqual({ code: result.code, signal: result.signal }, { code: 0, signal: null }, 'tessera did not exit cleanly');
});
