// The backup's encode lanes give the same results on libuv's thread pool as inline: chunk ids
// (zero chunks as ZERO_ID), encoded blobs that decode back (written into the caller's buffer
// unless well compressed), in every repository format; many batches at once, more than there are
// lanes, each get their own results.
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { BlobCodec } from '../../src/backup/blob-codec.js';
import { EncodeLanes } from '../../src/backup/encode-lanes.js';
import { ID_BYTES, ZERO_ID } from '../../src/backup/format.js';

const CHUNK = 64 * 1024;
const codecs = {
  plain: BlobCodec.plain(),
  'encrypted (format 1)': BlobCodec.encrypted(randomBytes(32), randomBytes(32), false),
  'encrypted (format 2)': BlobCodec.encrypted(randomBytes(32), randomBytes(32), true),
};

// Random, zero and text chunks, and a short last chunk.
const data = Buffer.concat([randomBytes(CHUNK), Buffer.alloc(CHUNK), Buffer.from('tessera '.repeat(CHUNK / 8)), randomBytes(1000)]);

for (const [name, codec] of Object.entries(codecs)) {
  /** Room for `chunks` stored forms. */
  const encodeRoom = (chunks: number) => Buffer.alloc(chunks * (CHUNK + codec.overhead));
  for (const lanes of [0, 2]) {
    t.test(`${name} codec, ${lanes} lanes`, async (t) => {
      const pool = new EncodeLanes(codec, lanes);
      const { ids, data: back } = await pool.nameChunks(Buffer.from(data), CHUNK);
      t.ok(back.equals(data), 'the data comes back');
      t.equal(ids.length, 4 * ID_BYTES);
      const idAt = (i: number) => ids.subarray(i * ID_BYTES, (i + 1) * ID_BYTES);
      t.ok(idAt(1).equals(ZERO_ID), 'the zero chunk is named ZERO_ID');
      for (const i of [0, 2, 3]) t.ok(idAt(i).equals(codec.idOf(data.subarray(i * CHUNK, (i + 1) * CHUNK))), `chunk ${i} named by its hash`);

      const pieces = [0, 2, 3].map((i) => ({ offset: i * CHUNK, length: Math.min(CHUNK, data.length - i * CHUNK), id: idAt(i) }));
      const plains = pieces.map((p) => data.subarray(p.offset, p.offset + p.length));
      const { encoded } = await pool.encode(Buffer.from(data), pieces, encodeRoom(pieces.length));
      t.same(encoded.map((e) => e.compressed), [false, true, false], 'text compresses, random data does not');
      t.ok(encoded.every((e, k) => codec.decode(e.stored, pieces[k]!.id, e.compressed, plains[k]!.length).equals(plains[k]!)), 'each decodes to its plaintext');

      // Stored forms stay in the caller's buffer unless they fill less than half of it.
      const room = encodeRoom(1);
      const random = await pool.encode(Buffer.from(data), [pieces[0]!], room);
      t.ok(random.inOut && random.encoded[0]!.stored.buffer === room.buffer, 'incompressible: in the given buffer');
      const text = await pool.encode(Buffer.from(data), [pieces[1]!], room);
      t.ok(!text.inOut && text.encoded[0]!.stored.buffer !== room.buffer, 'well compressed: in a buffer of its own');
      t.ok(codec.decode(text.encoded[0]!.stored, pieces[1]!.id, true, CHUNK).equals(plains[1]!), 'which decodes');

      // Naming and encoding in one trip: the same ids, nothing stored for the zero chunk.
      const both = await pool.nameAndEncode(Buffer.from(data), CHUNK, encodeRoom(4));
      t.ok(both.ids.equals(ids) && both.data.equals(data), 'the same ids, and the data comes back');
      t.equal(both.encoded[1], undefined, 'nothing stored for the zero chunk');
      for (const [k, i] of [0, 2, 3].entries()) {
        const blob = both.encoded[i]!;
        t.ok(codec.decode(Buffer.from(blob.stored), pieces[k]!.id, blob.compressed, plains[k]!.length).equals(plains[k]!), `chunk ${i} decodes`);
      }

      // More batches at once than lanes: each waits for a lane and gets its own results.
      const reads = Array.from({ length: 9 }, (_, k) => Buffer.concat([randomBytes(CHUNK), Buffer.from(`read ${k} `.repeat(CHUNK / 4)).subarray(0, CHUNK)]));
      const results = await Promise.all(reads.map((read) => pool.nameAndEncode(read, CHUNK, encodeRoom(2))));
      t.ok(results.every((r, k) => r.encoded.every((blob, i) => {
        const plain = reads[k]!.subarray(i * CHUNK, (i + 1) * CHUNK);
        return r.ids.subarray(i * ID_BYTES, (i + 1) * ID_BYTES).equals(codec.idOf(plain)) && codec.decode(Buffer.from(blob!.stored), codec.idOf(plain), blob!.compressed, CHUNK).equals(plain);
      })), 'concurrent batches: every chunk named and encoded');
    });
  }
}
