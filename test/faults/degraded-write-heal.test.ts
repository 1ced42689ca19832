// A write acknowledged while one node could not take its shard (the node was down, or its disk
// was full) has one shard fewer than its erasure code promises. The cluster must rebuild that
// shard by itself once the node can take it — without a read of the object or an admin heal —
// so that the object again survives losing any two nodes.
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { FaultCluster } from '../lib/faults/fault-cluster.js';
import { History } from '../lib/faults/history.js';
import { FaultS3Client } from '../lib/faults/s3.js';
import { readKey, recordWrite } from '../lib/faults/workload.js';

const OBJECTS = 3;
const BUCKET = 'degraded';

const cluster = await FaultCluster.start({ nodes: 6, dataShards: 4, parityShards: 2 });
t.teardown(() => cluster.stop());
const client = new FaultS3Client(cluster.endpoint, cluster, cluster.region, 60_000);
t.teardown(() => client.close());
const history = new History();

async function writeDegradedThenCheck(t: Test, node: string, hurt: () => Promise<void>, mend: () => Promise<void>): Promise<void> {
  const others = cluster.nodeIds.filter((id) => id !== node);
  const before = cluster.shardFiles(node).length;
  const keys = Array.from({ length: OBJECTS }, (_, i) => `${node}-obj-${i}`);
  await hurt();
  for (const key of keys) {
    const body = history.newValue(key, key, 1536 * 1024);
    t.equal((await recordWrite(history, 'put', key, key, () => client.putObject(BUCKET, key, body))).status, '200', `${key} acknowledged`);
  }
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
