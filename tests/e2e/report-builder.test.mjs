// The report-builder demo app in a real browser: a background callback run as a job on
// the server, polled by the stock Dash renderer (cacheKey/job), with a progress bar that
// advances, `running` props that disable the build button, and a cancel button whose
// request carries the renderer's `cancelJob`, after which no result arrives.
//
//   node --test tests/e2e/report-builder.test.mjs

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { launchBrowser, openTracedPage, screenshot, startTessera } from './harness.mjs';

const WAIT = { timeout: 30_000 };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let server;
let browser;

before(async () => {
  server = await startTessera({ name: 'e2e-report-builder' });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop(5000);
});

/** Every `_dash-update-component` exchange with its URL, status and answer. */
function recordExchanges(page) {
  const log = [];
  page.on('response', async (res) => {
    const url = res.url();
    if (!url.includes('_dash-update-component')) return;
    const entry = { url, status: res.status(), at: Date.now(), body: null };
    log.push(entry);
    if (res.status() === 200) {
      try {
        entry.body = JSON.parse(await res.text());
      } catch {
        entry.body = 'unreadable';
      }
    }
  });
  return log;
}

const barValue = (page) => page.$eval('#bar', (el) => Number(el.getAttribute('value')));

test('the progress bar advances and the job ends with its report', async () => {
  const { page, trace } = await openTracedPage(browser.context);
  const log = recordExchanges(page);
  await page.goto(`${server.appsUrl}/apps/demo/report-builder/`);
  await page.waitForSelector('#build', WAIT);
  await page.click('#build');
  // `running`: the build button is disabled and cancel enabled while the job runs.
  await page.waitForFunction(() => document.querySelector('#build')?.disabled === true, null, WAIT);
  assert.equal(await page.$eval('#cancel', (el) => el.disabled), false);
  const seen = new Set();
  const started = Date.now();
  while (seen.size < 3 && Date.now() - started < 20_000) {
    seen.add(await barValue(page));
    await sleep(100);
  }
  const values = [...seen].filter((v) => v > 0);
  assert.ok(values.length >= 2, `the progress bar should advance, saw ${[...seen]}`);
  await page.waitForFunction(
    () => /Report 1 is ready/.test(document.querySelector('#status')?.textContent ?? ''),
    null,
    WAIT,
  );
  await page.waitForFunction(() => document.querySelector('#build')?.disabled === false, null, WAIT);
  const first = log.find((e) => e.body?.job);
  assert.ok(first, 'the first answer carries a job handle');
  assert.ok(!('multi' in first.body), 'the first answer has no multi key');
  const polls = log.filter((e) => e.url.includes(`job=${first.body.job}`));
  assert.ok(polls.length >= 3, `the renderer polls the job (saw ${polls.length})`);
  assert.ok(
    polls.some((e) => e.body?.progress?.['bar.value']),
    'some poll answers carry progress',
  );
  assert.deepEqual(trace.pageErrors, []);
  await screenshot(page, 'report-builder-done.png');
  await page.close();
});

test('cancel stops the job: cancelJob is sent and no result arrives', async () => {
  const { page, trace } = await openTracedPage(browser.context);
  const log = recordExchanges(page);
  const cancelRequests = [];
  page.on('request', (req) => {
    if (req.url().includes('cancelJob=')) cancelRequests.push(req.url());
  });
  await page.goto(`${server.appsUrl}/apps/demo/report-builder/`);
  await page.waitForSelector('#build', WAIT);
  await page.click('#build');
  await page.waitForFunction(() => Number(document.querySelector('#bar')?.getAttribute('value')) >= 2, null, WAIT);
  const job = log.find((e) => e.body?.job)?.body.job;
  assert.ok(job, 'a job was started');
  await page.click('#cancel');
  await page.waitForFunction(() => document.querySelector('#build')?.disabled === false, null, WAIT);
  const cancelledAt = Date.now();
  assert.equal(cancelRequests.length, 1, `one cancelJob request: ${cancelRequests}`);
  assert.ok(cancelRequests[0].includes(`cancelJob=${job}`), cancelRequests[0]);
  // Longer than the job would have needed to finish.
  await sleep(4000);
  assert.equal((await page.textContent('#status')).trim(), 'No report yet.');
  const late = log.filter((e) => e.at > cancelledAt && e.url.includes(`job=${job}`) && e.body?.response);
  assert.deepEqual(late, [], 'no result arrives after the cancel');
  assert.ok(!log.some((e) => e.body?.response?.status), 'the status never changed');
  assert.equal(await barValue(page), 0, 'progressDefault resets the bar');
  assert.deepEqual(trace.pageErrors, []);
  await screenshot(page, 'report-builder-cancelled.png');
  await page.close();
});
