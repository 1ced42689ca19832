// The addon's MD5 thread (native/erasure/md5_hasher.c) hashes many bodies at once in lanes: every
// body must still get exactly node:crypto's MD5, whatever its length, however it is cut into
// updates and whoever else is hashing meanwhile, in every mode this CPU runs.
import t from 'tap';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { nativeAddon } from '../../src/common/native-addon.js';
import { ThreadedMd5 } from '../../src/replication/md5-thread.js';

interface Body {
  bytes: Uint8Array;
  /** Lengths of the updates the body is fed in, in order; they sum to its length. */
  updates: number[];
}

/** Deterministic bytes (cheaper to generate and shrink than arbitrary arrays), at an odd offset. */
function bodyBytes(length: number, seed: number, offset: number): Uint8Array {
  const backing = Buffer.allocUnsafe(length + offset);
  let x = seed | 1;
  for (let i = 0; i < backing.length; i++) {
    x ^= x << 13, x ^= x >>> 17, x ^= x << 5;
    backing[i] = x & 0xff;
  }
  return backing.subarray(offset);
}

/** Lengths at MD5's block edges (padding fits in the last block up to 55 bytes), and beyond the thread's 16 KiB slices. */
const lengthArbitrary = fc.oneof(
  fc.constantFrom(0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129),
  fc.nat(3000),
  fc.integer({ min: 16 * 1024 - 70, max: 40 * 1024 }),
);

const bodyArbitrary: fc.Arbitrary<Body> = fc
  .record({ length: lengthArbitrary, seed: fc.integer(), offset: fc.nat(7) })
  .chain(({ length, seed, offset }) => fc
    .uniqueArray(fc.integer({ min: 1, max: Math.max(1, length - 1) }), { maxLength: Math.min(6, length) })
    .map((cuts) => {
      const points = [0, ...cuts.filter((c) => c < length).sort((a, b) => a - b), length];
      return { bytes: bodyBytes(length, seed, offset), updates: points.slice(1).map((p, i) => p - points[i]!) };
    }));

/** Feeds a body's updates all at once (queued in the addon) or one after another. */
async function threadedMd5(body: Body, queued: boolean): Promise<string> {
  const md5 = new ThreadedMd5();
  let at = 0;
  for (const length of body.updates.length ? body.updates : [0]) {
    const update = md5.update(body.bytes.subarray(at, at + length));
    at += length;
    if (!queued) await update;
  }
  return md5.digest();
}

const md5Hex = (bytes: Uint8Array) => createHash('md5').update(bytes).digest('hex');

for (const mode of nativeAddon.md5Modes()) {
  t.test(`${mode}: concurrent bodies cut at random points hash as node:crypto does`, async (t) => {
    nativeAddon.md5SetMode(mode);
    await fc.assert(fc.asyncProperty(fc.array(bodyArbitrary, { minLength: 1, maxLength: 20 }), fc.boolean(), async (bodies, queued) => {
      const digests = await Promise.all(bodies.map((body) => threadedMd5(body, queued)));
      t.same(digests, bodies.map((body) => md5Hex(body.bytes)));
    }), { numRuns: 80 });
  });

  t.test(`${mode}: a lone 3 MiB body in stripe-sized updates`, async (t) => {
    nativeAddon.md5SetMode(mode);
    const bytes = bodyBytes(3 * 2 ** 20 + 5, 7, 3);
    const stripe = 2 ** 20;
    const updates = [stripe, stripe, stripe, 5];
    t.equal(await threadedMd5({ bytes, updates }, false), md5Hex(bytes));
  });
}

t.test('a state\'s queued updates finish in order, and its digest waits for them', async (t) => {
  nativeAddon.md5SetMode('auto');
  const state = nativeAddon.md5Start();
  const bytes = bodyBytes(200_000, 11, 0);
  const finished: number[] = [];
  const updates = [0, 1, 2, 3].map((i) => new Promise<void>((resolve) => nativeAddon.md5Update(state, bytes.subarray(i * 50_000, (i + 1) * 50_000), () => {
    finished.push(i);
    resolve();
  })));
  t.throws(() => nativeAddon.md5Digest(state), /not done/);
  await Promise.all(updates);
  t.same(finished, [0, 1, 2, 3]);
  t.equal(nativeAddon.md5Digest(state).toString('hex'), md5Hex(bytes));
});

t.test('a lone body never waits for company; bodies mid-upload with idle gaps still hash right', async (t) => {
  nativeAddon.md5SetMode('auto');
  const stripe = 2 ** 16;
  const lone = { bytes: bodyBytes(8 * stripe + 3, 5, 1), updates: [...Array(8).fill(stripe), 3] };
  const wait = nativeAddon.md5CompanyWaits();
  t.equal(await threadedMd5(lone, false), md5Hex(lone.bytes));
  t.equal(nativeAddon.md5CompanyWaits(), wait, 'one body alone is hashed at once');

  // The idle body is mid-upload (started, not digested) while the busy one sends its updates
  // alone: the MD5 thread holds them back for company, and both still hash right.
  const idle = new ThreadedMd5();
  const idleBytes = bodyBytes(3 * stripe, 9, 2);
  await idle.update(idleBytes.subarray(0, stripe));
  t.equal(await threadedMd5(lone, false), md5Hex(lone.bytes));
  t.ok(nativeAddon.md5CompanyWaits() > wait, 'a lone update waits while another body is mid-upload');
  await new Promise((resolve) => setTimeout(resolve, 20));
  await Promise.all([idle.update(idleBytes.subarray(stripe, 2 * stripe)), threadedMd5(lone, true)]);
  await idle.update(idleBytes.subarray(2 * stripe));
  t.equal(await idle.digest(), md5Hex(idleBytes));

  const afterDigest = nativeAddon.md5CompanyWaits();
  t.equal(await threadedMd5(lone, false), md5Hex(lone.bytes));
  t.equal(nativeAddon.md5CompanyWaits(), afterDigest, 'a digested body no longer holds others back');
});

t.test('md5SetMode takes only the modes md5Modes lists', async (t) => {
  t.ok(nativeAddon.md5Modes().includes('auto'));
  t.throws(() => nativeAddon.md5SetMode('fastest'), /md5Modes/);
  nativeAddon.md5SetMode('auto');
});
