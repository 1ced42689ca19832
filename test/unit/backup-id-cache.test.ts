// The local chunk-id cache hands back a snapshot's ids only when they rebuild the snapshot's
// root: a copy of another snapshot, a damaged copy, or one under another key is a miss.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { BlobCodec } from '../../src/backup/blob-codec.js';
import { ChunkIdCache } from '../../src/backup/id-cache.js';
import { buildTree } from '../../src/backup/tree.js';

const FANOUT = 16;
const dir = mkdtempSync(join(tmpdir(), 'tessera-id-cache-'));
process.env.TESSERA_CACHE_DIR = dir;
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const codec = BlobCodec.encrypted(randomBytes(32), randomBytes(32), true);
const snapshotOf = (ids: Buffer) => {
  const tree = buildTree(ids, FANOUT, (body) => codec.idOf(body));
  return { disk: 'vm', root: tree.root, depth: tree.depth, fanout: FANOUT };
};

t.test('a cached copy is used only for the snapshot it is', async (t) => {
  const cache = ChunkIdCache.forBucket('bucket', codec);
  const ids = randomBytes(100 * 32);
  const snapshot = snapshotOf(ids);
  t.equal(await cache.read(snapshot), undefined, 'nothing cached yet');
  await cache.write('vm', ids);
  t.same(await cache.read(snapshot), ids, 'the written ids come back');

  const changed = Buffer.from(ids);
  changed[40]! ^= 1;
  t.equal(await cache.read(snapshotOf(changed)), undefined, 'another snapshot of the disk misses');
  t.equal(await ChunkIdCache.forBucket('bucket', BlobCodec.encrypted(randomBytes(32), randomBytes(32), true)).read(snapshot), undefined,
    'under another key the root differs: a miss');

  writeFileSync(join(dir, 'bucket', 'vm.ids'), changed);
  t.equal(await cache.read(snapshot), undefined, 'a damaged copy misses');
  t.same(readdirSync(join(dir, 'bucket')), ['vm.ids'], 'no temporary files are left');
});
