// The shard store on a real directory: block checksums survive any chunking of the input, every
// damaged byte (data or trailer) is caught, the capacity limit leaves nothing behind, and names
// cannot escape the data directory.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, truncateSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { pb } from '../../src/common/node-service.js';
import { serializeChunkIntoScratch } from '../../src/storage-node/chunk-serializer.js';
import { DIRECT_ALIGN } from '../../src/common/direct-io.js';
import { alignedBuffer, NewFile } from '../../src/storage-node/direct-file.js';
import { ShardStore, type ShardRef } from '../../src/storage-node/shard-store.js';

const root = mkdtempSync(join(tmpdir(), 'tessera-shards-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
let opened = 0;

const openStore = (capacityBytes?: number) => ShardStore.open(join(root, `s${opened++}`), { capacityBytes });

async function* chunksOf(data: Buffer, sizes: number[]): AsyncGenerator<Uint8Array> {
  let offset = 0;
  for (let i = 0; offset < data.length; i++) {
    const size = sizes[i % sizes.length]!;
    yield data.subarray(offset, offset + size);
    offset += size;
  }
}

async function readRange(store: ShardStore, ref: ShardRef, offset: number, length: number): Promise<Buffer> {
  const reader = await store.openShard(ref);
  try {
    const { blockSize } = reader.layout;
    const parts: Buffer[] = [];
    for (let block = Math.floor(offset / blockSize); block * blockSize < offset + length; block++) {
      const data = Buffer.from(await reader.readVerifiedBlock(block, Buffer.alloc(blockSize)));
      parts.push(data.subarray(Math.max(0, offset - block * blockSize), offset + length - block * blockSize));
    }
    return Buffer.concat(parts);
  } finally {
    await reader.close();
  }
}

function shardPath(store: string, name: string): string {
  const shards = join(root, store, 'shards');
  const dir = readdirSync(shards).find((d) => readdirSync(join(shards, d)).includes(name))!;
  return join(shards, dir, name);
}

t.test('any chunking and block size round-trips', async (t) => {
  const store = await openStore();
  let n = 0;
  await fc.assert(fc.asyncProperty(
    fc.integer({ min: 0, max: 70_000 }), fc.integer({ min: 1, max: 9000 }), fc.array(fc.integer({ min: 1, max: 20_000 }), { minLength: 1, maxLength: 5 }),
    fc.nat(), fc.nat(),
    async (size, blockSize, chunkSizes, a, b) => {
      const data = randomBytes(size);
      const ref = { dataId: `p${n++}`, shardIndex: 0 };
      const result = await store.write(ref, blockSize, chunksOf(data, chunkSizes));
      if (result.bytes !== size || result.blocks !== Math.ceil(size / blockSize)) throw new Error(`bad result ${JSON.stringify(result)}`);
      const offset = size ? a % size : 0;
      const length = size ? b % (size - offset + 1) : 0;
      if (!(await readRange(store, ref, offset, length)).equals(data.subarray(offset, offset + length))) throw new Error('range differs');
      if ((await store.verify(ref)).state !== 'OK') throw new Error('verify failed');
    }), { numRuns: 40 });
  t.equal((await store.usage()).shardCount, 40);
});

t.test('shards of several write batches round-trip whatever the block size (direct writes carry unaligned rests over)', async (t) => {
  const store = await openStore();
  // 4+2's block, one that is not a multiple of 4 KiB (12+4's), an odd small one, and a 1 MiB block.
  for (const [blockSize, size] of [[262_144, 4_194_304 + 777], [87_424, 3_000_001], [4_999, 2_500_000], [1_048_576, 3_145_728]] as const) {
    const data = randomBytes(size);
    const ref = { dataId: `big${blockSize}`, shardIndex: 1 };
    const result = await store.write(ref, blockSize, chunksOf(data, [65_536, 1_000, 300_000]));
    t.same(result, { bytes: size, blocks: Math.ceil(size / blockSize) }, `block size ${blockSize}`);
    t.ok((await readRange(store, ref, 0, size)).equals(data), `block size ${blockSize}: every byte reads back`);
    t.equal((await store.verify(ref)).state, 'OK');
  }
});

t.test('a direct write the file system refuses goes through the page cache, and so do the later ones', async (t) => {
  const path = join(root, 'refused-direct-write');
  const file = await NewFile.create(path, 0o600);
  const aligned = alignedBuffer(2 * DIRECT_ALIGN).fill(1);
  const misaligned = alignedBuffer(2 * DIRECT_ALIGN + 1).fill(2).subarray(1); // memory off the alignment: EINVAL where direct
  await file.append(aligned.subarray(0, DIRECT_ALIGN));
  await file.append(misaligned);
  await file.append(aligned);
  await file.finish([Buffer.from('tail')]);
  t.ok(readFileSync(path).equals(Buffer.concat([aligned.subarray(0, DIRECT_ALIGN), misaligned, aligned, Buffer.from('tail')])));
});

t.test('a flipped bit anywhere in the file makes the shard corrupt', async (t) => {
  const store = await openStore();
  const storeDir = `s${opened - 1}`;
  const data = randomBytes(10_000);
  await store.write({ dataId: 'x', shardIndex: 3 }, 1024, chunksOf(data, [4096]));
  const path = shardPath(storeDir, 'x.3');
  const pristine = readFileSync(path);
  for (const at of [0, 5000, 9999, 10_000, 10_000 + 80 - 1, pristine.length - 1]) {
    const damaged = Buffer.from(pristine);
    damaged[at]! ^= 1;
    writeFileSync(path, damaged);
    const check = await store.verify({ dataId: 'x', shardIndex: 3 });
    t.equal(check.state, 'CORRUPT', `byte ${at}`);
    if (at < 10_000) t.equal(check.badBlock, Math.floor(at / 1024), `names block ${Math.floor(at / 1024)}`);
  }
  writeFileSync(path, pristine);
  t.equal((await store.verify({ dataId: 'x', shardIndex: 3 })).state, 'OK');
  truncateSync(path, 5000);
  t.equal((await store.verify({ dataId: 'x', shardIndex: 3 })).state, 'CORRUPT', 'a truncated file');
  t.equal((await store.verify({ dataId: 'x', shardIndex: 4 })).state, 'MISSING');
  await t.rejects(store.openShard({ dataId: 'x', shardIndex: 4 }), { name: 'StoreError(NotFound)' });
});

t.test('the capacity limit fails the write as a full disk and leaves no file', async (t) => {
  const store = await openStore(50_000);
  const storeDir = join(root, `s${opened - 1}`);
  await t.rejects(store.write({ dataId: 'big', shardIndex: 0 }, 4096, chunksOf(randomBytes(60_000), [8192])), { name: 'StoreError(DiskFull)' });
  t.same(readdirSync(join(storeDir, 'tmp')), []);
  t.equal((await store.usage()).usedBytes, 0);
  await store.write({ dataId: 'fits', shardIndex: 0 }, 4096, chunksOf(randomBytes(30_000), [8192]));
  await t.rejects(store.write({ dataId: 'second', shardIndex: 0 }, 4096, chunksOf(randomBytes(30_000), [8192])), { name: 'StoreError(DiskFull)' });
  t.ok(await store.delete({ dataId: 'fits', shardIndex: 0 }));
  await store.write({ dataId: 'second', shardIndex: 0 }, 4096, chunksOf(randomBytes(30_000), [8192]));
  t.pass('space freed by a delete is usable again');
});

t.test('names that could escape the data directory are refused', async (t) => {
  const store = await openStore();
  for (const dataId of ['../x', 'a/b', '', 'a\\b', 'x'.repeat(201), 'a\0b', 'é']) {
    await t.rejects(store.write({ dataId, shardIndex: 0 }, 1024, chunksOf(Buffer.alloc(1), [1])), { name: 'StoreError(InvalidArgument)' }, JSON.stringify(dataId));
  }
  await t.rejects(store.write({ dataId: 'ok', shardIndex: -1 }, 1024, chunksOf(Buffer.alloc(1), [1])), { name: 'StoreError(InvalidArgument)' });
  await t.rejects(store.write({ dataId: 'ok', shardIndex: 0 }, 0, chunksOf(Buffer.alloc(1), [1])), { name: 'StoreError(InvalidArgument)' });
});

t.test('an overwrite replaces the shard and keeps usage right', async (t) => {
  const store = await openStore();
  await store.write({ dataId: 'o', shardIndex: 0 }, 512, chunksOf(randomBytes(5000), [700]));
  const second = randomBytes(3000);
  await store.write({ dataId: 'o', shardIndex: 0 }, 512, chunksOf(second, [700]));
  t.ok((await readRange(store, { dataId: 'o', shardIndex: 0 }, 0, 3000)).equals(second));
  const usage = await store.usage();
  t.equal(usage.shardCount, 1);
  t.equal(usage.usedBytes, 3000 + 6 * 8 + 24);
});

t.test('GetShard chunks are serialized exactly as protobufjs would', async (t) => {
  for (const size of [0, 1, 127, 128, 16_383, 16_384, 262_144, 1024 * 1024, 1024 * 1024 + 1]) {
    const data = randomBytes(size);
    const ours = Buffer.from(serializeChunkIntoScratch({ data }));
    t.ok(ours.equals(Buffer.from(pb.ShardChunk.encode({ data }).finish())), `${size} bytes`);
    t.ok(Buffer.from(pb.ShardChunk.decode(ours).data).equals(data));
  }
});
