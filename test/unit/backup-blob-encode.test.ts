// The native batch naming and encoding (native/backup/encode.c through BlobCodec and
// EncodeLanes) against Node's own crypto and zstd-napi, the way blobs were written before it and
// any reader of the format would open them: every chunk is named by HMAC-SHA256 (SHA-256 when plain) or ZERO_ID when all
// zero; every stored blob opens with AES-256-GCM under its nonce (binding its id in format 2),
// decompresses when marked compressed, and gives back its plaintext; compressible blobs are kept
// compressed, random ones not; no two blobs share a nonce.
import { createDecipheriv, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import t from 'tap';
import { decompress } from 'zstd-napi';
import { BlobCodec } from '../../src/backup/blob-codec.js';
import { ID_BYTES, ZERO_ID } from '../../src/backup/chunk-id.js';
import { EncodeLanes } from '../../src/backup/encode-lanes.js';

const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const codecs = {
  plain: BlobCodec.plain(),
  'format 1': BlobCodec.encrypted(randomBytes(32), randomBytes(32), false),
  'format 2': BlobCodec.encrypted(randomBytes(32), randomBytes(32), true),
};

/** A stored blob opened and decompressed by Node's crypto and zstd-napi. */
function openWithNode(codec: BlobCodec, stored: Buffer, id: Uint8Array, compressed: boolean): Buffer {
  let payload = stored;
  if (codec.keys) {
    const decipher = createDecipheriv('aes-256-gcm', codec.keys.enc, stored.subarray(0, NONCE_BYTES));
    if (codec.keys.idBound) decipher.setAAD(id);
    decipher.setAuthTag(stored.subarray(stored.length - TAG_BYTES));
    payload = Buffer.concat([decipher.update(stored.subarray(NONCE_BYTES, stored.length - TAG_BYTES)), decipher.final()]);
  }
  return compressed ? decompress(payload) : payload;
}

/** Random, zero or text bytes. */
const piece = fc.record({
  kind: fc.constantFrom('random', 'zero', 'text'),
  length: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 1, max: 3 }).map((k) => k * 64 * 1024 - 7)),
}).map(({ kind, length }) => (kind === 'random' ? randomBytes(length) : kind === 'zero' ? Buffer.alloc(length) : Buffer.from('tessera backup '.repeat(length).slice(0, length))));

for (const [name, codec] of Object.entries(codecs)) {
  t.test(`${name}: each chunk is named by its hash, an all-zero one ZERO_ID`, async (t) => {
    const lanes = new EncodeLanes(codec, 0);
    await fc.assert(fc.asyncProperty(fc.array(piece, { minLength: 1, maxLength: 5 }), fc.integer({ min: 1, max: 70_000 }), async (parts, chunkSize) => {
      const data = Buffer.concat(parts);
      fc.pre(data.length > 0);
      const { ids } = await lanes.nameChunks(data, chunkSize);
      return ids.length === Math.ceil(data.length / chunkSize) * ID_BYTES && Array.from({ length: ids.length / ID_BYTES }, (_, i) => {
        const chunk = data.subarray(i * chunkSize, (i + 1) * chunkSize);
        const expected = chunk.every((b) => b === 0) ? ZERO_ID : codec.idOf(chunk);
        return ids.subarray(i * ID_BYTES, (i + 1) * ID_BYTES).equals(expected);
      }).every(Boolean);
    }), { numRuns: 40 });
  });

  t.test(`${name}: stored blobs open with Node's crypto and zstd to their plaintexts`, (t) => {
    fc.assert(fc.property(fc.array(piece, { minLength: 1, maxLength: 6 }), fc.integer({ min: 0, max: 9 }), (plains, gap) => {
      // The pieces lie in one buffer with gaps between them, as chunks of a read do.
      const data = Buffer.concat(plains.flatMap((p) => [Buffer.alloc(gap, 0xee), p]));
      const pieces = new Float64Array(plains.length * 2);
      plains.reduce((at, p, i) => (pieces.set([at + gap, p.length], 2 * i), at + gap + p.length), 0);
      const ids = Buffer.concat(plains.map((p) => codec.idOf(p)));
      const out = Buffer.alloc(plains.reduce((sum, p) => sum + p.length + codec.overhead, 0));
      const { length, stored } = codec.encodeBlobs(data, pieces, ids, out);
      let at = 0;
      const opened = plains.map((plain, i) => {
        const blob = out.subarray(at, at + stored[2 * i]!);
        at += blob.length;
        return openWithNode(codec, blob, ids.subarray(i * ID_BYTES, (i + 1) * ID_BYTES), stored[2 * i + 1] === 1).equals(plain);
      });
      return at === length && opened.every(Boolean);
    }), { numRuns: 60 });
    t.end();
  });

  t.test(`${name}: text is kept compressed, random bytes are not`, (t) => {
    const text = Buffer.from('tessera backup '.repeat(5000));
    const random = randomBytes(65536);
    t.ok(codec.encode(text, codec.idOf(text)).compressed, 'text compressed');
    const stored = codec.encode(random, codec.idOf(random));
    t.notOk(stored.compressed, 'random bytes stored as they are');
    t.equal(stored.stored.length, random.length + codec.overhead);
    t.end();
  });

  t.test(`${name}: an output buffer too small is refused, not overrun`, (t) => {
    const plain = randomBytes(1000);
    t.throws(() => codec.encodeBlobs(plain, new Float64Array([0, 1000]), codec.idOf(plain), Buffer.alloc(999 + codec.overhead)), RangeError);
    t.throws(() => codec.encodeBlobs(plain, new Float64Array([1, 1000]), codec.idOf(plain), Buffer.alloc(2000)), RangeError);
    t.end();
  });
}

t.test('every blob gets a nonce of its own', (t) => {
  const codec = codecs['format 2'];
  const plain = Buffer.alloc(100, 1);
  const count = 1000; // beyond one draw of the encoder's nonce pool
  const out = Buffer.alloc(count * (plain.length + codec.overhead));
  const pieces = new Float64Array(Array.from({ length: count }, () => [0, plain.length]).flat());
  const { stored } = codec.encodeBlobs(plain, pieces, Buffer.concat(Array.from({ length: count }, () => codec.idOf(plain))), out);
  const nonces = new Set<string>();
  for (let i = 0, at = 0; i < count; at += stored[2 * i]!, i++) nonces.add(out.subarray(at, at + NONCE_BYTES).toString('hex'));
  t.equal(nonces.size, count);
  t.end();
});
