// One 1 GiB object through the aws CLI (`aws s3 cp`: parallel multipart upload, then parallel
// ranged download) on a real multi-process cluster, checked byte for byte by SHA-256.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { startCluster } from '../lib/cluster.js';

const execFileAsync = promisify(execFile);
const GiB = 1024 ** 3;
const BLOCK = 1024 * 1024;

const cluster = await startCluster({ nodes: 4 });
t.teardown(() => cluster.stop());
const workDir = mkdtempSync(join(tmpdir(), 'tessera-1gib-'));
t.teardown(() => rmSync(workDir, { recursive: true, force: true }));

/** 1 GiB of distinct 1 MiB blocks (a random block stamped with its index), and its SHA-256. */
async function writeGibFile(path: string): Promise<string> {
  const block = randomBytes(BLOCK);
  const hash = createHash('sha256');
  const file = await open(path, 'w');
  try {
    for (let i = 0; i < GiB / BLOCK; i++) {
      block.writeUInt32BE(i, 0);
      hash.update(block);
      await file.write(block);
    }
  } finally {
    await file.close();
  }
  return hash.digest('hex');
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

const aws = (...args: string[]) => execFileAsync('aws', ['--endpoint-url', cluster.endpoint, ...args], { env: cluster.clientEnv, maxBuffer: 1 << 20 });

t.test('aws s3 cp: 1 GiB up and down, identical by SHA-256', async (t) => {
  const source = join(workDir, 'source.bin');
  const expected = await writeGibFile(source);
  await aws('s3', 'mb', 's3://large');
  await aws('s3', 'cp', '--only-show-errors', source, 's3://large/disk.img');
  rmSync(source);
  const head = JSON.parse((await aws('s3api', 'head-object', '--bucket', 'large', '--key', 'disk.img')).stdout) as { ContentLength: number; ETag: string };
  t.equal(head.ContentLength, GiB);
  t.match(head.ETag, /^"[0-9a-f]{32}-\d+"$/, 'a multipart ETag');
  const copy = join(workDir, 'copy.bin');
  await aws('s3', 'cp', '--only-show-errors', 's3://large/disk.img', copy);
  t.equal(await sha256File(copy), expected, 'downloaded bytes equal the uploaded ones');
});
