// The big-table demo app in a real browser: a dash-table DataTable paging, sorting and
// filtering 1,000,000 rows server-side. Every change must fetch exactly one page.
//
//   node --test tests/e2e/big-table.test.mjs
//
// Screenshots and the server log go to tests/artifacts/.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { launchBrowser, openTracedPage, screenshot, startTessera } from './harness.mjs';

const WAIT = { timeout: 30_000 };
const PAGE_SIZE = 20;
// One page of 20 rows is about 2 kB of JSON; the whole table would be tens of megabytes.
const MAX_RESPONSE_BYTES = 8_000;

let server;
let browser;

before(async () => {
  server = await startTessera({ name: 'e2e-big-table' });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop(5000);
});

const isUpdate = (res) => res.url().includes('_dash-update-component') && res.request().method() === 'POST';

/** Runs `action` and returns the table update it caused: request inputs, rows, byte size. */
async function tableUpdate(page, action) {
  const [res] = await Promise.all([page.waitForResponse(isUpdate, WAIT), action()]);
  assert.equal(res.status(), 200, `update answered ${res.status()}: ${await res.text()}`);
  const bytes = (await res.body()).length;
  const body = JSON.parse(await res.text());
  const request = res.request().postDataJSON();
  const inputs = Object.fromEntries(request.inputs.map((i) => [i.property, i.value]));
  const rows = body.response.table.data;
  return { inputs, rows, bytes, pageCount: body.response.table.page_count, matches: body.response.matches.children };
}

function assertOnePage(update, what) {
  assert.equal(update.rows.length, PAGE_SIZE, `${what}: the response holds ${update.rows.length} rows`);
  assert.ok(update.bytes < MAX_RESPONSE_BYTES, `${what}: the response is ${update.bytes} bytes`);
}

/** The text of every cell of a column, as rendered. */
async function column(page, id) {
  await page.waitForSelector(`td[data-dash-column="${id}"]`, WAIT);
  return page.$$eval(`td[data-dash-column="${id}"]`, (cells) => cells.map((c) => c.textContent.trim()));
}

async function waitForFirstCell(page, id, expected, what) {
  try {
    await page.waitForFunction(
      ([col, want]) => document.querySelector(`td[data-dash-column="${col}"]`)?.textContent.trim() === want,
      [id, String(expected)],
      WAIT,
    );
  } catch (err) {
    throw new Error(`${what}: first ${id} cell never read ${expected}; column: ${await column(page, id)}`, { cause: err });
  }
}

test('DataTable pages, sorts and filters a million rows one page at a time', { timeout: 180_000 }, async () => {
  const { page, trace } = await openTracedPage(browser.context);
  try {
    const first = await tableUpdate(page, () => page.goto(`${server.appsUrl}/apps/demo/big-table/`, WAIT));
    assertOnePage(first, 'first page');
    assert.equal(first.pageCount, 1_000_000 / PAGE_SIZE);
    assert.equal(first.matches, '1000000 matching rows');
    await waitForFirstCell(page, 'id', 0, 'first page');
    assert.equal((await column(page, 'id')).length, PAGE_SIZE);
    await screenshot(page, 'big-table-first-page.png');

    const next = await tableUpdate(page, () => page.click('button.next-page'));
    assert.equal(next.inputs.page_current, 1);
    assertOnePage(next, 'next page');
    assert.equal(next.rows[0].id, PAGE_SIZE);
    await waitForFirstCell(page, 'id', PAGE_SIZE, 'next page');

    const sorted = await tableUpdate(page, () => page.click('th.dash-header[data-dash-column="price"] .column-header--sort'));
    assert.equal(sorted.inputs.sort_by?.[0]?.column_id, 'price');
    const direction = sorted.inputs.sort_by[0].direction;
    assertOnePage(sorted, 'sorted page');
    const prices = sorted.rows.map((r) => r.price);
    const ordered = prices.every((p, i) => i === 0 || (direction === 'asc' ? prices[i - 1] <= p : prices[i - 1] >= p));
    assert.ok(ordered, `prices are not ${direction}: ${prices}`);
    await waitForFirstCell(page, 'id', sorted.rows[0].id, 'sorted page');

    const filterCell = 'th.dash-filter[data-dash-column="quantity"] input[type="text"]';
    await page.click(filterCell);
    await page.fill(filterCell, '> 30');
    const filtered = await tableUpdate(page, () => page.press(filterCell, 'Enter'));
    assert.match(filtered.inputs.filter_query, /^\{quantity\} s?> 30$/);
    assertOnePage(filtered, 'filtered page');
    assert.ok(filtered.rows.every((r) => r.quantity > 30), 'a row with quantity <= 30 passed the filter');
    const matching = Number(filtered.matches.match(/^(\d+) matching rows$/)[1]);
    assert.ok(matching > 500_000 && matching < 800_000, `${matching} rows have quantity > 30`);
    assert.equal(filtered.pageCount, Math.ceil(matching / PAGE_SIZE));
    await waitForFirstCell(page, 'id', filtered.rows[0].id, 'filtered page');
    const shown = (await column(page, 'quantity')).map(Number);
    assert.ok(shown.every((q) => q > 30), `the table shows ${shown}`);
    await screenshot(page, 'big-table-filtered.png');

    assert.deepEqual(trace.failedUpdates, []);
    assert.deepEqual(trace.pageErrors, []);
    assert.ok(trace.updates.every((u) => u.status === 200));
  } catch (err) {
    await screenshot(page, 'big-table-failure.png').catch(() => {});
    throw err;
  } finally {
    await page.close();
  }
});

test('a malformed filter_query is a 4xx with a JSON error', { timeout: 60_000 }, async () => {
  const res = await server.appRequest('/apps/demo/big-table/_dash-update-component', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      output: '..table.data...table.page_count...matches.children..',
      outputs: [
        { id: 'table', property: 'data' },
        { id: 'table', property: 'page_count' },
        { id: 'matches', property: 'children' },
      ],
      inputs: [
        { id: 'table', property: 'page_current', value: 0 },
        { id: 'table', property: 'page_size', value: PAGE_SIZE },
        { id: 'table', property: 'sort_by', value: [] },
        { id: 'table', property: 'filter_query', value: '{quantity} frob 3' },
      ],
      changedPropIds: ['table.filter_query'],
    }),
  });
  assert.ok(res.status >= 400 && res.status < 500, `status ${res.status}`);
  const body = JSON.parse(res.text);
  assert.match(JSON.stringify(body), /frob/);
});
