// The native batch decode (native/backup/decode.c through BlobCodec.decodeBlobs) against the
// encoder: random batches of blobs, compressible or not, in every repository format (plain,
// encrypted format 1, encrypted format 2 which binds the id into the seal) decode to their
// plaintexts; any changed byte, a blob cut short, a wrong id, a wrong plaintext length or another
// key is rejected as Corrupt with the message the restore reports.
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import t from 'tap';
import { StoreError } from '../../src/common/errors.js';
import { BlobCodec, packBlobs, type StoredBlob } from '../../src/backup/blob-codec.js';

const secret = randomBytes(32);
const salt = randomBytes(32);
const codecs = {
  plain: BlobCodec.plain(),
  'format 1': BlobCodec.encrypted(secret, salt, false),
  'format 2': BlobCodec.encrypted(secret, salt, true),
};
type CodecName = keyof typeof codecs;

/** Deterministic bytes: random, or words from a small vocabulary (compresses), from a seed. */
function content(seed: number, length: number, compressible: boolean): Buffer {
  const bytes = Buffer.alloc(length);
  let state = seed | 1;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return state >>> 0;
  };
  const words = ['tessera ', 'backup ', 'restore ', 'chunk ', '\0\0\0\0'];
  for (let at = 0; at < length;) {
    if (compressible) at += bytes.write(words[next() % words.length]!, at);
    else bytes[at++] = next() & 0xff;
  }
  return bytes;
}

interface BlobSpec {
  seed: number;
  length: number;
  compressible: boolean;
  gap: number;
}

const blobArbitrary: fc.Arbitrary<BlobSpec> = fc.record({
  seed: fc.integer(),
  length: fc.oneof(fc.integer({ min: 0, max: 4096 }), fc.integer({ min: 64 * 1024, max: 256 * 1024 })),
  compressible: fc.boolean(),
  gap: fc.integer({ min: 0, max: 64 }),
});

interface Batch {
  body: Buffer;
  blobs: StoredBlob[];
  ids: Buffer;
  plains: Buffer[];
}

/** The blobs encoded, back to back with gaps in one body (as in a pack). */
function encodeBatch(codec: BlobCodec, specs: BlobSpec[]): Batch {
  const plains = specs.map((s) => content(s.seed, s.length, s.compressible));
  const ids = plains.map((p) => codec.idOf(p));
  const parts: Buffer[] = [];
  const blobs: StoredBlob[] = [];
  let offset = 0;
  plains.forEach((plain, i) => {
    const { stored, compressed } = codec.encode(plain, ids[i]!);
    parts.push(Buffer.alloc(specs[i]!.gap, 0xee), stored);
    offset += specs[i]!.gap;
    blobs.push({ offset, length: stored.length, compressed, rawLength: plain.length });
    offset += stored.length;
  });
  return { body: Buffer.concat(parts), blobs, ids: Buffer.concat(ids), plains };
}

function decodeBatch(codec: BlobCodec, batch: Batch, blobs = batch.blobs, body = batch.body, ids = batch.ids): Buffer {
  const out = Buffer.alloc(blobs.reduce((sum, b) => sum + b.rawLength, 0));
  codec.decodeBlobs(body, packBlobs(blobs), ids, out);
  return out;
}

/** Whether `decode` throws Corrupt with a message like `message`. */
function corruptWith(message: RegExp, decode: () => unknown): boolean {
  try {
    decode();
    return false;
  } catch (err) {
    return err instanceof StoreError && err.kind === 'Corrupt' && message.test(err.message);
  }
}

const AUTHENTICATION = /failed authentication/;
const NOT_ITS_HASH = /does not match its hash/;
/** What a damaged blob of each format is reported as: a seal fails first; a plain one fails its hash or zstd. */
const damaged: Record<CodecName, RegExp> = { plain: /does not (match its hash|decompress)/, 'format 1': AUTHENTICATION, 'format 2': AUTHENTICATION };

const batchArbitrary = fc.array(blobArbitrary, { minLength: 1, maxLength: 6 });

for (const name of Object.keys(codecs) as CodecName[]) {
  const codec = codecs[name];
  t.test(`${name}: batches decode to their plaintexts`, (t) => {
    fc.assert(fc.property(batchArbitrary, (specs) => {
      const batch = encodeBatch(codec, specs);
      return decodeBatch(codec, batch).equals(Buffer.concat(batch.plains));
    }), { numRuns: 60 });
    t.end();
  });

  // A sealed blob changed anywhere fails its seal. A plain one fails its hash or zstd, unless the
  // change left the frame meaning the same (a header field zstd does not need): never wrong bytes.
  t.test(`${name}: a changed byte of a stored blob is Corrupt${name === 'plain' ? ' or harmless' : ''}`, (t) => {
    fc.assert(fc.property(batchArbitrary, fc.nat(), fc.nat(), fc.integer({ min: 1, max: 255 }), (specs, pick, position, flip) => {
      const batch = encodeBatch(codec, specs);
      const blob = batch.blobs[pick % batch.blobs.length]!;
      fc.pre(blob.length > 0);
      const body = Buffer.from(batch.body);
      body[blob.offset + (position % blob.length)]! ^= flip;
      let out: Buffer | undefined;
      return corruptWith(damaged[name], () => (out = decodeBatch(codec, batch, batch.blobs, body))) || (name === 'plain' && !!out?.equals(Buffer.concat(batch.plains)));
    }), { numRuns: 60 });
    t.end();
  });

  t.test(`${name}: a blob cut short or given another length is Corrupt`, (t) => {
    fc.assert(fc.property(batchArbitrary, fc.nat(), fc.integer({ min: 1, max: 64 }), (specs, pick, cut) => {
      const batch = encodeBatch(codec, specs);
      const i = pick % batch.blobs.length;
      const blob = batch.blobs[i]!;
      const withBlob = (changed: StoredBlob) => batch.blobs.map((b, k) => (k === i ? changed : b));
      const wrongLength = /does not (match its hash|decompress)/;
      return (blob.length < cut || corruptWith(name === 'plain' ? damaged.plain : /failed authentication|too short/, () => decodeBatch(codec, batch, withBlob({ ...blob, length: blob.length - cut })))) &&
        corruptWith(wrongLength, () => decodeBatch(codec, batch, withBlob({ ...blob, rawLength: blob.rawLength + cut }))) &&
        (blob.rawLength < cut || corruptWith(wrongLength, () => decodeBatch(codec, batch, withBlob({ ...blob, rawLength: blob.rawLength - cut }))));
    }), { numRuns: 40 });
    t.end();
  });
}

t.test('a blob presented under another id is Corrupt in every format', (t) => {
  for (const name of Object.keys(codecs) as CodecName[]) {
    const codec = codecs[name];
    const batch = encodeBatch(codec, [{ seed: 1, length: 65536, compressible: true, gap: 0 }, { seed: 2, length: 65536, compressible: true, gap: 3 }]);
    const swapped = Buffer.concat([batch.ids.subarray(32), batch.ids.subarray(0, 32)]);
    // Format 2's seal binds the id; format 1 and plain blobs are re-hashed.
    t.ok(corruptWith(name === 'format 2' ? AUTHENTICATION : NOT_ITS_HASH, () => decodeBatch(codec, batch, batch.blobs, batch.body, swapped)), name);
  }
  t.end();
});

t.test('an empty blob decodes; cut below the size of a seal it is too short', (t) => {
  for (const name of Object.keys(codecs) as CodecName[]) {
    const codec = codecs[name];
    const batch = encodeBatch(codec, [{ seed: 0, length: 0, compressible: false, gap: 0 }]);
    t.equal(decodeBatch(codec, batch).length, 0, `${name}: decodes`);
    const [blob] = batch.blobs;
    if (codec.encrypted) t.ok(corruptWith(/too short/, () => decodeBatch(codec, batch, [{ ...blob!, length: blob!.length - 1 }])), `${name}: cut`);
  }
  t.end();
});

t.test('blobs sealed under another key fail authentication', (t) => {
  const batch = encodeBatch(codecs['format 2'], [{ seed: 3, length: 100_000, compressible: false, gap: 0 }]);
  t.ok(corruptWith(AUTHENTICATION, () => decodeBatch(BlobCodec.encrypted(randomBytes(32), salt, true), batch)));
  t.end();
});

t.test('a format 2 blob re-hashed on request (verify) still decodes; one decoded alone too', (t) => {
  const codec = codecs['format 2'];
  const batch = encodeBatch(codec, [{ seed: 4, length: 70_000, compressible: true, gap: 0 }]);
  const [blob] = batch.blobs;
  const out = Buffer.alloc(blob!.rawLength);
  t.ok(codec.decodeInto(batch.body, batch.ids, blob!.compressed, out, true).equals(batch.plains[0]!));
  t.ok(codec.decode(batch.body, batch.ids, blob!.compressed, blob!.rawLength).equals(batch.plains[0]!));
  t.end();
});

t.test('blobs beyond the data or an output too small are refused, not read', (t) => {
  const codec = codecs['format 2'];
  const batch = encodeBatch(codec, [{ seed: 5, length: 1000, compressible: true, gap: 0 }]);
  const [blob] = batch.blobs;
  t.throws(() => codec.decodeBlobs(batch.body, packBlobs([{ ...blob!, offset: 1 }]), batch.ids, Buffer.alloc(1000)), RangeError);
  t.throws(() => codec.decodeBlobs(batch.body, packBlobs([blob!]), batch.ids, Buffer.alloc(999)), RangeError);
  t.throws(() => codec.decodeBlobs(batch.body, packBlobs([blob!]), batch.ids.subarray(0, 31), Buffer.alloc(1000)), RangeError);
  t.end();
});
