// Listing on a real LevelDB against a plain in-memory model of S3 listing semantics: any mix of
// version writes and deletes, then any prefix / delimiter / start-after / versions / limit.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { pb } from '../../src/common/node-service.js';
import { listEntries, type ListQuery } from '../../src/storage-node/listing.js';
import { MetaStore } from '../../src/storage-node/meta-store.js';

const root = mkdtempSync(join(tmpdir(), 'tessera-list-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));

interface ModelVersion { versionId: string; hlc: number; deleteMarker: boolean }
type Op =
  | { put: true; key: string; version: ModelVersion }
  | { put: false; key: string; versionId: string; hlc: number };

const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

/** The same rules as the node, written the obvious way. */
class Model {
  readonly versions = new Map<string, Map<string, ModelVersion>>();
  private readonly tombstones = new Map<string, number>();

  constructor(private readonly bucket: string) {}

  /** Equal clocks: the greater encoding wins, as on the node. */
  private encoded(key: string, version: ModelVersion): Buffer {
    return Buffer.from(pb.ObjectVersion.encode({ bucket: this.bucket, key, ...version }).finish());
  }

  apply(op: Op): void {
    const slots = this.versions.get(op.key) ?? new Map<string, ModelVersion>();
    this.versions.set(op.key, slots);
    const id = op.put ? op.version.versionId : op.versionId;
    const stored = slots.get(id);
    const tombstone = this.tombstones.get(`${op.key}\0${id}`) ?? -1;
    if (op.put) {
      if (tombstone >= op.version.hlc || (stored && stored.hlc > op.version.hlc)) return;
      if (stored && stored.hlc === op.version.hlc && Buffer.compare(this.encoded(op.key, op.version), this.encoded(op.key, stored)) < 0) return;
      slots.set(id, op.version);
      return;
    }
    const deleteHlc = op.hlc || stored?.hlc || 0;
    if (stored && stored.hlc <= deleteHlc) slots.delete(id);
    this.tombstones.set(`${op.key}\0${id}`, Math.max(tombstone, deleteHlc));
  }

  /** Versions of a key, newest first (ties by version id bytes, as the node's keys sort). */
  newestFirst(key: string): ModelVersion[] {
    return [...(this.versions.get(key)?.values() ?? [])].sort((a, b) => b.hlc - a.hlc || byteOrder(a.versionId, b.versionId));
  }

  list(q: ListQuery, limit: number): { entries: string[]; truncated: boolean } {
    const entries: string[] = [];
    const emittedPrefixes = new Set<string>();
    const keys = [...this.versions.keys()].filter((k) => k.startsWith(q.prefix)).sort(byteOrder);
    for (const key of keys) {
      let candidates = this.newestFirst(key);
      if (q.allVersions) {
        if (byteOrder(key, q.startAfter) < 0) continue;
        if (key === q.startAfter) {
          const at = q.startAfterVersion ? candidates.findIndex((v) => v.versionId === q.startAfterVersion) : -1;
          candidates = at >= 0 ? candidates.slice(at + 1) : [];
        }
      } else {
        if (q.startAfter && byteOrder(key, q.startAfter) <= 0) continue;
        candidates = candidates.slice(0, 1).filter((v) => !v.deleteMarker || q.includeDeleteMarkers);
      }
      if (candidates.length === 0) continue;
      const at = q.delimiter ? key.indexOf(q.delimiter, q.prefix.length) : -1;
      if (at >= 0) {
        const commonPrefix = key.slice(0, at + q.delimiter.length);
        if (commonPrefix !== q.startAfter && !emittedPrefixes.has(commonPrefix)) entries.push(`P:${commonPrefix}`);
        emittedPrefixes.add(commonPrefix);
        continue;
      }
      for (const v of candidates) entries.push(`V:${key}@${v.versionId}@${v.hlc}${v.deleteMarker ? '!' : ''}`);
    }
    return limit && entries.length > limit ? { entries: entries.slice(0, limit), truncated: true } : { entries, truncated: false };
  }
}

async function nodeList(store: MetaStore, q: ListQuery, limit: number): Promise<{ entries: string[]; truncated: boolean }> {
  const entries: string[] = [];
  for await (const entry of listEntries(store.db, q)) {
    if (limit && entries.length === limit) return { entries, truncated: true };
    if ('commonPrefix' in entry) entries.push(`P:${entry.commonPrefix}`);
    else entries.push(`V:${entry.version.key}@${entry.version.versionId}@${entry.version.hlc}${entry.version.deleteMarker ? '!' : ''}`);
  }
  return { entries, truncated: false };
}

// Keys from a tiny alphabet so that prefixes, delimiters and start-after points collide often;
// 'é' and '😀' make UTF-8 byte order differ from UTF-16 order.
const piece = fc.constantFrom('a', 'b', '/', 'é', '😀', '-');
const name = fc.array(piece, { minLength: 1, maxLength: 4 }).map((parts) => parts.join(''));
const versionId = fc.constantFrom('null', 'v1', 'v2');
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ put: fc.constant(true as const), key: name, version: fc.record({ versionId, hlc: fc.integer({ min: 1, max: 20 }), deleteMarker: fc.boolean() }) }) },
  { weight: 1, arbitrary: fc.record({ put: fc.constant(false as const), key: name, versionId, hlc: fc.integer({ min: 0, max: 20 }) }) },
);
const query = fc.record({
  prefix: fc.oneof(fc.constant(''), name),
  startAfter: fc.oneof(fc.constant(''), name),
  startAfterVersion: fc.oneof(fc.constant(''), versionId),
  delimiter: fc.constantFrom('', '/', 'b', 'é'),
  allVersions: fc.boolean(),
  includeDeleteMarkers: fc.boolean(),
});

t.test('node listing matches the model', async (t) => {
  const store = await MetaStore.open(join(root, 'db'), { releaseSegments: async () => {} });
  t.teardown(() => store.close());
  let run = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(op, { maxLength: 30 }), fc.array(query, { minLength: 1, maxLength: 4 }), fc.integer({ min: 0, max: 6 }),
      async (ops, queries, limit) => {
        const bucket = `bucket${run++}`; // a fresh bucket per run: one database serves every run
        const model = new Model(bucket);
        ops.forEach((o) => model.apply(o));
        // Sent concurrently, so they share group-committed batches, in the same order as the model.
        await Promise.all(ops.map((o) => (o.put
          ? store.putVersions([pb.ObjectVersion.create({ bucket, key: o.key, ...o.version })])
          : store.deleteVersions([{ ref: { bucket, key: o.key, versionId: o.versionId }, hlc: o.hlc }]))));
        for (const q of queries) {
          const full = { ...q, bucket };
          const got = await nodeList(store, full, limit);
          const want = model.list(full, limit);
          if (JSON.stringify(got) !== JSON.stringify(want)) {
            throw new Error(`query ${JSON.stringify(q)} limit ${limit}\n got ${JSON.stringify(got)}\nwant ${JSON.stringify(want)}`);
          }
        }
      }),
    { numRuns: 300 },
  );
  t.pass('300 random histories and queries agree');
});

t.test('a common prefix over many keys costs one seek, not a read per key', async (t) => {
  const store = await MetaStore.open(join(root, 'wide'), { releaseSegments: async () => {} });
  t.teardown(() => store.close());
  const versions = Array.from({ length: 2000 }, (_, i) => pb.ObjectVersion.create({ bucket: 'w', key: `dir/${i}`, versionId: 'null', hlc: 1 }));
  await store.putVersions([...versions, pb.ObjectVersion.create({ bucket: 'w', key: 'file', versionId: 'null', hlc: 1 })]);
  let reads = 0;
  const iterator = store.db.iterator.bind(store.db);
  store.db.iterator = ((options: object) => {
    const it = iterator(options as never);
    const next = it.next.bind(it);
    it.next = (async () => { reads++; return next(); }) as typeof it.next;
    return it;
  }) as typeof store.db.iterator;
  const entries: string[] = [];
  for await (const e of listEntries(store.db, { bucket: 'w', prefix: '', startAfter: '', startAfterVersion: '', delimiter: '/', allVersions: false, includeDeleteMarkers: false })) {
    entries.push('commonPrefix' in e ? e.commonPrefix : e.version.key);
  }
  t.same(entries, ['dir/', 'file']);
  t.ok(reads <= 4, `${reads} iterator reads for 2001 keys`);
});

t.test('start-after past the prefix range on an empty database ends the listing', async (t) => {
  // classic-level aborts the process on a seek past the range of an empty snapshot.
  const store = await MetaStore.open(join(root, 'empty'), { releaseSegments: async () => {} });
  t.teardown(() => store.close());
  const query = { bucket: 'b', prefix: 'a', startAfter: 'b', startAfterVersion: '', delimiter: '', allVersions: false, includeDeleteMarkers: false };
  for await (const entry of listEntries(store.db, query)) t.fail(`unexpected ${JSON.stringify(entry)}`);
  for await (const entry of listEntries(store.db, { ...query, prefix: '', startAfter: 'zzz' })) t.fail(`unexpected ${JSON.stringify(entry)}`);
  t.pass('no entries, no crash');
});
