// The window between a cluster-map change and the end of its rebalance: versions still sit where
// the old map put them. Deleting them then must delete them (reads, listings and the rebalance
// itself must not bring them back), and the versions left alone must read and move as before.
import t from 'tap';
import { pb } from '../../src/common/node-service.js';
import { rebalance } from '../../src/replication/rebalance.js';
import { patternSha256, patternStream, sha256Of, startNodes } from '../lib/nodes.js';

const nodes = await startNodes(6, '4+2');
t.teardown(() => nodes.stop());
const bucket = 'window';
await nodes.store.putRecord('buckets', bucket, Buffer.from('{}'));
const keys = Array.from({ length: 24 }, (_, i) => `k${i}`);
const sizeOf = (i: number) => (i % 2 ? 1000 : 300_000); // inline records and shard files
for (const [i, key] of keys.entries()) {
  await nodes.store.writeObject({ bucket, key, versionId: 'null' }, patternStream(sizeOf(i), i), (body) => ({ etag: `"${body.md5Hex}"` }));
}

async function readSha(key: string): Promise<string | undefined> {
  const version = await nodes.store.getVersion(bucket, key);
  return version ? sha256Of(nodes.store.readObject(version)) : undefined;
}

async function listed(): Promise<string[]> {
  return (await nodes.store.list(bucket, { limit: 1000 })).items.map((item) => item.version!.key!);
}

t.test('objects deleted before the rebalance moved them stay deleted', async (t) => {
  const before = new Map(keys.map((key) => [key, nodes.store.placement(bucket, key).join()]));
  const added = await nodes.addNode('n7');
  const map = nodes.store.clusterMap();
  const next: pb.IClusterMap = { ...map, epoch: Number(map.epoch) + 1, nodes: [...map.nodes!, { id: added.id, address: added.address, weight: 1, state: pb.NodeState.UP, zone: '' }] };
  nodes.store.cluster.adopt(next);
  await nodes.store.cluster.fanOut(next.nodes!.map((n) => n.id!), (c) => c.setClusterMap(next));

  const moved = keys.filter((key) => nodes.store.placement(bucket, key).join() !== before.get(key));
  const doomed = moved.filter((_, i) => i % 2 === 0);
  t.ok(doomed.length >= 3, `${moved.length} of ${keys.length} keys changed placement; ${doomed.length} of them are deleted`);
  for (const key of doomed) await nodes.store.deleteVersion(bucket, key, 'null');
  for (const key of doomed) t.equal(await nodes.store.getVersion(bucket, key), undefined, `${key}: gone at once, though a node off its new placement still holds it`);
  const kept = keys.filter((key) => !doomed.includes(key));
  t.same(await listed(), [...kept].sort(), 'listings show exactly the keys left');

  const progress = await rebalance(nodes.store);
  t.equal(progress.failed, 0, 'the rebalance pass has no failures');
  for (const key of doomed) t.equal(await nodes.store.getVersion(bucket, key, undefined, { askEveryNode: true }), undefined, `${key}: still gone after the rebalance`);
  t.same(await listed(), [...kept].sort());
  for (const key of kept) {
    const i = keys.indexOf(key);
    t.equal(await readSha(key), patternSha256(sizeOf(i), i), `${key} reads back bit-identical`);
  }
});
