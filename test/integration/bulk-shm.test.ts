// The bulk channel's shared-memory fast path (src/common/shm-ring.ts) between real processes on
// one host: a 6-node 4+2 cluster whose gateway puts shard blocks through rings round-trips
// multi-stripe objects byte for byte, survives a node killed mid-PUT, and leaves no ring files
// behind; a cluster whose nodes do not offer shared memory does the same over the sockets; and a
// node maps only a ring it was handed with the right nonce.
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import t, { type Test } from 'tap';
import {
  ByteReader, encodeRef, frameHeader, hello, OP_PUT, ReusedReadBuffer, ringFrame, ringOffer,
} from '../../src/common/bulk-protocol.js';
import { makeClusterToken } from '../../src/common/cluster-auth.js';
import { RingWriter } from '../../src/common/shm-ring.js';
import { NodeClient } from '../../src/replication/node-client.js';
import { startStorageNode } from '../../src/storage-node/server.js';
import { startCluster, type TestCluster } from '../lib/cluster.js';
import { patternSha256, patternStream } from '../lib/nodes.js';
import { s3Client } from '../lib/s3-sdk.js';

const MiB = 1024 * 1024;
/** Several 1 MiB stripes and a short last one. */
const SIZES = [3 * MiB + 5, 21 * MiB];

/** The rings a process has mapped: lines of /proc/PID/maps. */
function ringMappings(pid: number): string[] {
  return readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').filter((line) => line.includes('/tessera-ring-'));
}

async function put(client: S3Client, key: string, size: number, seed: number, body: Readable = patternStream(size, seed)): Promise<void> {
  await client.send(new PutObjectCommand({ Bucket: 'shm', Key: key, Body: body, ContentLength: size }));
}

async function sha256Of(client: S3Client, key: string): Promise<string> {
  const hash = createHash('sha256');
  const { Body } = await client.send(new GetObjectCommand({ Bucket: 'shm', Key: key }));
  for await (const chunk of Body as Readable) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** PUTs the SIZES into a new bucket and checks each reads back byte for byte; returns the client. */
async function roundTripObjects(t: Test, cluster: TestCluster): Promise<S3Client> {
  const client = s3Client(t, cluster.endpoint, { accessKeyId: cluster.accessKeyId, secretAccessKey: cluster.secretAccessKey });
  await client.send(new CreateBucketCommand({ Bucket: 'shm' }));
  for (const [seed, size] of SIZES.entries()) await put(client, `object-${seed}`, size, seed);
  for (const [seed, size] of SIZES.entries()) {
    t.equal(await sha256Of(client, `object-${seed}`), patternSha256(size, seed), `${size} bytes read back byte for byte`);
  }
  return client;
}

/** A pattern body that runs `hook` once `after` bytes have gone by (and waits for it). */
function patternWithHook(size: number, seed: number, after: number, hook: () => Promise<void>): Readable {
  let passed = 0;
  let fired = false;
  return patternStream(size, seed).pipe(new Transform({
    transform(chunk: Buffer, _encoding, done) {
      passed += chunk.length;
      if (fired || passed < after) { done(null, chunk); return; }
      fired = true;
      hook().then(() => done(null, chunk), done);
    },
  }));
}

const shmHost = process.platform === 'linux' && existsSync('/dev/shm');

t.test('a cluster on one host puts shards through shared memory', { skip: !shmHost && 'no /dev/shm' }, async (t) => {
  const cluster = await startCluster({ nodes: 6, ec: '4+2' });
  t.teardown(() => cluster.stop());
  const client = await roundTripObjects(t, cluster);
  const mappings = cluster.nodeIds.map((id) => ringMappings(cluster.nodePid(id)));
  t.ok(mappings.every((lines) => lines.length > 0), 'every node took its shards through a ring');
  t.ok(mappings.flat().every((line) => line.endsWith('(deleted)')), 'and no ring file is left behind');

  const victim = cluster.nodeIds[0]!;
  const size = 24 * MiB;
  await put(client, 'node-killed', size, 7, patternWithHook(size, 7, 6 * MiB, () => cluster.killNode(victim, 'SIGKILL')));
  t.equal(await sha256Of(client, 'node-killed'), patternSha256(size, 7), 'a PUT during which a node died still succeeds and reads back');
});

t.test('nodes that do not offer shared memory take shards over the sockets', async (t) => {
  const cluster = await startCluster({ nodes: 3, ec: '2+1', env: { TESSERA_BULK_SHM: 'off' } });
  t.teardown(() => cluster.stop());
  await roundTripObjects(t, cluster);
  if (shmHost) t.same(cluster.nodeIds.flatMap((id) => ringMappings(cluster.nodePid(id))), [], 'no node mapped a ring');
});

t.test('a node maps only a ring handed to it with its nonce, and reads ring frames only from one', { skip: !shmHost && 'no /dev/shm' }, async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tessera-bulk-shm-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const secret = 'ring-secret';
  const node = await startStorageNode({ id: 'r1', dataDir, listen: '127.0.0.1:0', secret, scrubIntervalMs: 0, bulkSharedMemory: true });
  t.teardown(() => node.close());
  const ring = RingWriter.create()!;
  t.teardown(() => ring.unlink());
  const member = new NodeClient('r1', node.address, secret);
  t.teardown(() => member.close());
  const { bulkAddress, bulkSharedMemory } = await member.health();
  t.ok(bulkSharedMemory, 'the node says it takes rings');

  const reads = new ReusedReadBuffer();
  const colon = bulkAddress.lastIndexOf(':');
  const socket = connect({ host: bulkAddress.slice(0, colon), port: Number(bulkAddress.slice(colon + 1)), onread: reads.onread });
  reads.attach(socket);
  t.teardown(() => socket.destroy());
  const reader = new ByteReader(reads);
  const offer = (path: string, nonce: Buffer) => ringOffer({ path, nonce, size: ring.size });
  socket.write(Buffer.concat([hello(makeClusterToken(secret)), offer('/etc/passwd', ring.nonce), offer(ring.path, Buffer.alloc(16))]));
  t.equal((await reader.status()).status, 0, 'the cluster member is let in');
  t.not((await reader.status()).status, 0, 'a file that is no ring is refused');
  t.not((await reader.status()).status, 0, 'a ring offered with the wrong nonce is refused');
  t.ok(existsSync(ring.path), 'and the node left the refused ring alone');

  const position = ring.put(Buffer.alloc(4096, 1))!;
  socket.write(Buffer.concat([encodeRef(OP_PUT, 'no-ring', 0), frameHeader(4096), ringFrame(position, 4096), frameHeader(0)]));
  const answer = await reader.status();
  t.not(answer.status, 0, 'a ring frame on a connection without a ring fails the put');
  t.match(answer.message, /without a ring/);
});
