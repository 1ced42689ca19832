// The compact blob index answers like a map from id to (pack, entry) where the last pack added
// wins, across table growth, whether packs are added as messages or read from their encoding;
// packs given encoded decode to what was added.
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import t from 'tap';
import { BlobType, PackEntry, PackRef } from '../../src/backup/format.js';
import { BlobIndex } from '../../src/backup/repository.js';

const entryArb = (ids: Buffer[]) => fc.record({
  id: fc.constantFrom(...ids),
  type: fc.constantFrom(BlobType.CHUNK, BlobType.PAGE),
  offset: fc.integer({ min: 0, max: 2 ** 40 }),
  length: fc.integer({ min: 1, max: 2 ** 24 }),
  rawLength: fc.integer({ min: 1, max: 2 ** 18 }),
  compressed: fc.boolean(),
});

const plain = (e: PackEntry) => ({ id: Buffer.from(e.id).toString('hex'), type: e.type, offset: Number(e.offset), length: e.length, rawLength: e.rawLength, compressed: e.compressed });

t.test('lookups match a map where the last pack added wins', async (t) => {
  // Few distinct ids, so packs share blobs; many entries, so the table grows several times.
  const ids = Array.from({ length: 3000 }, () => randomBytes(32));
  // Few pack names too: a pack added again is ignored, as when an index file and a trailer both name it.
  const packArb = fc.record({ pack: fc.integer({ min: 0, max: 20 }).map((n) => `pack${n}`), entries: fc.array(entryArb(ids), { maxLength: 800 }) });
  fc.assert(fc.property(fc.array(packArb, { maxLength: 12 }), fc.boolean(), (packs, withEncoding) => {
    const index = new BlobIndex();
    const expected = new Map<string, { pack: string; entry: ReturnType<typeof plain> }>();
    const added = new Set<string>();
    for (const { pack, entries } of packs) {
      const ref = PackRef.create({ pack, entries: entries.map((e) => PackEntry.create(e)), lockUntilMs: 0 });
      const encoded = PackRef.encode(ref).finish();
      if (withEncoding) index.addEncodedPack(encoded);
      else index.addPack(ref);
      if (added.has(pack)) continue; // a pack is added once
      added.add(pack);
      for (const entry of ref.entries as PackEntry[]) expected.set(Buffer.from(entry.id).toString('hex'), { pack, entry: plain(entry) });
    }
    for (const id of ids) {
      const hex = id.toString('hex');
      const found = index.get(id);
      const want = expected.get(hex);
      if (!want) {
        if (found !== undefined || index.blobs.get(hex) !== undefined) return false;
        continue;
      }
      const same = (location: typeof found) => location?.pack === want.pack && JSON.stringify(plain(location.entry)) === JSON.stringify(want.entry);
      if (!same(found) || !same(index.blobs.get(hex))) return false;
    }
    return JSON.stringify([...index.packs.keys()].sort()) === JSON.stringify([...added].sort()) && [...added].every((pack) => index.hasPack(pack));
  }), { numRuns: 25 });
  t.pass('25 random sets of packs');
});

t.test('packs decode to the refs that were added', async (t) => {
  const index = new BlobIndex();
  const ref = PackRef.create({ pack: 'p1', entries: [PackEntry.create({ id: randomBytes(32), type: BlobType.PAGE, offset: 7, length: 9, rawLength: 11, compressed: true })], lockUntilMs: 1234 });
  const encoded = PackRef.encode(ref).finish();
  index.addEncodedPack(encoded);
  index.addEncodedPack(PackRef.encode(PackRef.create({ pack: 'p3', entries: [] })).finish(), new Set(['p3']));
  t.notOk(index.hasPack('p3'), 'a pack to skip is not added');
  const recovered = PackRef.create({ pack: 'p2', entries: [], lockUntilMs: 0 });
  index.addPack(recovered);
  const decoded = index.packs.get('p1')!;
  t.same({ pack: decoded.pack, lockUntilMs: Number(decoded.lockUntilMs), entries: (decoded.entries as PackEntry[]).map(plain) },
    { pack: 'p1', lockUntilMs: 1234, entries: (ref.entries as PackEntry[]).map(plain) });
  t.equal(index.packs.get('p2'), recovered);
  t.equal(index.get(randomBytes(32)), undefined);
});
