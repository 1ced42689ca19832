// The web console end to end in headless Chromium against a real three-node cluster: a wrong
// secret is refused, sign in, see every node up, create a bucket, upload a file and see it listed,
// download it, delete it, then kill a storage node and watch the health view mark it down.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Page } from 'playwright-core';
import t from 'tap';
import { startCluster } from '../lib/cluster.js';

const CHROMIUM = '/usr/bin/chromium';
const workDir = mkdtempSync(join(tmpdir(), 'tessera-console-'));
// A fresh profile directory, so no state from another run leaks in (a persistent context is
// how playwright takes a --user-data-dir). The browser starts first: it is the likelier failure.
const context = await chromium.launchPersistentContext(join(workDir, 'profile'), {
  executablePath: CHROMIUM,
  acceptDownloads: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const cluster = await startCluster({ nodes: 3, ec: '2+1' }).catch(async (err: unknown) => {
  await context.close();
  throw err;
});
// One teardown, in order: the profile directory goes only once the browser is gone.
t.teardown(async () => {
  try {
    await Promise.all([context.close(), cluster.stop()]);
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
});
const page = await context.newPage();
page.setDefaultTimeout(15_000);
page.on('dialog', (dialog) => void dialog.accept());

async function signIn(page: Page, secret: string): Promise<void> {
  await page.fill('input[name=accessKeyId]', cluster.accessKeyId);
  await page.fill('input[name=secretAccessKey]', secret);
  await page.click('#login-form button[type=submit]');
}

t.test('sign in with the S3 access key and secret', async (t) => {
  await page.goto(`${cluster.endpoint}/_tessera/console/`);
  await page.waitForSelector('#login-form', { state: 'visible' });
  await signIn(page, 'not-the-secret');
  await page.waitForSelector('#login-error:has-text("wrong")');
  t.ok(await page.isHidden('#app'), 'a wrong secret does not open the console');
  await signIn(page, cluster.secretAccessKey);
  await page.waitForSelector('#app', { state: 'visible' });
  t.equal(await page.textContent('#whoami'), cluster.accessKeyId, 'the console names the signed-in key');
  const cookies = await context.cookies();
  t.ok(cookies.some((c) => c.name === 'tessera_console' && c.httpOnly), 'the session is an HttpOnly cookie');
  const readable = await page.evaluate<string>('JSON.stringify(sessionStorage) + JSON.stringify(localStorage) + document.cookie');
  t.notOk(readable.includes(cluster.secretAccessKey), 'the secret is kept nowhere the page can read');
});

t.test('the health view shows every node up', async (t) => {
  await page.waitForSelector('#nodes tr[data-node="n3"]');
  for (const id of cluster.nodeIds) {
    t.equal(await page.getAttribute(`#nodes tr[data-node="${id}"]`, 'data-state'), 'up', `${id} is up in the table`);
    t.equal(await page.getAttribute(`#topology g[data-node="${id}"]`, 'data-state'), 'up', `${id} is up in the picture`);
  }
  t.match(await page.textContent('#summary'), /Writable.*3 of 3 nodes up.*erasure 2\+1/);
});

t.test('create a bucket, upload a file, see it listed, download and delete it', async (t) => {
  await page.click('button[data-view=buckets]');
  await page.fill('#create-bucket input[name=bucket]', 'console-photos');
  await page.click('#create-bucket button');
  await page.waitForSelector('#objects-title:has-text("console-photos")');
  const file = join(workDir, 'hello tessera.txt');
  writeFileSync(file, 'uploaded through the console\n');
  await page.setInputFiles('#upload input[type=file]', file);
  await page.click('#upload button');
  const row = page.locator('#objects tr[data-key="hello tessera.txt"]');
  await row.waitFor();
  t.match(await row.textContent(), /29 B/, 'listed with its size');

  const [download] = await Promise.all([page.waitForEvent('download'), row.locator('a:has-text("Download")').click()]);
  t.equal(download.suggestedFilename(), 'hello tessera.txt');
  t.equal(readFileSync((await download.path())!, 'utf8'), 'uploaded through the console\n', 'downloads the bytes uploaded');

  const forged = await page.evaluate(async () => (await fetch('/_tessera/console/s3/console-photos/forged', { method: 'PUT', body: 'x' })).status);
  t.equal(forged, 403, 'a state-changing request without the console header is refused');

  await row.locator('button:has-text("Delete")').click();
  await row.waitFor({ state: 'detached' });
  t.pass('deleted from the listing');
});

t.test('a storage node going down shows in the health view', async (t) => {
  await page.click('button[data-view=health]');
  await cluster.killNode('n2');
  await page.waitForSelector('#nodes tr[data-node="n2"][data-state="down"]');
  t.equal(await page.getAttribute('#topology g[data-node="n2"]', 'data-state'), 'down', 'the picture marks n2 down');
  t.match(await page.textContent('#summary'), /2 of 3 nodes up/);
  const screenshots = process.env.TESSERA_CONSOLE_SCREENSHOTS; // a directory, to look at the page
  if (screenshots) await page.screenshot({ path: join(screenshots, 'health-node-down.png'), fullPage: true });
});

t.test('signing out ends the session', async (t) => {
  await page.click('#logout');
  await page.waitForSelector('#login-form', { state: 'visible' });
  const status = await page.evaluate(async () => (await fetch('/_tessera/console/api/status')).status);
  t.equal(status, 401, 'the console API refuses the old session');
});
