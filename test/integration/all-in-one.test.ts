// `tessera start`: the gateway and its storage node in one process, shard bytes handed to the
// node's store in memory. Objects of every shape round-trip bit for bit, ranges included, and
// survive a restart (so they reached the shard files, not just memory).
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, CreateMultipartUploadCommand, CompleteMultipartUploadCommand, GetObjectCommand, PutObjectCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import t from 'tap';
import { freePort, tesseraMain } from '../lib/cluster.js';
import { s3Client } from '../lib/s3-sdk.js';

const credentials = { accessKeyId: 'test-access-key', secretAccessKey: 'test-secret-key-0123456789' };
const dataDir = mkdtempSync(join(tmpdir(), 'tessera-start-'));
const port = await freePort();
const endpoint = `http://127.0.0.1:${port}`;

async function startServer(): Promise<ChildProcess> {
  const child = spawn(process.execPath, [tesseraMain, 'start', '--port', String(port), '--data', dataDir],
    { env: { ...process.env, TESSERA_ACCESS_KEY: credentials.accessKeyId, TESSERA_SECRET_KEY: credentials.secretAccessKey }, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('tessera ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`tessera start exited (${code}):\n${output}`)));
  });
  return child;
}

async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill('SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));
}

let server = await startServer();
t.teardown(async () => {
  await stopServer(server);
  rmSync(dataDir, { recursive: true, force: true });
});
const s3 = s3Client(t, endpoint, credentials);
await s3.send(new CreateBucketCommand({ Bucket: 'local' }));

const md5 = (data: Buffer) => createHash('md5').update(data).digest('hex');

async function getBytes(key: string, range?: string): Promise<Buffer> {
  const reply = await s3.send(new GetObjectCommand({ Bucket: 'local', Key: key, Range: range }));
  return Buffer.from(await reply.Body!.transformToByteArray());
}

// Inline (up to 128 KiB), one shard file of a partial stripe, several 1 MiB stripes and a ragged tail.
const objects = new Map([0, 1, 131_072, 131_073, 1_048_576, 3 * 1_048_576 + 12_345].map((size) => [`size-${size}`, randomBytes(size)]));

t.test('objects of every size round-trip with the MD5 ETag', async (t) => {
  for (const [key, data] of objects) {
    const put = await s3.send(new PutObjectCommand({ Bucket: 'local', Key: key, Body: data }));
    t.equal(put.ETag, `"${md5(data)}"`, `${key}: ETag is the body's MD5`);
    t.ok((await getBytes(key)).equals(data), `${key}: read back bit-identical`);
  }
});

t.test('ranges across stripe boundaries', async (t) => {
  const data = objects.get(`size-${3 * 1_048_576 + 12_345}`)!;
  for (const [start, end] of [[0, 0], [1_048_570, 1_048_600], [1_000_000, 3_000_000], [data.length - 10, data.length - 1]] as const) {
    t.ok((await getBytes(`size-${data.length}`, `bytes=${start}-${end}`)).equals(data.subarray(start, end + 1)), `bytes ${start}-${end}`);
  }
});

t.test('a multipart upload completes into one object', async (t) => {
  const parts = [randomBytes(5 * 1_048_576), randomBytes(777_777)];
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'local', Key: 'multi' }));
  const etags = [];
  for (const [i, body] of parts.entries()) {
    etags.push((await s3.send(new UploadPartCommand({ Bucket: 'local', Key: 'multi', UploadId, PartNumber: i + 1, Body: body }))).ETag);
  }
  await s3.send(new CompleteMultipartUploadCommand({
    Bucket: 'local', Key: 'multi', UploadId,
    MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
  }));
  t.ok((await getBytes('multi')).equals(Buffer.concat(parts)), 'read back bit-identical');
});

t.test('objects survive a restart', async (t) => {
  await stopServer(server);
  server = await startServer();
  for (const [key, data] of objects) t.ok((await getBytes(key)).equals(data), `${key} after restart`);
});
