// The cluster core end to end through the aws CLI: `tessera cluster` with six node processes at
// 4+2, objects from 0 bytes to 200 MiB, two nodes killed, a node restarted and healed, a write
// without quorum refused with 503, a seventh node added with `tessera admin` while reads go on.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { startCluster } from '../lib/cluster.js';
import { patternSha256, patternStream } from '../lib/nodes.js';

const execFileAsync = promisify(execFile);
const MiB = 1024 * 1024;
const SIZES = [0, 1, 64 * 1024, 129 * 1024, 5 * MiB + 3, 200 * MiB];

const cluster = await startCluster({ nodes: 6, ec: '4+2' });
t.teardown(() => cluster.stop());
const workDir = mkdtempSync(join(tmpdir(), 'tessera-cluster-s3-'));
t.teardown(() => rmSync(workDir, { recursive: true, force: true }));

async function aws(...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('aws', ['--endpoint-url', cluster.endpoint, ...args],
    { env: cluster.clientEnv, maxBuffer: 64 * MiB });
  return stdout;
}

async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function download(key: string): Promise<string> {
  const path = join(workDir, `get-${key}`);
  await aws('s3api', 'get-object', '--bucket', 'core', '--key', key, path);
  const sha = await fileSha256(path);
  rmSync(path);
  return sha;
}

async function expectAllIntact(t: Test): Promise<void> {
  for (const [i, size] of SIZES.entries()) {
    t.equal(await download(`obj-${size}`), patternSha256(size, i), `${size} bytes read back bit-identical`);
  }
}

t.test('objects from 0 bytes to 200 MiB round-trip through the aws CLI', async (t) => {
  await aws('s3api', 'create-bucket', '--bucket', 'core');
  for (const [i, size] of SIZES.entries()) {
    const path = join(workDir, `put-${size}`);
    await pipeline(patternStream(size, i), createWriteStream(path));
    await aws('s3api', 'put-object', '--bucket', 'core', '--key', `obj-${size}`, '--body', path);
    rmSync(path);
  }
  const listed = JSON.parse(await aws('s3api', 'list-objects-v2', '--bucket', 'core')) as { Contents: Array<{ Key: string; Size: number }> };
  t.same(listed.Contents.map((o) => o.Size).sort((a, b) => a - b), [...SIZES].sort((a, b) => a - b), 'every object listed with its size');
  await expectAllIntact(t);
});

t.test('kill -9 any two nodes: every object still reads back bit-identical', async (t) => {
  await cluster.killNode('n1');
  await cluster.killNode('n4');
  await expectAllIntact(t);
});

t.test('a node that missed writes is brought up to date by heal', async (t) => {
  const path = join(workDir, 'late');
  await pipeline(patternStream(3 * MiB, 99), createWriteStream(path));
  await aws('s3api', 'put-object', '--bucket', 'core', '--key', 'written-while-down', '--body', path);
  await cluster.restartNode('n1');
  await cluster.restartNode('n4');
  await new Promise((r) => setTimeout(r, 1500));
  const heal = await cluster.tessera(['admin', '--data', cluster.dataDir, 'heal']);
  t.equal(heal.code, 0, `heal succeeds: ${heal.stdout}${heal.stderr}`);
  const scrub = await cluster.tessera(['admin', '--data', cluster.dataDir, 'scrub']);
  t.equal(scrub.code, 0, `scrub finds nothing missing or corrupt:\n${scrub.stdout}`);
  await cluster.killNode('n2');
  await cluster.killNode('n3');
  t.equal(await download('written-while-down'), patternSha256(3 * MiB, 99), 'reads from the healed nodes');
  await cluster.restartNode('n2');
  await cluster.restartNode('n3');
});

t.test('a write that cannot reach its quorum fails with 503 and leaves nothing visible', async (t) => {
  for (const id of ['n1', 'n2', 'n3']) await cluster.killNode(id);
  const path = join(workDir, 'doomed');
  await pipeline(patternStream(2 * MiB, 7), createWriteStream(path));
  const failure = await aws('s3api', 'put-object', '--bucket', 'core', '--key', 'doomed', '--body', path)
    .then(() => 'succeeded', (err: { stderr?: string }) => String(err.stderr));
  t.match(failure, /503|SlowDown|ServiceUnavailable/, 'the client sees a 503');
  for (const id of ['n1', 'n2', 'n3']) await cluster.restartNode(id);
  await new Promise((r) => setTimeout(r, 1500));
  const head = await aws('s3api', 'head-object', '--bucket', 'core', '--key', 'doomed')
    .then(() => 'found', (err: { stderr?: string }) => String(err.stderr));
  t.match(head, /404|Not Found/, 'no partially visible object');
});

t.test('adding a seventh node with tessera admin: reads never fail while data moves', async (t) => {
  const address = await cluster.startExtraNode('n7');
  let reading = true;
  let failures = 0;
  let reads = 0;
  const reader = (async () => {
    while (reading) {
      const sha = await download('obj-5242883').catch(() => 'error');
      reads++;
      if (sha !== patternSha256(5 * MiB + 3, 4)) failures++;
    }
  })();
  const add = await cluster.tessera(['admin', '--data', cluster.dataDir, 'node', 'add', '--id', 'n7', '--address', address]);
  t.equal(add.code, 0, add.stdout + add.stderr);
  const rebalance = await cluster.tessera(['admin', '--data', cluster.dataDir, 'rebalance']);
  t.equal(rebalance.code, 0, rebalance.stdout + rebalance.stderr);
  reading = false;
  await reader;
  t.ok(reads > 0, `${reads} reads during the rebalance`);
  t.equal(failures, 0, 'no read failed');
  await expectAllIntact(t);
});
