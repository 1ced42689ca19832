// The restore's codec pool gives the same results on worker threads as inline: stored blobs
// decode back to their plaintexts, and a damaged blob or a blob presented under another blob's id
// is reported as Corrupt, in both repository formats (2 binds the id into the seal).
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { StoreError } from '../../src/common/errors.js';
import { BlobCodec } from '../../src/backup/blob-codec.js';
import { CodecPool } from '../../src/backup/codec-pool.js';

const CHUNK = 64 * 1024;
const codecs = {
  plain: BlobCodec.plain(),
  'encrypted (format 1)': BlobCodec.encrypted(randomBytes(32), randomBytes(32), false),
  'encrypted (format 2)': BlobCodec.encrypted(randomBytes(32), randomBytes(32), true),
};

// Random and text chunks, and a short one.
const plains = [randomBytes(CHUNK), Buffer.from('tessera '.repeat(CHUNK / 8)), randomBytes(1000)];

/** Room for the plaintexts, in memory the threads share (as restore uses it). */
const plainsBuffer = () => Buffer.from(new SharedArrayBuffer(plains.reduce((sum, p) => sum + p.length, 0)));

for (const [name, codec] of Object.entries(codecs)) {
  for (const threads of [0, 2]) {
    t.test(`${name} codec, ${threads} threads`, async (t) => {
      const pool = CodecPool.withThreads(codec, threads);
      t.teardown(() => pool.close());
      const encoded = plains.map((plain) => codec.encode(plain, codec.idOf(plain)));
      const body = Buffer.concat(encoded.map((e) => e.stored));
      let offset = 0;
      const blobs = encoded.map((e, k) => {
        const blob = { offset, length: e.stored.length, id: codec.idOf(plains[k]!), compressed: e.compressed, rawLength: plains[k]!.length };
        offset += e.stored.length;
        return blob;
      });
      const decoded = await pool.decode(Buffer.from(body), blobs, plainsBuffer());
      t.ok(decoded.every((plain, k) => plain.equals(plains[k]!)), 'decodes to the plaintexts');

      const damaged = Buffer.from(body);
      damaged[blobs[1]!.offset + blobs[1]!.length - 20]! ^= 1;
      await t.rejects(pool.decode(damaged, blobs, plainsBuffer()), new StoreError('Corrupt', ''), 'a damaged blob is Corrupt');
      const swapped = [{ ...blobs[0]!, id: blobs[2]!.id, rawLength: blobs[0]!.rawLength }];
      await t.rejects(pool.decode(Buffer.from(body), swapped, plainsBuffer()), new StoreError('Corrupt', ''), 'a blob under another id is Corrupt');
    });
  }
}
