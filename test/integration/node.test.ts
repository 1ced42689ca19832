// The real `tessera node` process over gRPC: shard streams with ranges, bit rot, missing shards,
// a full disk, refused strangers, a kill in the middle of a write, and the metadata calls.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeFileSync, writeSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import t from 'tap';
import { AUTH_METADATA_KEY, makeClusterToken } from '../../src/common/cluster-auth.js';
import { HybridClock } from '../../src/common/hlc.js';
import { pb } from '../../src/common/node-service.js';
import { NodeClient } from '../../src/replication/node-client.js';
import { TEST_SECRET, getShard, putShard, spawnStorageNode, type NodeProcess } from '../lib/storage-node.js';

const root = mkdtempSync(join(tmpdir(), 'tessera-node-it-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));

const BLOCK = 256 * 1024;

async function startNode(t: { teardown(fn: () => unknown): void }, id: string, args: string[] = []): Promise<NodeProcess> {
  const node = await spawnStorageNode(id, join(root, id), args);
  t.teardown(() => node.stop('SIGKILL'));
  return node;
}

function shardFile(dataDir: string, name: string): string {
  for (const bucket of readdirSync(join(dataDir, 'shards'))) {
    if (readdirSync(join(dataDir, 'shards', bucket)).includes(name)) return join(dataDir, 'shards', bucket, name);
  }
  throw new Error(`no shard file ${name}`);
}

function allFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name);
}

/** Temp files a shard write leaves while it runs (beside the shard files, or in tmp/ where older versions put them). */
function tempFiles(dataDir: string): string[] {
  return allFiles(dataDir).filter((name) => name.endsWith('.tmp'));
}

function flipByte(path: string, offset: number): void {
  const fd = openSync(path, 'r+');
  const byte = Buffer.alloc(1);
  readSync(fd, byte, 0, 1, offset);
  byte[0] ^= 0x5a;
  writeSync(fd, byte, 0, 1, offset);
  closeSync(fd);
}

function grpcCode(err: unknown): number | undefined {
  return (err as grpc.ServiceError).code;
}

t.test('shards: ranges, bit rot, missing', async (t) => {
  const node = await startNode(t, 'n1');
  const data = randomBytes(5 * 1024 * 1024 + 12345);
  const written = await putShard(node, { dataId: 'obj-1', shardIndex: 2, blockSize: BLOCK }, data, 100_000);
  t.equal(written.bytes, data.length);
  t.equal(written.blocks, Math.ceil(data.length / BLOCK));

  t.ok((await getShard(node, { dataId: 'obj-1', shardIndex: 2 })).equals(data), 'whole shard reads back');
  for (const [offset, length] of [[0, 1], [BLOCK - 3, 10], [BLOCK, BLOCK], [1_000_000, 3_000_001], [data.length - 5, 0], [data.length, 0]] as const) {
    const got = await getShard(node, { dataId: 'obj-1', shardIndex: 2, offset, length });
    const want = data.subarray(offset, length ? offset + length : undefined);
    t.ok(got.equals(want), `range ${offset}+${length}`);
  }

  await t.rejects(getShard(node, { dataId: 'obj-1', shardIndex: 5 }), { code: grpc.status.NOT_FOUND }, 'missing shard');
  await t.rejects(getShard(node, { dataId: '../../etc', shardIndex: 0 }), { code: grpc.status.INVALID_ARGUMENT }, 'path escape refused');

  flipByte(shardFile(join(root, 'n1'), 'obj-1.2'), 3 * BLOCK + 77);
  await t.rejects(getShard(node, { dataId: 'obj-1', shardIndex: 2 }), { code: grpc.status.DATA_LOSS, details: /block 3\b/ }, 'rot is caught');
  t.ok((await getShard(node, { dataId: 'obj-1', shardIndex: 2, offset: 0, length: 3 * BLOCK })).equals(data.subarray(0, 3 * BLOCK)),
    'ranges before the bad block still read');

  const verified = await node.call<pb.ShardVerifyResult>('VerifyShards', { shards: [{ dataId: 'obj-1', shardIndex: 2 }, { dataId: 'nope', shardIndex: 0 }] });
  t.same(verified.shards.map((s) => [s.state, s.badBlock]), [[pb.ShardStatus.State.CORRUPT, 3], [pb.ShardStatus.State.MISSING, 0]]);

  const report = await node.call<pb.ScrubReport>('Scrub', { orphanGraceMs: 3600_000 });
  t.equal(report.shardsChecked, 1);
  t.same(report.corrupt.map((s) => [s.shard?.dataId, s.badBlock]), [['obj-1', 3]], 'scrub reports the corrupt block');

  await node.call('DeleteShards', { shards: [{ dataId: 'obj-1', shardIndex: 2 }] });
  await t.rejects(getShard(node, { dataId: 'obj-1', shardIndex: 2 }), { code: grpc.status.NOT_FOUND }, 'deleted');
});

t.test('capacity limit: RESOURCE_EXHAUSTED and nothing left behind', async (t) => {
  const node = await startNode(t, 'full', ['--capacity', String(1024 * 1024)]);
  await t.rejects(putShard(node, { dataId: 'big', shardIndex: 0, blockSize: BLOCK }, randomBytes(2 * 1024 * 1024)),
    { code: grpc.status.RESOURCE_EXHAUSTED });
  t.same(allFiles(join(root, 'full', 'shards')), [], 'no shard file');
  t.same(tempFiles(join(root, 'full')), [], 'no temp file');
  const health = await node.call<pb.HealthResult>('Health', {});
  t.equal(health.usedBytes, 0);
  t.equal(health.capacityBytes, 1024 * 1024);
  const small = await putShard(node, { dataId: 'small', shardIndex: 0, blockSize: BLOCK }, randomBytes(1000));
  t.equal(small.bytes, 1000, 'a shard that fits is still accepted');
});

t.test('calls without a valid cluster token are refused', async (t) => {
  const node = await startNode(t, 'auth');
  await t.rejects(node.call('Health', {}, new grpc.Metadata()), { code: grpc.status.UNAUTHENTICATED });
  const wrong = new grpc.Metadata();
  wrong.set(AUTH_METADATA_KEY, makeClusterToken('not-the-secret'));
  await t.rejects(node.call('GetClusterMap', {}, wrong), { code: grpc.status.UNAUTHENTICATED });
  await t.rejects(node.call('SetClusterMap', { epoch: 99 }, wrong), { code: grpc.status.UNAUTHENTICATED });
  const map = await node.call<pb.ClusterMap>('GetClusterMap', {});
  t.equal(map.epoch, 0, 'the refused write did nothing');
});

t.test('SIGKILL during PutShard leaves no shard; scrub removes the temp file', async (t) => {
  const dataDir = join(root, 'killed');
  const node = await spawnStorageNode('killed', dataDir);
  const call = (node.client as unknown as { PutShard: Function }).PutShard(node.auth(), () => {}) as grpc.ClientWritableStream<pb.IShardWrite>;
  call.on('error', () => {});
  call.write({ header: { dataId: 'half', shardIndex: 1, blockSize: BLOCK } });
  call.write({ data: randomBytes(3 * BLOCK) });
  while (tempFiles(dataDir).length === 0) await new Promise((r) => setTimeout(r, 20));
  await node.stop('SIGKILL');

  const restarted = await startNode(t, 'killed');
  await t.rejects(getShard(restarted, { dataId: 'half', shardIndex: 1 }), { code: grpc.status.NOT_FOUND });
  const report = await restarted.call<pb.ScrubReport>('Scrub', { orphanGraceMs: 0, removeOrphans: true });
  t.same(report.orphans.map((o) => [o.dataId, o.shardIndex]), [['half', 1]]);
  t.equal(report.orphansRemoved, 1);
  t.same(tempFiles(dataDir), [], 'temp file gone');
});

t.test('a PutShard that is cancelled, ends without its end message or ends at the wrong length stores nothing', async (t) => {
  const node = await startNode(t, 'cut-short');
  const open = (shardIndex: number) => {
    let settle!: (err: grpc.ServiceError | null) => void;
    const result = new Promise<grpc.ServiceError | null>((resolve) => { settle = resolve; });
    const call = (node.client as unknown as { PutShard: Function }).PutShard(node.auth(), settle) as grpc.ClientWritableStream<pb.IShardWrite>;
    call.on('error', () => {});
    call.write({ header: { dataId: 'cut', shardIndex, blockSize: BLOCK } });
    call.write({ data: randomBytes(2 * BLOCK) });
    return { call, result };
  };
  const cancelled = open(0);
  await new Promise((r) => setTimeout(r, 200));
  cancelled.call.cancel();
  const unended = open(1);
  unended.call.end();
  t.equal((await unended.result)?.code, grpc.status.UNAVAILABLE, 'a stream that just stops is refused');
  const miscounted = open(2);
  miscounted.call.write({ end: { bytes: 3 * BLOCK } });
  miscounted.call.end();
  t.equal((await miscounted.result)?.code, grpc.status.INVALID_ARGUMENT, 'an end message that disagrees is refused');
  await new Promise((r) => setTimeout(r, 300)); // the cancelled call's last bytes have long reached the node
  const verdicts = await node.call<pb.ShardVerifyResult>('VerifyShards', { shards: [0, 1, 2].map((shardIndex) => ({ dataId: 'cut', shardIndex })) });
  t.same(verdicts.shards.map((s) => s.state), [0, 1, 2].map(() => pb.ShardStatus.State.MISSING), 'none of them became a shard');
  const whole = randomBytes(2 * BLOCK + 5);
  t.equal(Number((await putShard(node, { dataId: 'cut', shardIndex: 3, blockSize: BLOCK }, whole, BLOCK / 2)).bytes), whole.length, 'a stream with its end message is stored');
  t.same(await getShard(node, { dataId: 'cut', shardIndex: 3 }), whole);
});

t.test('metadata, listing, records, cluster map and health over gRPC', async (t) => {
  const node = await startNode(t, 'meta');
  const version = (key: string, hlc: number, extra: Partial<pb.IObjectVersion> = {}): pb.IObjectVersion =>
    ({ bucket: 'b', key, versionId: 'null', hlc, size: 3, etag: '"e"', ...extra });
  const put = await node.call<pb.PutMetaResult>('PutMeta', {
    versions: [version('a/1', 10), version('a/2', 10), version('c', 10, { segments: [{ dataId: 'd1', inline: true, inlineShard: Buffer.from('abc') }] })],
  });
  t.same(put.applied, [true, true, true]);
  const late = await node.call<pb.PutMetaResult>('PutMeta', { versions: [version('c', 5)] });
  t.same(late.applied, [false], 'an older null version arriving late is ignored');

  const got = await node.call<pb.GetMetaResult>('GetMeta', { keys: [{ bucket: 'b', key: 'c' }, { bucket: 'b', key: 'zz' }], withInline: true });
  t.equal(got.results[0]!.found, true);
  t.equal(Buffer.from(got.results[0]!.version!.segments![0]!.inlineShard!).toString(), 'abc');
  t.equal(got.results[0]!.version!.hlc, 10);
  t.equal(got.results[1]!.found, false);
  const byId = await node.call<pb.GetMetaResult>('GetMeta', { keys: [{ bucket: 'b', key: 'c', versionId: 'null' }], withInline: false });
  t.equal(byId.results[0]!.version!.etag, '"e"', 'a record asked for by version id');
  t.equal(byId.results[0]!.version!.segments![0]!.inlineShard!.length, 0, 'inline shards stay home unless asked for');
  t.equal(byId.results[0]!.version!.segments![0]!.dataId, 'd1');
  await node.call('DeleteMeta', { keys: [{ bucket: 'b', key: 'a/2', versionId: 'null' }], hlc: 11 });
  const purged = await node.call<pb.GetMetaResult>('GetMeta', { keys: [{ bucket: 'b', key: 'a/2', versionId: 'null' }], withInline: true });
  t.same([purged.results[0]!.found, purged.results[0]!.tombstoneHlc], [false, 11], 'a purged version answers with its tombstone');

  const pages: pb.ListPage[] = [];
  const stream = (node.client as unknown as { List: Function }).List({ bucket: 'b', delimiter: '/', limit: 10 }, node.auth()) as grpc.ClientReadableStream<pb.ListPage>;
  for await (const page of stream) pages.push(page as pb.ListPage);
  const entries = pages.flatMap((p) => p.entries);
  t.same(entries.map((e) => e.commonPrefix || e.version?.key), ['a/', 'c']);
  t.equal(entries[1]!.version!.segments![0]!.inlineShard!.length, 0, 'listing strips inline shards');
  t.equal(pages.at(-1)!.truncated, false);

  await node.call('PutRecords', { records: [{ namespace: 'bucket', key: 'b', value: Buffer.from('{}'), hlc: 7 }] });
  const record = await node.call<pb.Record>('GetRecord', { namespace: 'bucket', key: 'b' });
  t.equal(record.hlc, 7);
  await t.rejects(node.call('GetRecord', { namespace: 'bucket', key: 'other' }), { code: grpc.status.NOT_FOUND });

  t.equal((await node.call<pb.Ack>('SetClusterMap', { epoch: 3, nodes: [{ id: 'meta', address: node.address, weight: 1 }] })).ok, true);
  t.equal((await node.call<pb.Ack>('SetClusterMap', { epoch: 2 })).ok, false, 'an older epoch is ignored');
  const health = await node.call<pb.HealthResult>('Health', {});
  t.equal(health.nodeId, 'meta');
  t.equal(health.mapEpoch, 3);
  t.equal(health.objectCount, 2);
  t.ok(health.freeBytes > 0);
  t.equal(grpcCode(await node.call('PutMeta', { versions: [version('bad\0key', 1)] }).catch((e) => e)), grpc.status.INVALID_ARGUMENT);
});

t.test('metadata calls use the metadata channel Health advertises, and gRPC when it turns them away', async (t) => {
  const node = await startNode(t, 'channel');
  const client = new NodeClient('channel', node.address, TEST_SECRET);
  t.teardown(() => client.close());
  t.equal(client.channelsKnown, false, 'nothing known before Health');
  t.match((await client.health()).metaAddress, /^127\.0\.0\.1:\d+$/);
  t.equal(client.channelsKnown, true);
  const version = { bucket: 'b', key: 'k', versionId: 'null', hlc: 5, segments: [{ dataId: 'd', inline: true, inlineShard: Buffer.from('xyz') }] };
  t.same((await client.putMeta([version])).applied, [true]);
  const slot = (await client.getMeta([{ bucket: 'b', key: 'k', versionId: 'null' }], true)).results[0]!;
  t.equal(Buffer.from(slot.version!.segments![0]!.inlineShard!).toString(), 'xyz', 'a record read back over the channel');

  // A client that means another node at this address (as after a restart moved ports) is refused
  // there before anything runs; its calls go over gRPC and Health is asked again.
  const misdirected = new NodeClient('someone-else', node.address, TEST_SECRET);
  t.teardown(() => misdirected.close());
  await misdirected.health();
  t.same((await misdirected.getMeta([{ bucket: 'b', key: 'k', versionId: 'null' }], false)).results[0]!.version!.hlc, 5);
  t.equal(misdirected.channelsKnown, false, 'the channel is dropped until Health names one again');
});

t.test('--meta-listen puts the metadata channel where the operator says, or turns it off', async (t) => {
  const free = createServer();
  const port = await new Promise<number>((resolve) => free.listen(0, '127.0.0.1', () => resolve((free.address() as { port: number }).port)));
  await new Promise((resolve) => free.close(resolve));
  const placed = await startNode(t, 'meta-placed', ['--meta-listen', `127.0.0.1:${port}`]);
  t.equal((await placed.call<pb.HealthResult>('Health', {})).metaAddress, `127.0.0.1:${port}`);
  const off = await startNode(t, 'meta-off', ['--meta-listen', 'off']);
  const health = await off.call<pb.HealthResult>('Health', {});
  t.equal(health.metaAddress, '', 'off: not advertised');
  t.match(health.bulkAddress, /^127\.0\.0\.1:\d+$/, 'the bulk channel stays on');
});

t.test('coalesced DeleteMeta and ResolveMeta apply each key its own stamp', async (t) => {
  const node = await startNode(t, 'coalesced');
  const clock = new HybridClock();
  const version = (key: string, hlc: number): pb.IObjectVersion => ({ bucket: 'b', key, versionId: 'null', hlc, size: 1, etag: '"e"' });
  const keys = ['older', 'newer', 'kept', 'undone'].map((key) => ({ bucket: 'b', key, versionId: 'null' }));
  const found = async () => (await node.call<pb.GetMetaResult>('GetMeta', { keys })).results.map((r) => r.found);
  await node.call('PutMeta', { versions: [version('older', 10), version('newer', 30), version('kept', 10), version('undone', 10)] });

  await node.call('DeleteMeta', { keys: keys.slice(0, 2), keyHlcs: [20, 20] });
  t.same(await found(), [false, true, true, true], 'each delete purges only what is stored at or before its own stamp');

  const stamps = [clock.now(), clock.now()];
  await node.call('DeleteMeta', { keys: keys.slice(2), keyHlcs: stamps, revertible: true });
  t.same(await found(), [false, true, false, false]);
  await node.call('ResolveMeta', { keys: keys.slice(2), keyHlcs: [stamps[0], stamps[1]! + 1], keyRevisions: [0, 0], commit: false });
  t.same(await found(), [false, true, true, false], 'each revert undoes only the write its own stamp names');
  await node.call('ResolveMeta', { keys: keys.slice(3), keyHlcs: [stamps[1]], keyRevisions: [0], commit: false });
  t.same(await found(), [false, true, true, true]);

  const mismatched = await node.call('DeleteMeta', { keys, keyHlcs: [1] }).catch((e) => e);
  t.equal(grpcCode(mismatched), grpc.status.INVALID_ARGUMENT, 'stamps that do not match the keys one to one are refused');
  t.same(await found(), [false, true, true, true], 'and change nothing');
});

t.test('the background scrubber removes orphans and logs without the secret', async (t) => {
  const dataDir = join(root, 'background');
  const node = await startNode(t, 'background', ['--scrub-interval', '200ms', '--orphan-grace', '0', '--log-level', 'info']);
  await putShard(node, { dataId: 'stray', shardIndex: 0, blockSize: BLOCK }, randomBytes(1000));
  writeFileSync(join(dataDir, 'tmp', 'dead.0.0000.tmp'), 'left by a killed writer of an older version');
  const shardDir = readdirSync(join(dataDir, 'shards'))[0]!;
  writeFileSync(join(dataDir, 'shards', shardDir, 'dead.1.0000.tmp'), 'left by a killed writer');
  for (let waited = 0; allFiles(dataDir).some((f) => f === 'stray.0' || f.endsWith('.tmp')) && waited < 20_000; waited += 100) {
    await new Promise((r) => setTimeout(r, 100));
  }
  t.notOk(allFiles(dataDir).includes('stray.0'), 'unreferenced shard removed');
  t.same(tempFiles(dataDir), [], 'temp files removed, in tmp/ and beside the shards');
  t.match(node.output(), /scrub finished/);
  t.notMatch(node.output(), TEST_SECRET, 'the secret never reaches the log');
});

t.test('a really full disk (a small tmpfs): RESOURCE_EXHAUSTED, no leftovers, node keeps serving', async (t) => {
  const mountPoint = join(root, 'tiny-fs');
  mkdirSync(mountPoint);
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mountPoint]);
  if (mounted.status !== 0) {
    t.comment('skipped: cannot mount a tmpfs here (needs root)');
    return;
  }
  let node: NodeProcess | undefined;
  t.teardown(async () => {
    await node?.stop('SIGKILL');
    spawnSync('umount', ['-l', mountPoint]);
  });
  node = await spawnStorageNode('tiny', join(mountPoint, 'tiny'));
  await t.rejects(putShard(node, { dataId: 'huge', shardIndex: 0, blockSize: BLOCK }, randomBytes(4 * 1024 * 1024)),
    { code: grpc.status.RESOURCE_EXHAUSTED });
  t.same(tempFiles(join(mountPoint, 'tiny')), [], 'no temp file');
  t.same(allFiles(join(mountPoint, 'tiny', 'shards')), [], 'no shard file');
  const small = randomBytes(100_000);
  await putShard(node, { dataId: 'small', shardIndex: 0, blockSize: BLOCK }, small);
  t.ok((await getShard(node, { dataId: 'small', shardIndex: 0 })).equals(small), 'still serving');
});

t.test('pid file while running; SIGTERM stops cleanly and the data dir can be reopened', async (t) => {
  const dataDir = join(root, 'lifecycle');
  const node = await spawnStorageNode('lifecycle', dataDir);
  t.equal(readFileSync(join(dataDir, 'node.pid'), 'utf8').trim(), String(node.child.pid));
  t.equal(statSync(dataDir).mode & 0o777, 0o700, 'data dir is private');
  await node.call('PutRecords', { records: [{ namespace: 'n', key: 'k', value: Buffer.from('v'), hlc: 1 }] });
  await node.stop('SIGTERM');
  t.equal(node.child.exitCode, 0, 'clean exit');
  t.notOk(existsSync(join(dataDir, 'node.pid')), 'pid file removed');
  const again = await startNode(t, 'lifecycle');
  t.equal(Buffer.from((await again.call<pb.Record>('GetRecord', { namespace: 'n', key: 'k' })).value).toString(), 'v', 'data survived');
});
