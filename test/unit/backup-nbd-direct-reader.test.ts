// The NBD client's reader, fed as node feeds it (onread: a buffer asked for before each socket
// read, then the count the kernel put there), with the bytes cut at every possible place: a
// stream of headers and payloads parses to the same messages however the reads split it, and
// payloads long enough are read straight into the caller's buffer. The client over real sockets
// is tested in backup-nbd.test.ts and, against qemu-nbd, in the integration tests.
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import t from 'tap';
import { DirectReader } from '../../src/backup/nbd/direct-reader.js';

/** Feeds `stream` to the reader in reads of the given sizes (then whatever is left); returns how many bytes went straight into payloads. */
function feed(reader: DirectReader, stream: Buffer, sizes: number[]): number {
  let at = 0;
  let direct = 0;
  const buffer = reader.onread.buffer as () => Uint8Array;
  const callback = reader.onread.callback;
  let stage: ArrayBufferLike | undefined;
  for (let i = 0; at < stream.length; i++) {
    const target = buffer();
    const n = Math.min(target.length, stream.length - at, sizes[i % Math.max(1, sizes.length)] ?? Infinity);
    stream.copy(target, 0, at, at + n);
    stage ??= target.buffer; // the first read waits for a header, so it goes to the staging buffer
    if (target.buffer !== stage) direct += n;
    at += n;
    callback(n, target as Buffer);
  }
  return direct;
}

/** Messages: a 4-byte length header, then that many payload bytes. */
function parseAll(reader: DirectReader, count: number, done: (payloads: Buffer[]) => void): void {
  const payloads: Buffer[] = [];
  const next = (): void => {
    if (payloads.length === count) return done(payloads);
    reader.expect(4, (head) => {
      const payload = Buffer.alloc(head.readUInt32BE(0));
      reader.expectInto(payload, () => { payloads.push(payload); next(); });
    });
  };
  next();
}

t.test('messages parse the same however the socket reads split the stream', async (t) => {
  await fc.assert(fc.property(
    fc.array(fc.integer({ min: 0, max: 200_000 }), { minLength: 1, maxLength: 12 }),
    fc.array(fc.integer({ min: 1, max: 100_000 }), { maxLength: 30 }),
    (lengths, sizes) => {
      const payloads = lengths.map((n) => randomBytes(n));
      const stream = Buffer.concat(payloads.flatMap((p) => { const head = Buffer.alloc(4); head.writeUInt32BE(p.length); return [head, p]; }));
      let parsed: Buffer[] | undefined;
      const reader = new DirectReader((err) => { throw err; });
      parseAll(reader, payloads.length, (all) => { parsed = all; });
      feed(reader, stream, sizes);
      return parsed !== undefined && parsed.length === payloads.length && parsed.every((p, i) => p.equals(payloads[i]!));
    },
  ), { numRuns: 200 });
});

t.test('a long payload goes straight into its buffer', async (t) => {
  const payload = randomBytes(2 * 1024 * 1024);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(payload.length);
  const reader = new DirectReader((err) => { throw err; });
  let parsed: Buffer[] = [];
  parseAll(reader, 1, (all) => { parsed = all; });
  const direct = feed(reader, Buffer.concat([head, payload]), [64 * 1024]);
  t.ok(parsed[0]?.equals(payload));
  t.ok(direct >= payload.length - 64 * 1024, `${direct} of ${payload.length} bytes read in place`);
});

t.test('read() waits for its bytes; a failure rejects it and a parser that throws fails the reader', async (t) => {
  const failures: Error[] = [];
  const reader = new DirectReader((err) => failures.push(err));
  const reading = reader.read(6);
  feed(reader, Buffer.from('abc'), []);
  feed(reader, Buffer.from('def'), []);
  t.equal((await reading).toString(), 'abcdef');

  const waiting = reader.read(10);
  reader.fail(new Error('connection closed'));
  await t.rejects(waiting, /connection closed/);
  await t.rejects(reader.read(1), /connection closed/);
  t.equal(failures.length, 1, 'the owner hears of it once');

  const strict = new DirectReader((err) => failures.push(err));
  strict.expect(2, () => { throw new Error('bad magic'); });
  feed(strict, Buffer.from('xx'), []);
  t.match(failures[1]?.message, /bad magic/);
});
