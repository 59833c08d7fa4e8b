// The demo apps in a real browser: Tessera started by scripts/demo.sh, the stock Dash front
// end in Debian's headless Chromium, callbacks running in the wasm sandbox.
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
  server = await startTessera({ name: 'e2e' });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  // Normally the last test has stopped the server already; this is the safety net.
  await server?.stop(5000);
});

function assertCleanTrace(trace, what) {
  assert.deepEqual(trace.pageErrors, [], `${what}: page errors`);
  assert.deepEqual(trace.failedUpdates, [], `${what}: failed _dash-update-component requests`);
  assert.ok(trace.updates.length > 0, `${what}: the page made no _dash-update-component request at all`);
}

test('sales explorer draws the chart and follows the region dropdown', { timeout: 120_000 }, async () => {
  const { page, trace } = await openTracedPage(browser.context);
  try {
    await page.goto(`${server.appsUrl}/apps/demo/sales-explorer/`, WAIT);
    await page.waitForSelector('#revenue-chart .main-svg', WAIT);

    const title = await waitForText(page, '#revenue-chart .gtitle', /North 2015-2024/, 'initial chart title');
    assert.match(title, /^Revenue by product, North 2015-2024 \(\d+ rows\)$/);
    const summary = await waitForText(page, '#summary', /^North: \d+ rows$/, 'initial summary');
    const n = Number(summary.match(/(\d+)/)[1]);
    assert.ok(n > 0, `North has no rows: ${summary}`);
    await screenshot(page, 'sales-explorer-north.png');
    // plotly.py's default template (the SDK ships it): the plot area's background is
    // #E5ECF6, not plotly.js's bare white.
    const plotBackground = await page.$eval('#revenue-chart .main-svg .bglayer rect.bg', (rect) => getComputedStyle(rect).fill);
    assert.equal(plotBackground, 'rgb(229, 236, 246)', 'the chart carries the default template');

    await chooseDropdownOption(page, '#region', 'Pacific');

    const pacificTitle = await waitForText(page, '#revenue-chart .gtitle', /Pacific/, 'chart title after choosing Pacific');
    assert.match(pacificTitle, /^Revenue by product, Pacific 2015-2024 \(\d+ rows\)$/);
    const pacific = await waitForText(page, '#summary', /^Pacific: \d+ rows$/, 'summary after choosing Pacific');
    const m = Number(pacific.match(/(\d+)/)[1]);
    assert.notEqual(m, n, `Pacific and North report the same row count (${m}); the callback ignored its input`);

    // The change went through the server as the renderer's own request.
    const changed = trace.updates.filter((u) => u.body?.changedPropIds?.includes('region.value'));
    assert.ok(changed.length >= 2, `expected chart and summary updates for region.value, saw ${JSON.stringify(trace.updates)}`);
    for (const u of changed) {
      const region = u.body.inputs.find((i) => i.id === 'region');
      assert.equal(region?.value, 'Pacific');
    }
    assertCleanTrace(trace, 'sales explorer');
    await screenshot(page, 'sales-explorer.png');
  } catch (err) {
    await screenshot(page, 'sales-explorer-failure.png').catch(() => {});
    if (trace.consoleErrors.length) err.message += `\nbrowser console errors:\n${trace.consoleErrors.join('\n')}`;
    throw err;
  } finally {
    await page.close();
  }
});

test('hello greets whoever is typed into the input', { timeout: 60_000 }, async () => {
  const { page, trace } = await openTracedPage(browser.context);
  try {
    await page.goto(`${server.appsUrl}/apps/demo/hello/`, WAIT);
    // examples/hello: dcc.Input id=name (value "world") drives html.Div id=greeting.
    await waitForText(page, '#greeting', /^Hello, world!$/, 'initial greeting');
    const before = trace.updates.length;
    await page.fill('#name', 'Ada Lovelace');
    await waitForText(page, '#greeting', /^Hello, Ada Lovelace!$/, 'greeting after typing');
    const typed = trace.updates.slice(before).filter((u) => u.body?.changedPropIds?.includes('name.value'));
    assert.ok(typed.length > 0, 'typing made no _dash-update-component request for name.value');
    assertCleanTrace(trace, 'hello');
    await screenshot(page, 'hello.png');
  } catch (err) {
    await screenshot(page, 'hello-failure.png').catch(() => {});
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
  // `cargo run` replaces itself with tessera (exec), so this is tessera's own exit status:
  // a graceful shutdown exits 0 rather than dying of the signal.
  assert.deepEqual({ code: result.code, signal: result.signal }, { code: 0, signal: null }, 'tessera did not exit cleanly');
});
