// Metadata rules of a storage node on a real LevelDB: version slots and the null version,
// tombstones, uploads, records, the cluster map, and group commit under concurrency.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { KEPT_TTL_MS, pb, stampOf } from '../../src/common/node-service.js';
import { MetaStore, TOMBSTONE_TTL_MS, type DataSegment } from '../../src/storage-node/meta-store.js';

const root = mkdtempSync(join(tmpdir(), 'tessera-meta-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));

let opened = 0;
async function openStore(t: { teardown(fn: () => unknown): void }) {
  const released: string[] = [];
  const store = await MetaStore.open(join(root, `db${opened++}`), {
    releaseSegments: async (segments: DataSegment[]) => { released.push(...segments.map((s) => s.dataId!)); },
  });
  t.teardown(() => store.close());
  return { store, released };
}

function version(key: string, versionId: string, hlc: number, dataId = `d-${key}-${hlc}`): pb.ObjectVersion {
  return pb.ObjectVersion.create({ bucket: 'b', key, versionId, hlc, size: 1, segments: [{ dataId, nodes: ['n1', 'n2'] }] });
}

const ref = (key: string, versionId = '') => ({ bucket: 'b', key, versionId });

t.test('the null version is one slot: newer replaces and frees shards, older is ignored', async (t) => {
  const { store, released } = await openStore(t);
  t.same((await store.putVersions([version('k', 'null', 100)])).applied, [true]);
  t.same((await store.putVersions([version('k', 'null', 200)])).applied, [true], 'newer null version replaces');
  t.same(released, ['d-k-100'], "the replaced version's shards are released");
  t.same((await store.putVersions([version('k', 'null', 150)])).applied, [false], 'a late older one is ignored');
  t.equal((await store.getVersion(ref('k')))?.hlc, 200);
  t.equal((await store.getVersion(ref('k', 'null')))?.hlc, 200);
  t.equal(store.objectVersionCount, 1);

  t.same((await store.putVersions([version('k', 'null', 200)])).applied, [true], 'a retry of the same write is applied');
  t.same(released, ['d-k-100'], 'and frees nothing it still uses');
});

t.test('equal clocks: every arrival order keeps the same winner', async (t) => {
  const one = pb.ObjectVersion.create({ bucket: 'b', key: 'k', versionId: 'null', hlc: 7, etag: '"aaa"' });
  const two = pb.ObjectVersion.create({ bucket: 'b', key: 'k', versionId: 'null', hlc: 7, etag: '"bbb"' });
  const { store: first } = await openStore(t);
  const { store: second } = await openStore(t);
  await first.putVersions([one]);
  await first.putVersions([two]);
  await second.putVersions([two]);
  t.same((await second.putVersions([one])).applied, [false]);
  t.equal((await first.getVersion(ref('k')))?.etag, (await second.getVersion(ref('k')))?.etag);
  t.same((await first.putVersions([two])).applied, [true], 'a retry of the winner is applied');
});

t.test('named versions coexist; the newest (even a delete marker) answers an empty version id', async (t) => {
  const { store } = await openStore(t);
  await store.putVersions([version('k', 'v1', 10), version('k', 'v2', 20)]);
  const marker = pb.ObjectVersion.create({ bucket: 'b', key: 'k', versionId: 'v3', hlc: 30, deleteMarker: true });
  await store.putVersions([marker]);
  t.equal((await store.getVersion(ref('k')))?.versionId, 'v3');
  t.equal((await store.getVersion(ref('k')))?.deleteMarker, true);
  t.equal((await store.getVersion(ref('k', 'v1')))?.hlc, 10);
  t.equal(await store.getVersion(ref('k', 'v9')), undefined);
  t.equal(await store.getVersion(ref('other')), undefined);
  t.equal(store.objectVersionCount, 3);
});

t.test('deleting a version purges it, frees its shards and keeps late writes out', async (t) => {
  const { store, released } = await openStore(t);
  await store.putVersions([version('k', 'v1', 10), version('k', 'null', 20)]);
  await store.deleteVersions([{ ref: ref('k', 'v1'), hlc: 50 }]);
  t.equal(await store.getVersion(ref('k', 'v1')), undefined);
  t.same(released, ['d-k-10']);
  t.same((await store.putVersions([version('k', 'v1', 10)])).applied, [false], 'a late write of the purged version stays deleted');
  t.same((await store.putVersions([version('k', 'v1', 60)])).applied, [true], 'a write newer than the delete is applied');

  await store.deleteVersions([{ ref: ref('k', 'null'), hlc: 5 }]);
  t.equal((await store.getVersion(ref('k', 'null')))?.hlc, 20, 'a delete older than the stored version leaves it');
  await store.deleteVersions([{ ref: ref('k', 'null'), hlc: 0 }]);
  t.equal(await store.getVersion(ref('k', 'null')), undefined, 'hlc 0 deletes whatever is stored');
  t.same((await store.putVersions([version('k', 'null', 20)])).applied, [false], 'and its tombstone holds that hlc');

  t.equal(await store.purgeExpiredTombstones(Date.now()), 0, 'fresh tombstones stay');
  t.equal(await store.purgeExpiredTombstones(Date.now() + TOMBSTONE_TTL_MS + 1000), 2, 'old ones go');
  t.same((await store.putVersions([version('k', 'null', 20)])).applied, [true]);
});

t.test('a record moved to other nodes (rebalance) leaves no tombstone: it is no delete', async (t) => {
  const { store, released } = await openStore(t);
  await store.putVersions([version('k', 'v1', 10), version('k', 'v2', 30)]);
  await store.deleteVersions([{ ref: ref('k', 'v1'), hlc: 10 }, { ref: ref('k', 'v2'), hlc: 20 }], { moved: true });
  t.equal(await store.getVersion(ref('k', 'v1')), undefined, 'the moved record is gone');
  t.equal(store.tombstoneOf(ref('k', 'v1')), undefined, 'without a tombstone, so readers see no delete');
  t.same(released, ['d-k-10'], 'its shards are freed as the record goes');
  t.equal((await store.getVersion(ref('k', 'v2')))?.hlc, 30, 'a newer write of the same version id stays');
  const back = pb.ObjectVersion.create({ ...version('k', 'v1', 10), revision: 99 });
  t.same((await store.putVersions([back])).applied, [true], 'the record is taken again when the node is in its placement again');
  await t.rejects(store.deleteVersions([{ ref: ref('k', 'v1'), hlc: 10 }], { moved: true, revertible: true }), /no revertible delete/);
});

t.test('concurrent writes of one key are group-committed and the newest wins', async (t) => {
  const { store } = await openStore(t);
  let batches = 0;
  store.onBatch = () => { batches++; };
  const hlcs = Array.from({ length: 300 }, (_, i) => ((i * 7919) % 300) + 1);
  const results = await Promise.all(hlcs.map((hlc) => store.putVersions([version('hot', 'null', hlc)])));
  t.ok(batches < hlcs.length / 4, `${hlcs.length} writes took ${batches} batches`);
  t.equal((await store.getVersion(ref('hot')))?.hlc, 300);
  t.equal(store.objectVersionCount, 1);
  // Evaluated in arrival order: a write is applied exactly when it is newer than all before it.
  let newest = 0;
  hlcs.forEach((hlc, i) => {
    t.equal(results[i]!.applied[0], hlc >= newest, `write ${i} (hlc ${hlc})`);
    newest = Math.max(newest, hlc);
  });
});

t.test('uploads: create, merge parts, replace a part, list, delete', async (t) => {
  const { store, released } = await openStore(t);
  const upload = (key: string, uploadId: string, hlc: number, parts: Array<[number, string]> = [], template = true) => ({
    bucket: 'b', key, uploadId, hlc, initiatedMs: 1,
    template: template ? { contentType: 'text/plain' } : null,
    parts: parts.map(([partNumber, dataId]) => ({ partNumber, dataId, size: 5 })),
  });
  await store.putUpload(upload('k', 'u1', 1));
  await store.putUpload(upload('k', 'u1', 5, [[2, 'p2a']], false));
  await store.putUpload(upload('k', 'u1', 6, [[1, 'p1']], false));
  await store.putUpload(upload('k', 'u1', 7, [[2, 'p2b']], false));
  await store.putUpload(upload('k', 'u1', 3, [[1, 'p1-late']], false));
  const got = await store.getUpload({ bucket: 'b', key: 'k', uploadId: 'u1' });
  t.same(got.parts.map((p) => [p.partNumber, p.dataId]), [[1, 'p1'], [2, 'p2b']], 'parts sorted, newest per number');
  t.equal(got.template?.contentType, 'text/plain', 'the template of the create is kept');
  t.same(released, ['p2a'], 'the replaced part is released, the late one never stored');

  await store.putUpload(upload('j', 'u9', 1));
  await store.putUpload(upload('k', 'u0', 1));
  await store.putUpload(upload('x/1', 'u5', 1));
  const ids = async (request: pb.IListUploadsRequest) =>
    (await store.listUploads({ bucket: 'b', ...request })).map((u) => `${u.key}:${u.uploadId}`);
  t.same(await ids({}), ['j:u9', 'k:u0', 'k:u1', 'x/1:u5']);
  t.same(await ids({ keyMarker: 'k', uploadIdMarker: 'u0' }), ['k:u1', 'x/1:u5']);
  t.same(await ids({ keyMarker: 'k' }), ['x/1:u5'], 'a key marker alone skips that key');
  t.same(await ids({ prefix: 'x/' }), ['x/1:u5']);
  t.same(await ids({ limit: 2 }), ['j:u9', 'k:u0']);
  t.equal((await store.listUploads({ bucket: 'b' }))[0]!.parts.length, 0, 'listing carries no parts');

  await store.deleteUpload({ bucket: 'b', key: 'k', uploadId: 'u1' });
  t.equal((await store.getUpload({ bucket: 'b', key: 'k', uploadId: 'u1' })).ended, true, 'an ended upload says so');
  await t.rejects(store.getUpload({ bucket: 'b', key: 'k', uploadId: 'never' }), { name: 'StoreError(NotFound)' });
  t.same(released, ['p2a'], "deleting an upload leaves its parts' shards (a completed object uses them)");
  t.equal(await store.putUpload(upload('k', 'u1', 9, [[3, 'p3']], false)), false, 'a late part of an ended upload stays out');
  t.same((await store.getUpload({ bucket: 'b', key: 'k', uploadId: 'u1' })).parts, [], 'and is not stored');
  t.equal(await store.purgeExpiredTombstones(Date.now() + TOMBSTONE_TTL_MS + 1000), 1, 'the end marker expires like a tombstone');
});

t.test('records: newest hlc wins, tombstones win over older writes and are not listed', async (t) => {
  const { store } = await openStore(t);
  const record = (key: string, hlc: number, value: string, deleted = false) => ({ namespace: 'ns', key, hlc, value: Buffer.from(value), deleted });
  await store.putRecords([record('a', 5, 'five'), record('b', 1, 'one'), record('c', 1, 'c')]);
  await store.putRecords([record('a', 3, 'three')]);
  t.equal(Buffer.from((await store.getRecord('ns', 'a')).value).toString(), 'five');
  await store.putRecords([record('b', 9, '', true), record('b', 4, 'late')]);
  t.equal((await store.getRecord('ns', 'b')).deleted, true, 'GetRecord returns the tombstone with its hlc');
  t.same((await store.listRecords('ns', '')).map((r) => r.key), ['a', 'c']);
  t.same((await store.listRecords('ns', 'c')).map((r) => r.key), ['c']);
  t.same(await store.listRecords('other', ''), []);
  t.same((await store.listRecords('ns', '', { includeDeleted: true })).map((r) => [r.key, r.deleted]), [['a', false], ['b', true], ['c', false]],
    'tombstones are listed on request, so a merge across nodes sees deletes');
  await t.rejects(store.getRecord('ns', 'zzz'), { name: 'StoreError(NotFound)' });
});

t.test('cluster map: only a newer epoch is stored', async (t) => {
  const { store } = await openStore(t);
  t.equal((await store.getClusterMap()).epoch, 0);
  t.equal(await store.setClusterMap({ epoch: 2, dataShards: 4 }), true);
  t.equal(await store.setClusterMap({ epoch: 2, dataShards: 9 }), false);
  t.equal(await store.setClusterMap({ epoch: 1 }), false);
  t.equal((await store.getClusterMap()).dataShards, 4);
});

t.test('names with NUL are refused', async (t) => {
  const { store } = await openStore(t);
  await t.rejects(store.putVersions([version('a\0b', 'null', 1)]), { name: 'StoreError(InvalidArgument)' });
  await t.rejects(store.putVersions([version('', 'null', 1)]), { name: 'StoreError(InvalidArgument)' });
});

// Revertible writes: what a write replaced or purged stays until the writer settles or reverts it.
const HLC_PER_MS = 4096;
const fresh = (offsetMs = 0) => (Date.now() + offsetMs) * HLC_PER_MS;

t.test('a reverted overwrite brings the replaced value back, and a late copy of it stays out', async (t) => {
  const { store, released } = await openStore(t);
  const before = version('k', 'null', fresh(-1000), 'before');
  const refused = version('k', 'null', fresh(), 'refused');
  await store.putVersions([before]);
  t.same(await store.putVersions([refused], { revertible: true }), { applied: [true], keptPrevious: [true] });
  t.equal((await store.getVersion(ref('k', 'null')))?.segments[0]?.dataId, 'refused', 'the overwrite is visible until resolved');
  t.same(released, [], "the replaced version's shards stay while it is kept");
  await store.resolveWrites([{ ref: ref('k', 'null'), stamp: { hlc: refused.hlc, revision: 0 } }], false);
  t.equal((await store.getVersion(ref('k', 'null')))?.segments[0]?.dataId, 'before', 'reverted: the value before is back');
  t.same(released, ['refused'], "the reverted write's shards go");
  t.same((await store.putVersions([refused], { revertible: true })).applied, [false], 'a late copy of the reverted write is refused');
  t.equal(store.objectVersionCount, 1);
});

t.test("a version made of an upload's parts never frees them while the upload still names them here", async (t) => {
  const { store, released } = await openStore(t);
  const uploadKey = { bucket: 'b', key: 'k', uploadId: 'u1' };
  await store.putUpload({ ...uploadKey, hlc: 1, initiatedMs: 1, template: {}, parts: [{ partNumber: 1, dataId: 'part-1', size: 5 }] });
  const completed = () => pb.ObjectVersion.create({ bucket: 'b', key: 'k', versionId: 'null', hlc: fresh(), segments: [{ dataId: 'part-1', partNumber: 1 }] });

  const reverted = completed();
  await store.putVersions([reverted], { revertible: true });
  await store.resolveWrites([{ ref: ref('k', 'null'), stamp: stampOf(reverted) }], false);
  t.same(released, [], 'a reverted complete leaves the parts it was made of');

  await store.putVersions([completed()], { revertible: true });
  await store.putVersions([version('k', 'null', fresh(1000), 'overwrite')]);
  t.same(released, [], 'an overwrite of a completed version whose upload lingers here leaves the parts');

  await store.deleteUpload(uploadKey);
  await store.putVersions([version('k', 'null', fresh(2000), 'overwrite-2')]);
  t.same(released, ['overwrite'], 'once the upload ended, what is dropped is freed as always');
});

t.test('a settled overwrite frees what it replaced; an unresolved one is settled after the TTL', async (t) => {
  const { store, released } = await openStore(t);
  await store.putVersions([version('k', 'null', fresh(-2000), 'first')]);
  const second = version('k', 'null', fresh(-1000), 'second');
  await store.putVersions([second], { revertible: true });
  await store.resolveWrites([{ ref: ref('k', 'null'), stamp: { hlc: second.hlc + 1, revision: 0 } }], true);
  t.same(released, [], "settling another write's stamp changes nothing");
  await store.resolveWrites([{ ref: ref('k', 'null'), stamp: { hlc: second.hlc, revision: 0 } }], true);
  t.same(released, ['first'], 'settled: the replaced shards go');
  await store.putVersions([version('k', 'null', fresh(), 'third')], { revertible: true });
  t.equal(await store.purgeExpiredTombstones(Date.now() + KEPT_TTL_MS + 1000), 1, 'an abandoned kept record expires');
  t.same(released, ['first', 'second']);
  t.equal((await store.getVersion(ref('k', 'null')))?.segments[0]?.dataId, 'third');
});

t.test('a reverted delete restores the version and its tombstone state', async (t) => {
  const { store, released } = await openStore(t);
  const stored = version('k', 'v1', fresh(-1000), 'v1-data');
  await store.putVersions([stored]);
  const stamp = { hlc: fresh(), revision: 0 };
  await store.deleteVersions([{ ref: ref('k', 'v1'), hlc: stamp.hlc }], { revertible: true });
  t.equal(await store.getVersion(ref('k', 'v1')), undefined, 'deleted until resolved');
  t.same(store.tombstoneOf(ref('k', 'v1')), { hlc: stamp.hlc, pending: true }, 'readers learn the delete may still be reverted');
  const kept: string[] = [];
  for await (const segment of store.referencedSegments()) kept.push(segment.dataId!);
  t.same(kept, ['v1-data'], 'the scrubber still sees the kept shards as referenced');
  await store.resolveWrites([{ ref: ref('k', 'v1'), stamp }], false);
  t.equal((await store.getVersion(ref('k', 'v1')))?.segments[0]?.dataId, 'v1-data', 'reverted: the version is back');
  t.same((await store.putVersions([stored])).applied, [true], 'no tombstone is left to block a repair of it');
  await store.deleteVersions([{ ref: ref('k', 'v1'), hlc: stamp.hlc }], { revertible: true });
  t.ok(await store.getVersion(ref('k', 'v1')), 'a late copy of the reverted delete stays out');
  t.same(released, []);
});

t.test('a settled delete leaves a final tombstone that readers are told of', async (t) => {
  const { store } = await openStore(t);
  await store.putVersions([version('k', 'v1', fresh(-1000))]);
  const stamp = { hlc: fresh(), revision: 0 };
  await store.deleteVersions([{ ref: ref('k', 'v1'), hlc: stamp.hlc }], { revertible: true });
  await store.resolveWrites([{ ref: ref('k', 'v1'), stamp }], true);
  t.same(store.tombstoneOf(ref('k', 'v1')), { hlc: stamp.hlc, pending: false });
  t.equal(store.tombstoneOf(ref('k', 'never')), undefined, 'a version never deleted here has none');
});

t.test('a revertible write that arrives after its deadline is refused', async (t) => {
  const { store } = await openStore(t);
  const late = version('k', 'null', fresh(-60_000));
  await t.rejects(store.putVersions([late], { revertible: true }), { name: 'StoreError(Unavailable)' });
  await t.rejects(store.deleteVersions([{ ref: ref('k', 'null'), hlc: late.hlc }], { revertible: true }), { name: 'StoreError(Unavailable)' });
  t.same((await store.putVersions([late])).applied, [true], 'repairs of old versions are not revertible and apply');
});

t.test('a repair with a newer version drops what an unresolved older write kept', async (t) => {
  const { store, released } = await openStore(t);
  await store.putVersions([version('k', 'null', fresh(-2000), 'p')]);
  await store.putVersions([version('k', 'null', fresh(-1000), 'h1')], { revertible: true });
  await store.putVersions([version('k', 'null', fresh(), 'h2')]);
  t.same(released.sort(), ['h1', 'p'], 'the replaced record and the kept one both go');
  let referenced = 0;
  for await (const _ of store.referencedSegments()) referenced++;
  t.equal(referenced, 1, 'only the current version is referenced');
});

t.test('overlapping refused writes: any order of settles and reverts ends at the last settled write', async (t) => {
  // Writes of one version apply in order (each newer); each is settled or reverted some time after
  // it applied. The node must end holding the last settled write's result (the acknowledged value
  // when none settled), and free every other write's shards but none of that one's.
  const writes = fc.array(fc.record({ remove: fc.boolean(), settle: fc.boolean(), resolveAfter: fc.nat(4) }), { minLength: 1, maxLength: 6 });
  await fc.assert(fc.asyncProperty(writes, async (plan) => {
    const { store, released } = await openStore(t);
    const base = fresh(-3000);
    await store.putVersions([version('k', 'null', base, 'acked')]);
    const stamps = plan.map((_, i) => ({ hlc: base + (i + 1) * HLC_PER_MS, revision: 0 }));
    const resolve = async (i: number) => store.resolveWrites([{ ref: ref('k', 'null'), stamp: stamps[i]! }], plan[i]!.settle);
    const due = new Map<number, number[]>();
    for (const [i, w] of plan.entries()) {
      const at = Math.min(plan.length - 1, i + w.resolveAfter);
      due.set(at, [...(due.get(at) ?? []), i]);
    }
    for (const [i, w] of plan.entries()) {
      if (w.remove) await store.deleteVersions([{ ref: ref('k', 'null'), hlc: stamps[i]!.hlc }], { revertible: true });
      else await store.putVersions([version('k', 'null', stamps[i]!.hlc, `w${i}`)], { revertible: true });
      for (const j of due.get(i) ?? []) await resolve(j);
    }
    const lastSettled = plan.map((w, i) => (w.settle ? i : -1)).reduce((a, b) => Math.max(a, b), -1);
    const expected = lastSettled < 0 ? 'acked' : plan[lastSettled]!.remove ? undefined : `w${lastSettled}`;
    const stored = await store.getVersion(ref('k', 'null'));
    if (stored?.segments[0]?.dataId !== expected) throw new Error(`holds ${stored?.segments[0]?.dataId}, expected ${expected}`);
    const all = ['acked', ...plan.flatMap((w, i) => (w.remove ? [] : [`w${i}`]))];
    const freed = new Set(released);
    for (const id of all) {
      if (freed.has(id) === (id === expected)) throw new Error(`${id} ${freed.has(id) ? 'freed' : 'kept'}; the node holds ${expected}`);
    }
    for await (const _ of store.referencedSegments()) if (!expected) throw new Error('a kept record outlived every write');
  }), { numRuns: 60 });
});
