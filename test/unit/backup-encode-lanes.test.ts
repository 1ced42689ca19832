// The codec pool gives the same results on worker threads as inline: chunk ids (zero chunks as
// ZERO_ID), encoded blobs that decode back (written into the caller's shared buffer unless well
// compressed), and a damaged blob or a blob presented under another blob's id reported as
// Corrupt, in both repository formats (2 binds the id into the seal).
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { StoreError } from '../../src/common/errors.js';
import { BlobCodec } from '../../src/backup/blob-codec.js';
import { CodecPool } from '../../src/backup/codec-pool.js';
import { ID_BYTES, ZERO_ID } from '../../src/backup/format.js';

const CHUNK = 64 * 1024;
const codecs = {
  plain: BlobCodec.plain(),
  'encrypted (format 1)': BlobCodec.encrypted(randomBytes(32), randomBytes(32), false),
  'encrypted (format 2)': BlobCodec.encrypted(randomBytes(32), randomBytes(32), true),
};

// Random, zero and text chunks, and a short last chunk.
const data = Buffer.concat([randomBytes(CHUNK), Buffer.alloc(CHUNK), Buffer.from('tessera '.repeat(CHUNK / 8)), randomBytes(1000)]);

/** Room for the plaintexts, in memory the threads share (as restore uses it). */
const plainsBuffer = () => Buffer.from(new SharedArrayBuffer(data.length));

for (const [name, codec] of Object.entries(codecs)) {
  /** Room for `chunks` stored forms, in memory the threads share (as backup uses it). */
  const encodeRoom = (chunks: number) => Buffer.from(new SharedArrayBuffer(chunks * (CHUNK + codec.overhead)));
  for (const threads of [0, 2]) {
    t.test(`${name} codec, ${threads} threads`, async (t) => {
      const pool = CodecPool.withThreads(codec, threads);
      t.teardown(() => pool.close());
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
      const body = Buffer.concat(encoded.map((e) => e.stored));
      let offset = 0;
      const blobs = encoded.map((e, k) => {
        const blob = { offset, length: e.stored.length, id: codec.idOf(plains[k]!), compressed: e.compressed, rawLength: plains[k]!.length };
        offset += e.stored.length;
        return blob;
      });
      const decoded = await pool.decode(Buffer.from(body), blobs, plainsBuffer());
      t.ok(decoded.every((plain, k) => plain.equals(plains[k]!)), 'decodes to the plaintexts');

      // Stored forms stay in the caller's shared buffer unless they fill less than half of it.
      const random = await pool.encode(Buffer.from(data), [pieces[0]!], encodeRoom(1));
      t.ok(random.inOut && random.encoded[0]!.stored.buffer instanceof SharedArrayBuffer, 'incompressible: in the given buffer');
      const text = await pool.encode(Buffer.from(data), [pieces[1]!], encodeRoom(1));
      t.ok(!text.inOut && !(text.encoded[0]!.stored.buffer instanceof SharedArrayBuffer), 'well compressed: in a buffer of its own');
      t.ok(codec.decode(text.encoded[0]!.stored, pieces[1]!.id, true, CHUNK).equals(plains[1]!), 'which decodes');

      // Naming and encoding in one trip: the same ids, nothing stored for the zero chunk.
      const both = await pool.nameAndEncode(Buffer.from(data), CHUNK, encodeRoom(4));
      t.ok(both.ids.equals(ids) && both.data.equals(data), 'the same ids, and the data comes back');
      t.equal(both.encoded[1], undefined, 'nothing stored for the zero chunk');
      for (const [k, i] of [0, 2, 3].entries()) {
        const blob = both.encoded[i]!;
        t.ok(codec.decode(Buffer.from(blob.stored), pieces[k]!.id, blob.compressed, plains[k]!.length).equals(plains[k]!), `chunk ${i} decodes`);
      }

      const damaged = Buffer.from(body);
      damaged[blobs[1]!.offset + blobs[1]!.length - 20]! ^= 1;
      await t.rejects(pool.decode(damaged, blobs, plainsBuffer()), new StoreError('Corrupt', ''), 'a damaged blob is Corrupt');
      const swapped = [{ ...blobs[0]!, id: blobs[1]!.id }]; // same length: only the id tells them apart
      await t.rejects(pool.decode(Buffer.from(body), swapped, plainsBuffer()), new StoreError('Corrupt', ''), 'a blob under another id is Corrupt');
    });
  }
}
