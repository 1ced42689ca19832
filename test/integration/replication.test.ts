// The replication layer on six real storage-node processes at 4+2: round trips, node loss,
// corruption and healing, quorum failure, rebalancing onto a seventh node, draining.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import t, { type Test } from 'tap';
import { pb } from '../../src/common/node-service.js';
import { isStoreError } from '../../src/common/errors.js';
import { scanAndHeal } from '../../src/replication/heal.js';
import { layoutOf, shardSize } from '../../src/replication/layout.js';
import { rebalance } from '../../src/replication/rebalance.js';
import type { ObjectVersion } from '../../src/replication/types.js';
import { blockChecksum, encodeTrailer } from '../../src/storage-node/shard-file.js';
import { patternBytes, patternSha256, patternStream, sha256Of, startNodes, type TestNodes } from '../lib/nodes.js';

const SIZES = [0, 1, 4096, 128 * 1024, 128 * 1024 + 1, 1024 * 1024, 3 * 1024 * 1024 + 17, 12 * 1024 * 1024];

async function put(nodes: TestNodes, bucket: string, key: string, size: number, seed: number): Promise<ObjectVersion> {
  return nodes.store.writeObject({ bucket, key, versionId: 'null' }, patternStream(size, seed), (body) => ({ etag: `"${body.md5Hex}"` }));
}

async function readSha(nodes: TestNodes, bucket: string, key: string): Promise<string | undefined> {
  const version = await nodes.store.getVersion(bucket, key);
  return version ? sha256Of(nodes.store.readObject(version)) : undefined;
}

async function checkAll(t: Test, nodes: TestNodes, bucket: string, objects: Map<string, [number, number]>): Promise<void> {
  for (const [key, [size, seed]] of objects) {
    t.equal(await readSha(nodes, bucket, key), patternSha256(size, seed), `${key} reads back bit-identical`);
  }
}

t.test('6 nodes at 4+2', async (t) => {
  const nodes = await startNodes(6, '4+2');
  t.teardown(() => nodes.stop());
  const bucket = 'core';
  await nodes.store.putRecord('buckets', bucket, Buffer.from('{}'));
  const objects = new Map<string, [number, number]>();
  const etags = new Map<string, string | null | undefined>();
  for (const [i, size] of SIZES.entries()) {
    etags.set(`obj-${size}`, (await put(nodes, bucket, `obj-${size}`, size, i)).etag);
    objects.set(`obj-${size}`, [size, i]);
  }

  await t.test('each write reports the MD5 of its body', async (t) => {
    for (const [key, [size, seed]] of objects) {
      t.equal(etags.get(key), `"${createHash('md5').update(patternBytes(0, size, seed)).digest('hex')}"`, key);
    }
  });

  await t.test('objects round-trip bit-identical, whole and in ranges', async (t) => {
    await checkAll(t, nodes, bucket, objects);
    const version = (await nodes.store.getVersion(bucket, 'obj-12582912'))!;
    const ranged = await sha256Of(nodes.store.readObject(version, { start: 1_000_000, end: 5_000_000 }));
    const expected = createHash('sha256').update(patternBytes(1_000_000, 4_000_001, 7)).digest('hex');
    t.equal(ranged, expected, 'a range across stripes matches');
  });

  await t.test('listing merges every node in key order', async (t) => {
    const { items, truncated } = await nodes.store.list(bucket, { limit: 100 });
    t.same(items.map((i) => i.version?.key), [...objects.keys()].sort(), 'every key once, sorted');
    t.notOk(truncated);
  });

  await t.test('reading healthy small objects queues no heal (unasked parity nodes are not damage)', async (t) => {
    const healed = nodes.store.heal.totals.versions;
    for (const size of [1, 4096]) {
      t.equal(await readSha(nodes, bucket, `obj-${size}`), patternSha256(size, SIZES.indexOf(size)));
      t.equal(nodes.store.heal.pending, 0, `obj-${size}: nothing queued`);
    }
    t.equal(nodes.store.heal.totals.versions, healed, 'nothing healed');
  });

  await t.test('kill -9 any two nodes: every object still reads back, writes go on', async (t) => {
    nodes.kill('n2');
    nodes.kill('n5');
    await checkAll(t, nodes, bucket, objects);
    await put(nodes, bucket, 'written-degraded', 2 * 1024 * 1024 + 3, 77);
    objects.set('written-degraded', [2 * 1024 * 1024 + 3, 77]);
    t.equal(await readSha(nodes, bucket, 'written-degraded'), patternSha256(2 * 1024 * 1024 + 3, 77));
  });

  await t.test('restarted nodes are brought up to date by heal', async (t) => {
    await nodes.start('n2');
    await nodes.start('n5');
    const result = await scanAndHeal(nodes.store);
    t.equal(result.report.failed, 0, 'heal completed');
    const background = nodes.store.heal.totals;
    t.ok(result.report.healedShards + result.report.healedRecords + background.healedShards + background.healedRecords > 0,
      'heal (the scan, or the queue fed by degraded reads) rebuilt what the nodes missed');
    await expectFullRedundancy(t, nodes, bucket, objects);
  });

  await t.test('a record deleted while a node was down stays deleted when it returns', async (t) => {
    await nodes.store.putRecord('buckets', 'short-lived', Buffer.from('{}'));
    nodes.kill('n3');
    await nodes.store.putRecord('buckets', 'short-lived', null);
    await nodes.start('n3');
    t.same(await nodes.store.listBucketNames(), [bucket], 'the node that missed the delete does not bring it back');
  });

  await t.test('an object deleted while a node was down stays deleted when it returns', async (t) => {
    const key = 'deleted-while-away';
    const version = await put(nodes, bucket, key, 1024 * 1024, 41);
    const away = version.segments![0]!.nodes![0]!;
    nodes.kill(away);
    await nodes.store.deleteVersion(bucket, key, 'null');
    await nodes.start(away);
    await new Promise((resolve) => setTimeout(resolve, 500)); // the delete settles in the background
    t.equal(await nodes.store.getVersion(bucket, key, 'null', { askEveryNode: true }), undefined, 'a read that reaches the returned node finds nothing');
    const listed = await nodes.store.list(bucket, { prefix: key, limit: 10 });
    t.same(listed.items, [], 'the returned node heard of the delete: nothing is listed');
  });

  await t.test('heal also rebuilds the parts of multipart uploads in progress', async (t) => {
    const upload = { bucket, key: 'in-progress', uploadId: 'upload-1' };
    await nodes.store.createUpload(upload);
    nodes.kill('n6');
    const part = await nodes.store.writePart(upload, 1, patternStream(2 * 1024 * 1024, 11), () => ({}));
    const whileDown = await scanAndHeal(nodes.store);
    t.ok(whileDown.report.failed > 0, 'a heal with a node down does not claim success');
    t.ok(whileDown.unhealed.some((problem) => problem.includes('upload part 1') && problem.includes('node n6 did not answer')),
      'and names what it could not heal and why');
    await nodes.start('n6');
    const result = await scanAndHeal(nodes.store);
    t.equal(result.report.failed, 0);
    for (const [index, id] of part.nodes!.entries()) {
      const res = await nodes.store.cluster.client(id).verifyShards([{ dataId: part.dataId, shardIndex: index }]);
      t.equal(res.shards[0]?.state, pb.ShardStatus.State.OK, `part shard ${index} on ${id}`);
    }
    await nodes.store.abortUpload(upload.bucket, upload.key, upload.uploadId);
  });

  await t.test('heal ends an upload whose complete committed but died before ending it', async (t) => {
    const upload = { bucket, key: 'completed-then-crashed', uploadId: 'upload-2' };
    const size = 1024 * 1024;
    await nodes.store.createUpload(upload);
    const used = await nodes.store.writePart(upload, 1, patternStream(size, 21), () => ({}));
    const unused = await nodes.store.writePart(upload, 2, patternStream(size, 22), () => ({}));
    // What a complete commits before it ends the upload, from a gateway that dies right after.
    await nodes.store.updateVersion({ bucket, key: upload.key, versionId: 'null', hlc: Date.now() * 4096, size, segments: [used] });
    const result = await scanAndHeal(nodes.store);
    t.equal(result.report.failed, 0, 'nothing left unhealable');
    t.same(await nodes.store.listUploads(bucket, { prefix: upload.key, limit: 10 }), [], 'the upload is ended');
    t.equal(await readSha(nodes, bucket, upload.key), patternSha256(size, 21), 'the object made of its part reads back');
    const shards = await Promise.all(unused.nodes!.map((id, shardIndex) =>
      nodes.store.cluster.client(id).verifyShards([{ dataId: unused.dataId, shardIndex }])));
    t.ok(shards.every((r) => r.shards[0]?.state === pb.ShardStatus.State.MISSING), 'the part it did not use is freed');
  });

  await t.test("deleting an object made of a lingering upload's parts leaves the parts to the upload", async (t) => {
    const upload = { bucket, key: 'completed-crashed-deleted', uploadId: 'upload-3' };
    const size = 1024 * 1024;
    await nodes.store.createUpload(upload);
    const part = await nodes.store.writePart(upload, 1, patternStream(size, 31), () => ({}));
    await nodes.store.updateVersion({ bucket, key: upload.key, versionId: 'null', hlc: Date.now() * 4096, size, segments: [part] });
    await nodes.store.deleteVersion(bucket, upload.key, 'null');
    const states = async () => (await Promise.all(part.nodes!.map((id, shardIndex) =>
      nodes.store.cluster.client(id).verifyShards([{ dataId: part.dataId, shardIndex }])))).map((r) => r.shards[0]?.state);
    await new Promise((resolve) => setTimeout(resolve, 500)); // the delete settles in the background
    t.same(await states(), part.nodes!.map(() => pb.ShardStatus.State.OK), 'every shard of the part stays');
    t.equal((await scanAndHeal(nodes.store)).report.failed, 0, 'the upload (still open: no version uses it) heals');
    await nodes.store.abortUpload(upload.bucket, upload.key, upload.uploadId);
    t.same(await states(), part.nodes!.map(() => pb.ShardStatus.State.MISSING), 'aborting it frees them');
  });

  await t.test('a corrupted shard still reads correctly, is reported and healed', async (t) => {
    const version = (await nodes.store.getVersion(bucket, 'obj-3145745'))!;
    const segment = version.segments![0]!;
    const holder = segment.nodes![0]!;
    const file = nodes.shardFiles(holder).find((p) => p.endsWith(`${segment.dataId}.0`))!;
    const bytes = readFileSync(file);
    bytes[100] ^= 0xff;
    writeFileSync(file, bytes);
    const report = await nodes.store.cluster.client(holder).verifyShards([{ dataId: segment.dataId, shardIndex: 0 }]);
    t.equal(report.shards[0]?.state, pb.ShardStatus.State.CORRUPT, 'verify reports the corruption');
    t.equal(await readSha(nodes, bucket, 'obj-3145745'), patternSha256(3 * 1024 * 1024 + 17, 6), 'read is still correct');
    const result = await scanAndHeal(nodes.store);
    t.equal(result.report.failed, 0);
    const after = await nodes.store.cluster.client(holder).verifyShards([{ dataId: segment.dataId, shardIndex: 0 }]);
    t.equal(after.shards[0]?.state, pb.ShardStatus.State.OK, 'healed');
  });

  await t.test('a shard whole blocks short, with a valid trailer, still reads correctly and is healed', async (t) => {
    const version = (await nodes.store.getVersion(bucket, 'obj-3145745'))!;
    const segment = version.segments![0]!;
    const holder = segment.nodes![1]!;
    const file = nodes.shardFiles(holder).find((p) => p.endsWith(`${segment.dataId}.1`))!;
    const blockSize = segment.layout!.blockSize!;
    const kept = readFileSync(file).subarray(0, 2 * blockSize);
    const blocks = [kept.subarray(0, blockSize), kept.subarray(blockSize)];
    writeFileSync(file, Buffer.concat([kept, encodeTrailer(blocks.map(blockChecksum), blockSize, kept.length)]));
    const report = await nodes.store.cluster.client(holder).verifyShards([{ dataId: segment.dataId, shardIndex: 1 }]);
    t.equal(report.shards[0]?.state, pb.ShardStatus.State.OK, 'the short file itself verifies');
    t.equal(Number(report.shards[0]?.dataBytes), kept.length, 'and says how much data it holds');
    t.equal(await readSha(nodes, bucket, 'obj-3145745'), patternSha256(3 * 1024 * 1024 + 17, 6), 'read is still correct');
    const result = await scanAndHeal(nodes.store);
    t.equal(result.report.failed, 0);
    const after = await nodes.store.cluster.client(holder).verifyShards([{ dataId: segment.dataId, shardIndex: 1 }]);
    t.equal(Number(after.shards[0]?.dataBytes), shardSize(Number(segment.size), layoutOf(segment)), 'heal rewrote it whole');
  });

  await t.test('a write that cannot reach its quorum fails and leaves nothing visible', async (t) => {
    nodes.kill('n1');
    nodes.kill('n3');
    nodes.kill('n4');
    for (const [key, size] of [['doomed', 3 * 1024 * 1024], ['doomed-small', 100], ['obj-4096', 100]] as const) {
      const error = await put(nodes, bucket, key, size, 9).then(() => undefined, (err: unknown) => err);
      t.ok(isStoreError(error, 'QuorumFailed'), `${key}: the write fails with QuorumFailed`);
    }
    for (const id of ['n1', 'n3', 'n4']) await nodes.start(id);
    t.equal(await nodes.store.getVersion(bucket, 'doomed'), undefined, 'no partial object');
    t.equal(await nodes.store.getVersion(bucket, 'doomed-small'), undefined, 'no partial small object');
    t.equal(await readSha(nodes, bucket, 'obj-4096'), patternSha256(4096, 2), 'a refused overwrite leaves the value it would have replaced');
  });

  await t.test('a small write whose writer died after two of its record writes is read past', async (t) => {
    // A value stored a minute ago (each node's own record, inline shard and all, restamped), then
    // a newer write of it that reached only two nodes before its writer died.
    await put(nodes, bucket, 'crashed-small', 100, 21);
    const minuteAgo = (Date.now() - 60_000) * 4096;
    for (const id of nodes.store.placement(bucket, 'crashed-small')) {
      const [slot] = (await nodes.store.cluster.client(id).getMeta([{ bucket, key: 'crashed-small', versionId: 'null' }], true)).results;
      await nodes.store.cluster.client(id).putMeta([{ ...slot!.version!, key: 'crashed-old', hlc: minuteAgo }]);
    }
    const before = (await nodes.store.getVersion(bucket, 'crashed-old'))!;
    const segments = before.segments!.map((segment) => ({ ...segment, inlineShard: Buffer.alloc(25, 7) }));
    const abandoned = { ...before, hlc: before.hlc + 1, segments };
    for (const id of nodes.store.placement(bucket, 'crashed-old').slice(0, 2)) {
      await nodes.store.cluster.client(id).putMeta([abandoned]);
    }
    t.equal(await readSha(nodes, bucket, 'crashed-old'), patternSha256(100, 21), 'the acknowledged value is served');
    for (const key of ['crashed-small', 'crashed-old']) await nodes.store.deleteVersion(bucket, key, 'null');
  });

  await t.test('heal leaves a small write still in flight (on two nodes, seconds old) for later', async (t) => {
    await put(nodes, bucket, 'in-flight', 100, 22);
    const before = (await nodes.store.getVersion(bucket, 'in-flight'))!;
    const segments = before.segments!.map((segment) => ({ ...segment, inlineShard: Buffer.alloc(25, 7) }));
    const inFlight = { ...before, hlc: before.hlc + 1, segments };
    for (const id of nodes.store.placement(bucket, 'in-flight').slice(0, 2)) {
      await nodes.store.cluster.client(id).putMeta([inFlight]);
    }
    const result = await scanAndHeal(nodes.store);
    t.equal(result.report.unfinished, 1, 'it is counted as unfinished');
    t.equal(result.report.failed, 0, 'not as a failure');
    await nodes.store.deleteVersion(bucket, 'in-flight', 'null');
  });

  await t.test('a record moved off a node that is in its placement again is no delete', async (t) => {
    // Rebalancing drops a version's record from nodes that left its placement. A later map can
    // put such a node back: readers that ask it must not take the drop for a delete.
    await put(nodes, bucket, 'moved-back', 1000, 23);
    const version = (await nodes.store.getVersion(bucket, 'moved-back'))!;
    const returning = nodes.store.placement(bucket, 'moved-back')[0]!;
    await nodes.store.relocateVersion(version, version.segments!, [returning]);
    const seen = await nodes.store.getVersion(bucket, 'moved-back', undefined, { askEveryNode: true });
    t.equal(seen?.versionId, version.versionId, 'read with every placement node asked, the version is there');
    t.equal(await readSha(nodes, bucket, 'moved-back'), patternSha256(1000, 23));
    t.equal((await nodes.store.repairRecords(seen!)).repaired, 1, 'and heal puts the record back on the returning node');
    await nodes.store.deleteVersion(bucket, 'moved-back', 'null');
  });

  await t.test('a seventh node: rebalancing moves about 1/7 of the shards while reads go on', async (t) => {
    const before = countShards(nodes);
    const added = await nodes.addNode('n7');
    const map = nodes.store.clusterMap();
    const next: pb.IClusterMap = { ...map, epoch: Number(map.epoch) + 1, nodes: [...map.nodes!, { id: added.id, address: added.address, weight: 1, state: pb.NodeState.UP, zone: '' }] };
    nodes.store.cluster.adopt(next);
    await nodes.store.cluster.fanOut(next.nodes!.map((n) => n.id!), (c) => c.setClusterMap(next));
    let reading = true;
    let reads = 0;
    let failures = 0;
    const reader = (async () => {
      while (reading) {
        for (const [key, [size, seed]] of objects) {
          const sha = await readSha(nodes, bucket, key).catch(() => 'error');
          reads++;
          if (sha !== patternSha256(size, seed)) failures++;
        }
      }
    })();
    const progress = await rebalance(nodes.store);
    reading = false;
    await reader;
    t.equal(progress.failed, 0, 'rebalance pass had no failures');
    t.ok(reads > 0, `reader looped ${reads} times during rebalance`);
    t.equal(failures, 0, 'zero failed reads during rebalancing');
    const onNew = nodes.shardFiles('n7').length;
    const fraction = onNew / before;
    t.ok(fraction > 0.05 && fraction < 0.35, `moved ${(fraction * 100).toFixed(1)}% of shards (ideal 1/7 = 14.3%)`);
    await checkAll(t, nodes, bucket, objects);
  });

  await t.test('draining a node leaves no shard on it', async (t) => {
    const map = nodes.store.clusterMap();
    const next: pb.IClusterMap = { ...map, epoch: Number(map.epoch) + 1, nodes: map.nodes!.map((n) => (n.id === 'n3' ? { ...n, state: pb.NodeState.DRAINING } : n)) };
    nodes.store.cluster.adopt(next);
    await nodes.store.cluster.fanOut(next.nodes!.map((n) => n.id!), (c) => c.setClusterMap(next));
    const progress = await rebalance(nodes.store);
    t.equal(progress.failed, 0);
    t.same(nodes.shardFiles('n3').filter((p) => !p.includes('/tmp/')), [], 'no shard files left on the drained node');
    await checkAll(t, nodes, bucket, objects);
  });
});

function countShards(nodes: TestNodes): number {
  return nodes.file.nodes.reduce((sum, n) => sum + nodes.shardFiles(n.id).length, 0);
}

async function expectFullRedundancy(t: Test, nodes: TestNodes, bucket: string, objects: Map<string, [number, number]>): Promise<void> {
  for (const key of objects.keys()) {
    const version = (await nodes.store.getVersion(bucket, key))!;
    const holders = await nodes.store.metadataHolders(version);
    t.equal(holders.length, 6, `${key}: metadata on all six placement nodes`);
    for (const segment of version.segments ?? []) {
      if (segment.inline) continue;
      for (const [index, id] of segment.nodes!.entries()) {
        const res = await nodes.store.cluster.client(id).verifyShards([{ dataId: segment.dataId, shardIndex: index }]);
        t.equal(res.shards[0]?.state, pb.ShardStatus.State.OK, `${key}: shard ${index} on ${id}`);
      }
    }
  }
}

