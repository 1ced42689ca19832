// A node that stops answering without dropping its connections (SIGSTOP: a machine stuck in swap,
// a hung disk, a long pause) must hold neither reads nor writes: HEAD and GET of every object
// (small ones whose bytes live in the metadata, large ones in shards) answer with the right bytes,
// and PUT and DELETE are acknowledged, while the node is frozen — long before the node calls'
// deadline would have released them; once it thaws, what was written reads back.
import { createHash } from 'node:crypto';
import t from 'tap';
import { UNARY_DEADLINE_MS } from '../../src/common/node-service.js';
import { FaultCluster } from '../lib/faults/fault-cluster.js';
import { FaultS3Client } from '../lib/faults/s3.js';

const KiB = 1024;
const BUCKET = 'frozen';
const SIZES = [1, 3 * KiB, 200 * KiB, 1100 * KiB];
const OBJECTS = 24;

const cluster = await FaultCluster.start({ nodes: 6, dataShards: 4, parityShards: 2, namespaces: false });
t.teardown(() => cluster.stop());
const client = new FaultS3Client(cluster.endpoint, cluster, cluster.region, 60_000, 32);
t.teardown(() => client.close());

const bodies = new Map<string, Buffer>();
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

t.test('objects stored while every node is up', async (t) => {
  t.equal((await client.createBucket(BUCKET)).status, 200, 'bucket created');
  for (let i = 0; i < OBJECTS; i++) {
    const body = Buffer.alloc(SIZES[i % SIZES.length]!, `object ${i} `);
    bodies.set(`obj-${i}`, body);
  }
  const puts = await Promise.all([...bodies].map(([key, body]) => client.putObject(BUCKET, key, body)));
  t.same(puts.map((r) => r.status), puts.map(() => 200), 'every PUT acknowledged');
});

t.test('with one node frozen, every read answers, right, well within the call deadline', async (t) => {
  const frozen = cluster.nodeIds[2]!;
  cluster.pauseNode(frozen);
  t.teardown(() => cluster.resumeNode(frozen));
  const timed = async (read: () => Promise<{ status: number; body: Buffer }>) => {
    const started = Date.now();
    const reply = await read();
    return { ...reply, ms: Date.now() - started };
  };
  const reads = await Promise.all([...bodies.keys()].flatMap((key) => [
    timed(() => client.send('HEAD', `/${BUCKET}/${key}`)).then((r) => ({ key, what: 'HEAD', ...r })),
    timed(() => client.getObject(BUCKET, key)).then((r) => ({ key, what: 'GET', ...r })),
  ]));
  for (const read of reads) {
    t.equal(read.status, 200, `${read.what} ${read.key} answered 200`);
    if (read.what === 'GET') t.equal(sha256(read.body), sha256(bodies.get(read.key)!), `GET ${read.key} returned its bytes`);
  }
  const slowest = reads.reduce((a, b) => (b.ms > a.ms ? b : a));
  t.ok(slowest.ms < UNARY_DEADLINE_MS / 2,
    `the slowest read (${slowest.what} ${slowest.key}) took ${slowest.ms} ms, not a frozen node's ${UNARY_DEADLINE_MS} ms deadline`);
});

t.test('with one node frozen, writes are acknowledged well within the call deadline and hold', async (t) => {
  const frozen = cluster.nodeIds[3]!;
  cluster.pauseNode(frozen);
  // New keys, and an overwrite of a sharded object (whose old shards are discarded).
  const fresh = new Map([...SIZES.map((size, i) => [`fresh-${i}`, Buffer.alloc(size, `fresh ${i} `)] as const),
    ['obj-2', Buffer.alloc(300 * KiB, 'overwritten ')] as const]);
  const started = Date.now();
  const puts = await Promise.all([...fresh].map(([key, body]) => client.putObject(BUCKET, key, body)));
  const deleted = await Promise.all(['obj-0', 'obj-3'].map((key) => client.deleteObject(BUCKET, key)));
  const took = Date.now() - started;
  cluster.resumeNode(frozen);
  t.same(puts.map((r) => r.status), puts.map(() => 200), 'every PUT acknowledged');
  t.same(deleted.map((r) => r.status), [204, 204], 'DELETEs acknowledged');
  t.ok(took < UNARY_DEADLINE_MS / 2, `the writes took ${took} ms, not a frozen node's ${UNARY_DEADLINE_MS} ms deadline`);
  for (const [key, body] of fresh) {
    const reply = await client.getObject(BUCKET, key);
    t.equal(sha256(reply.body), sha256(body), `${key} reads back once the node has thawed`);
  }
  for (const key of ['obj-0', 'obj-3']) t.equal((await client.getObject(BUCKET, key)).status, 404, `${key} stays deleted`);
});
