// The storage node's block checksums come from the native addon now; shard files written before
// (checksummed by xxhash-wasm) must still verify, so both must agree on every input.
import fc from 'fast-check';
import t from 'tap';
import xxhash from 'xxhash-wasm';
import { blockChecksum } from '../../src/storage-node/shard-file.js';

const reference = await xxhash();

t.test('block checksums are xxHash64 (seed 0), as xxhash-wasm computes it', async (t) => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 5000 }), fc.nat(64), (bytes, start) => {
    const view = bytes.subarray(Math.min(start, bytes.length)); // unaligned starts too
    return blockChecksum(view) === reference.h64Raw(view);
  }), { numRuns: 500 });
  const block = Buffer.alloc(256 * 1024);
  for (let i = 0; i < block.length; i++) block[i] = (i * 131) >> 3;
  t.equal(blockChecksum(block), reference.h64Raw(block), 'a whole 256 KiB block');
  t.equal(blockChecksum(Buffer.alloc(0)), 0xef46db3751d8e999n, 'the empty input, from the xxHash spec');
});
