// Below quorum: with three of six nodes at 4+2 gone (two killed, one cut off the network), every
// write, read of stored data, delete, listing and upload start must fail with 503 — never a 500,
// never an acknowledged write, never wrong bytes. Once the nodes are back and healed, everything
// written before the outage reads back intact and the refused writes left nothing half-done.
import t from 'tap';
import { finalHeal, readSettled } from '../lib/faults/chaos.js';
import { checkListing, RegisterChecker } from '../lib/faults/checker.js';
import { FaultCluster } from '../lib/faults/fault-cluster.js';
import { History } from '../lib/faults/history.js';
import { FaultS3Client } from '../lib/faults/s3.js';
import { readKey, recordWrite } from '../lib/faults/workload.js';

const KiB = 1024;
const BUCKET = 'quorum';
const SIZES = [0, 1, 90 * KiB, 300 * KiB, 2100 * KiB];

const cluster = await FaultCluster.start({ nodes: 6, dataShards: 4, parityShards: 2 });
t.teardown(() => cluster.stop());
const client = new FaultS3Client(cluster.endpoint, cluster, cluster.region, 120_000);
t.teardown(() => client.close());
const history = new History();
const keys = SIZES.map((size) => `obj-${size}`);

const put = (key: string, name: string, size: number) => {
  const body = history.newValue(key, name, size);
  return recordWrite(history, 'put', key, name, () => client.putObject(BUCKET, key, body));
};

t.test('objects stored while every node is up', async (t) => {
  t.equal((await client.createBucket(BUCKET)).status, 200, 'bucket created');
  const writes = await Promise.all(SIZES.map((size, i) => put(keys[i]!, `${keys[i]}@before`, size)));
  t.same(writes.map((w) => w.status), SIZES.map(() => '200'), 'every PUT acknowledged');
});

t.test('with three of six nodes gone only 503 comes back', async (t) => {
  const [killed1, killed2, cut] = cluster.nodeIds.slice(1, 4) as [string, string, string];
  await cluster.killNode(killed1);
  await cluster.killNode(killed2);
  await cluster.cutNode(cut);
  const only503: readonly string[] = ['503'];
  const replies = await Promise.all([
    ...SIZES.map((size, i) => put(keys[i]!, `${keys[i]}@outage`, size).then((w) => ['PUT existing', w.status, only503] as const)),
    put('new-key', 'new-key@outage', 200 * KiB).then((w) => ['PUT new', w.status, only503] as const),
    recordWrite(history, 'delete', keys[1]!, null, () => client.deleteObject(BUCKET, keys[1]!)).then((w) => ['DELETE', w.status, only503] as const),
    // A 0-byte object needs no shard, so reading it may succeed (the checker vets what it returns).
    readKey(client, history, BUCKET, keys[0]!).then((r) => ['GET empty object', r.status, ['200', '503'] as readonly string[]] as const),
    ...keys.slice(1).map((key) => readKey(client, history, BUCKET, key).then((r) => ['GET', r.status, only503] as const)),
    client.send('GET', `/${BUCKET}`, { query: [['list-type', '2']] }).then((r) => ['LIST', String(r.status), only503] as const),
    client.send('POST', `/${BUCKET}/mp`, { query: [['uploads', '']] }).then((r) => ['CREATE UPLOAD', String(r.status), only503] as const),
  ]);
  for (const [what, status, allowed] of replies) t.ok(allowed.includes(status), `${what} answered ${status}`);
  t.equal(history.writes.filter((w) => w.outcome === 'ok').length, SIZES.length, 'no write acknowledged during the outage');
  await cluster.restoreAll();
});

t.test('back above quorum: everything stored before reads back, nothing half-done', async (t) => {
  t.same(await finalHeal(cluster), [], 'heal succeeds once the nodes have rejoined');
  const checker = new RegisterChecker(history);
  const settled = await readSettled(client, history, BUCKET, [...keys, 'new-key']);
  t.same(checker.checkFinal(settled), [], 'each key holds its value from before, or a refused write\'s whole value');
  t.same(checker.checkReads(), [], 'no read during the outage returned wrong bytes');
  t.same(checkListing(history, settled, await client.listObjects(BUCKET)), [], 'the listing shows exactly the readable objects');
});
