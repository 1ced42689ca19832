// A write acknowledged while one node could not take its shard (the node was down, its disk was
// full, or its link so slow that the write went on without it) has one shard fewer than its
// erasure code promises. The cluster must rebuild that
// shard by itself once the node can take it — without a read of the object or an admin heal —
// so that the object again survives losing any two nodes.
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { FaultCluster } from '../lib/faults/fault-cluster.js';
import { History } from '../lib/faults/history.js';
import { FaultS3Client } from '../lib/faults/s3.js';
import { readKey, recordWrite } from '../lib/faults/workload.js';

const OBJECTS = 3;
/** 4 Mbit/s: a 1.5 MiB object's shard takes the slow node ~0.8 s, the others a few ms. */
const SLOW_LINK_KBIT = 4_000;
/** The objects read from a slow node, and their shards at 4+2. */
const READ_OBJECT_BYTES = 3 * 1024 * 1024;
const READ_SHARD_BYTES = READ_OBJECT_BYTES / 4;
const BUCKET = 'degraded';

const cluster = await FaultCluster.start({ nodes: 6, dataShards: 4, parityShards: 2 });
t.teardown(() => cluster.stop());
const client = new FaultS3Client(cluster.endpoint, cluster, cluster.region, 60_000);
t.teardown(() => client.close());
const history = new History();

async function writeDegradedThenCheck(t: Test, node: string, hurt: () => Promise<void>, mend: () => Promise<void>,
  afterWrites: () => void = () => undefined): Promise<void> {
  const others = cluster.nodeIds.filter((id) => id !== node);
  const before = cluster.shardFiles(node).length;
  const keys = Array.from({ length: OBJECTS }, (_, i) => `${node}-obj-${i}`);
  await hurt();
  for (const key of keys) {
    const body = history.newValue(key, key, 1536 * 1024);
    t.equal((await recordWrite(history, 'put', key, key, () => client.putObject(BUCKET, key, body))).status, '200', `${key} acknowledged`);
  }
  afterWrites();
  await mend();
  // Six nodes at 4+2: every object has a shard on every node, so the node must get one per object.
  for (let waited = 0; cluster.shardFiles(node).length < before + OBJECTS && waited < 60_000; waited += 500) await sleep(500);
  t.equal(cluster.shardFiles(node).length, before + OBJECTS, `${node} got its missing shards back`);

  const down = others.slice(0, 2);
  for (const id of down) await cluster.killNode(id);
  for (const key of keys) t.equal((await readKey(client, history, BUCKET, key)).value, key, `${key} reads back with ${down.join(' and ')} down`);
  await cluster.restoreAll();
}

t.test('setup', async (t) => {
  t.equal((await client.createBucket(BUCKET)).status, 200, 'bucket created');
});

t.test('writes made with a node down are healed once it is back', (t) =>
  writeDegradedThenCheck(t, 'n1', () => cluster.killNode('n1'), () => cluster.startNode('n1')));

t.test('writes made with a node\'s disk full are healed once it has room', (t) =>
  writeDegradedThenCheck(t, 'n2', () => cluster.restartNode('n2', cluster.usedBytes('n2')), () => cluster.restartNode('n2')));

/** Until a write reaches every node: the gateway retries nodes it saw fail only after a back-off. */
async function untilEveryNodeTakesWrites(): Promise<void> {
  for (let attempt = 0; attempt < 40; attempt++) {
    const before = cluster.nodeIds.map((id) => cluster.shardFiles(id).length);
    const key = `probe-${attempt}`; // a new key each time: an overwrite would delete shards
    await client.putObject(BUCKET, key, history.newValue(key, key, 1536 * 1024));
    if (cluster.nodeIds.every((id, i) => cluster.shardFiles(id).length > before[i]!)) return;
    await sleep(250);
  }
  throw new Error('writes never reached every node');
}

t.test('writes made while a node\'s link crawls go on without it and are healed once it is fast', { skip: !cluster.usesNamespaces && 'needs network namespaces' }, async (t) => {
  await untilEveryNodeTakesWrites();
  const before = cluster.shardFiles('n5').length;
  return writeDegradedThenCheck(t, 'n5', () => cluster.throttleNode('n5', SLOW_LINK_KBIT), () => cluster.unthrottleNode('n5'), () => {
    // Waiting for the slow node would have put every object's shard there; the writes left it out.
    t.ok(cluster.shardFiles('n5').length < before + OBJECTS, 'the slow node was left out of writes its peers had finished');
  });
});

t.test('reads go around a node whose link crawls', { skip: !cluster.usesNamespaces && 'needs network namespaces' }, async (t) => {
  await untilEveryNodeTakesWrites();
  // Objects of which n4 holds a data shard, so a read that waited for n4 would fetch it.
  const keys: string[] = [];
  for (let i = 0; keys.length < OBJECTS && i < 40; i++) {
    const key = `read-slow-${i}`;
    const before = new Set(cluster.shardFiles('n4'));
    await recordWrite(history, 'put', key, key, () => client.putObject(BUCKET, key, history.newValue(key, key, READ_OBJECT_BYTES)));
    const shard = cluster.shardFiles('n4').find((path) => !before.has(path));
    if (shard && Number(shard.split('.').pop()) < 4) keys.push(key);
  }
  t.equal(keys.length, OBJECTS, 'objects with a data shard on n4');
  // Nothing left to heal, so the only traffic n4 sends from here on is what the reads ask of it.
  t.equal((await cluster.admin(['heal'])).code, 0, 'cluster healed');
  await cluster.throttleNode('n4', SLOW_LINK_KBIT);
  t.teardown(() => cluster.unthrottleNode('n4'));
  const sentBefore = await cluster.bytesSentBy('n4');
  for (const key of keys) t.equal((await readKey(client, history, BUCKET, key)).value, key, `${key} reads back whole`);
  const sent = (await cluster.bytesSentBy('n4')) - sentBefore;
  t.ok(sent < READ_SHARD_BYTES, `n4 sent ${sent} bytes, less than one of the ${OBJECTS} shards the reads needed from it: they went around it`);
  const status = await (await fetch(`${cluster.endpoint}/_tessera/status`)).json() as { nodes: Array<{ id: string; slow?: boolean }> };
  t.ok(status.nodes.find((n) => n.id === 'n4')?.slow, 'the gateway\'s status names n4 as slow');
});
