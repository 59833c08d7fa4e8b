// The dash-features demo app in a real browser with the stock renderer: a Patch grows a
// 300-item list without resending it, set_props updates a component that is no output,
// on_error shows its fallback, and `running` disables a button during an ordinary callback.
//
//   node --test tests/e2e/dash-features.test.mjs
//
// Screenshots and the server log go to tests/artifacts/.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { launchBrowser, openTracedPage, screenshot, startTessera, waitForText } from './harness.mjs';

const WAIT = { timeout: 30_000 };
const APP = '/apps/demo/dash-features/';
const INITIAL_ITEMS = 300;
// The whole list is ~27 kB of JSON; one appended item and the status line are well under 1 kB.
const MAX_PATCH_BYTES = 1_000;

let server;
let browser;

before(async () => {
  server = await startTessera({ name: 'e2e-dash-features' });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop(5000);
});

const isUpdate = (res) => res.url().includes('_dash-update-component') && res.request().method() === 'POST';

/** Runs `action` and returns the update it caused: request and response bodies and sizes. */
async function update(page, action) {
  const [res] = await Promise.all([page.waitForResponse(isUpdate, WAIT), action()]);
  const text = await res.text();
  assert.equal(res.status(), 200, `update answered ${res.status()}: ${text}`);
  const requestText = res.request().postData() ?? '';
  return {
    request: JSON.parse(requestText),
    requestBytes: Buffer.byteLength(requestText),
    body: JSON.parse(text),
    responseBytes: (await res.body()).length,
  };
}

async function open() {
  const { page, trace } = await openTracedPage(browser.context);
  await page.goto(`${server.appsUrl}${APP}`, { waitUntil: 'load', ...WAIT });
  await page.waitForSelector('#items li', WAIT);
  return { page, trace };
}

function assertClean(trace, what) {
  assert.deepEqual(trace.pageErrors, [], `${what}: page errors`);
  assert.deepEqual(trace.failedUpdates, [], `${what}: failed update requests`);
  assert.deepEqual(trace.consoleErrors, [], `${what}: console errors`);
}

test('a Patch appends to the list without resending it, and set_props updates the status', { timeout: 120_000 }, async () => {
  const { page, trace } = await open();
  try {
    assert.equal(await page.$$eval('#items li', (items) => items.length), INITIAL_ITEMS);
    const listBytes = await page.$eval('#items', (el) => el.outerHTML.length);
    const added = await update(page, () => page.click('#add'));
    // Neither the request nor the answer carries the list.
    assert.ok(added.requestBytes < MAX_PATCH_BYTES, `request is ${added.requestBytes} bytes`);
    assert.ok(added.responseBytes < MAX_PATCH_BYTES, `response is ${added.responseBytes} bytes`);
    // Resending the list would cost its ~9.5 kB of HTML (more as JSON) on every click.
    assert.ok(listBytes > 5 * MAX_PATCH_BYTES, `the list is only ${listBytes} bytes`);
    const patch = added.body.response.items.children;
    assert.equal(patch.__dash_patch_update, '__dash_patch_update');
    assert.equal(patch.operations[0].operation, 'Append');
    assert.deepEqual(added.body.sideUpdate, { status: { children: 'added 1' } });

    await page.waitForFunction((n) => document.querySelectorAll('#items li').length === n, INITIAL_ITEMS + 1, WAIT);
    assert.equal(await page.$eval('#items li:last-child', (el) => el.textContent), 'added item 1');
    assert.equal(await page.$eval('#items li:first-child', (el) => el.textContent), 'initial item number 0');
    await waitForText(page, '#status', /^added 1$/, 'set_props');

    await update(page, () => page.click('#add'));
    await page.waitForFunction((n) => document.querySelectorAll('#items li').length === n, INITIAL_ITEMS + 2, WAIT);
    await waitForText(page, '#status', /^added 2$/, 'second set_props');
    await screenshot(page, 'dash-features-patch.png');
    assertClean(trace, 'patch');
  } finally {
    await page.close();
  }
});

test('on_error shows the fallback instead of failing', { timeout: 120_000 }, async () => {
  const { page, trace } = await open();
  try {
    const failed = await update(page, () => page.click('#fail'));
    assert.deepEqual(failed.body.response, { result: { children: 'fallback: the data source is down' } });
    await waitForText(page, '#result', /^fallback: the data source is down$/, 'on_error');
    assertClean(trace, 'on_error');
  } finally {
    await page.close();
  }
});

test('running disables the button while an ordinary callback runs', { timeout: 120_000 }, async () => {
  const { page, trace } = await open();
  try {
    // Record every change of the button's disabled state, as the renderer makes it.
    await page.$eval('#slow', (button) => {
      window.slowStates = [button.disabled];
      new MutationObserver(() => window.slowStates.push(button.disabled)).observe(button, {
        attributes: true,
        attributeFilter: ['disabled'],
      });
    });
    const requests = [];
    page.on('request', (req) => {
      if (req.url().includes('_dash-update-component')) requests.push(req.url());
    });
    const ran = await update(page, () => page.click('#slow'));
    assert.deepEqual(ran.body.response, { 'slow-out': { children: 'slow done 1' } });
    // An ordinary callback: one request, no background handles, no polling.
    assert.equal(ran.body.cacheKey, undefined);
    assert.equal(ran.body.job, undefined);
    await waitForText(page, '#slow-out', /^slow done 1$/, 'slow callback');
    await page.waitForFunction(() => document.querySelector('#slow').disabled === false, null, WAIT);
    const states = await page.evaluate(() => window.slowStates);
    assert.deepEqual(states, [false, true, false], `disabled states: ${JSON.stringify(states)}`);
    await page.waitForTimeout(1500);
    assert.equal(requests.length, 1, `requests: ${requests.join(', ')}`);
    assertClean(trace, 'running');
  } finally {
    await page.close();
  }
});
