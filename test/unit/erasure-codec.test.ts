// The Reed-Solomon codec against the naive reference codec, and its any-k-of-(k+m) property.
import t from 'tap';
import fc from 'fast-check';
import { availableKernels, createCodec, type ErasureCodec } from '../../src/replication/erasure/index.js';
import { createNaiveCodec } from '../lib/naive-erasure-codec.js';

/** k+m shards of `length` bytes, cut from one buffer at an odd offset so none is aligned. */
function allocateShards(count: number, length: number): Uint8Array[] {
  const backing = new Uint8Array(count * (length + 3) + 1);
  return Array.from({ length: count }, (_, i) => backing.subarray(1 + i * (length + 3), 1 + i * (length + 3) + length));
}

function encodedStripe(codec: ErasureCodec, data: Uint8Array[]): Uint8Array[] {
  const length = data[0].length;
  const shards = allocateShards(codec.dataShards + codec.parityShards, length);
  data.forEach((d, i) => shards[i].set(d));
  codec.encode(shards.slice(0, codec.dataShards), shards.slice(codec.dataShards));
  return shards;
}

/** Wipes the erased shards, rebuilds them and returns the result. */
function rebuilt(codec: ErasureCodec, original: Uint8Array[], erased: readonly number[]): Uint8Array[] {
  const shards = original.map((s) => Uint8Array.from(s));
  const present = shards.map((_, i) => !erased.includes(i));
  for (const i of erased) shards[i].fill(0xa5);
  codec.reconstruct(shards, present);
  return shards;
}

function* subsetsUpTo(n: number, maxSize: number, from = 0, chosen: number[] = []): Generator<number[]> {
  yield chosen;
  if (chosen.length === maxSize) return;
  for (let i = from; i < n; i++) yield* subsetsUpTo(n, maxSize, i + 1, [...chosen, i]);
}

const stripeArbitrary = fc
  .record({ k: fc.integer({ min: 1, max: 16 }), m: fc.integer({ min: 1, max: 16 }), length: fc.oneof(fc.constantFrom(0, 1, 63, 64, 65), fc.nat(700)) })
  .chain(({ k, m, length }) => fc.record({
    k: fc.constant(k),
    m: fc.constant(m),
    data: fc.array(fc.uint8Array({ minLength: length, maxLength: length }), { minLength: k, maxLength: k }),
    erased: fc.shuffledSubarray(Array.from({ length: k + m }, (_, i) => i), { minLength: 0, maxLength: m }),
  }));

for (const kernel of availableKernels) {
  t.test(`${kernel} kernel: encode matches the naive codec and any k shards rebuild the stripe`, async (t) => {
    fc.assert(fc.property(stripeArbitrary, ({ k, m, data, erased }) => {
      const codec = createCodec(k, m, { kernel });
      const naive = createNaiveCodec(k, m);
      const shards = encodedStripe(codec, data);
      const expected = encodedStripe(naive, data);
      t.same(shards, expected, `parity of ${k}+${m}`);
      t.same(rebuilt(codec, shards, erased), expected, `rebuild ${k}+${m} without [${erased}]`);
      t.same(rebuilt(naive, shards, erased), expected, `naive rebuild ${k}+${m} without [${erased}]`);
    }), { numRuns: 60 });
  });

  t.test(`${kernel} kernel: 16+16 stripe longer than the kernel's cache chunks`, async (t) => {
    const length = 3 * 8192 + 77;
    const data = Array.from({ length: 16 }, (_, d) => Uint8Array.from({ length }, (_, i) => (i * 13 + d * 101) % 251));
    const expected = encodedStripe(createNaiveCodec(16, 16), data);
    const codec = createCodec(16, 16, { kernel });
    t.same(encodedStripe(codec, data), expected, 'parity matches the naive codec');
    t.same(rebuilt(codec, expected, [0, 3, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 20, 25, 31]), expected, '16 lost shards rebuilt');
  });
}

t.test('every erasure pattern of up to m shards rebuilds, for small layouts', async (t) => {
  for (const [k, m] of [[1, 1], [2, 1], [3, 2], [4, 2], [5, 3], [4, 4], [8, 4]]) {
    const codec = createCodec(k, m);
    const data = Array.from({ length: k }, (_, d) => Uint8Array.from({ length: 100 }, (_, i) => (i * 31 + d * 7 + 1) & 0xff));
    const stripe = encodedStripe(codec, data);
    let patterns = 0;
    let failures = 0;
    for (const erased of subsetsUpTo(k + m, m)) {
      patterns++;
      if (!rebuilt(codec, stripe, erased).every((s, i) => Buffer.from(s).equals(stripe[i]))) failures++;
    }
    t.equal(failures, 0, `${k}+${m}: all ${patterns} erasure patterns rebuild`);
  }
});

t.test('reconstruct writes only the wanted missing shards', async (t) => {
  const codec = createCodec(4, 2);
  const data = Array.from({ length: 4 }, (_, d) => new Uint8Array(256).fill(d + 1));
  const stripe = encodedStripe(codec, data);
  const shards = stripe.map((s) => Uint8Array.from(s));
  shards[1].fill(0);
  shards[4].fill(0);
  codec.reconstruct(shards, [true, false, true, true, false, true], [4, 0]);
  t.same(shards[4], stripe[4], 'wanted parity rebuilt');
  t.same(shards[1], new Uint8Array(256), 'unwanted data shard left alone');
  t.same(shards[0], stripe[0], 'present shard untouched');
});

t.test('misuse is refused with InvalidArgument', async (t) => {
  const codec = createCodec(3, 2);
  const shards = allocateShards(5, 64);
  const invalid = (fn: () => void, what: string): void => {
    t.throws(fn, { name: 'StoreError(InvalidArgument)', kind: 'InvalidArgument' }, what);
  };
  invalid(() => createCodec(0, 2), 'no data shards');
  invalid(() => createCodec(17, 2), 'more than 16 data shards');
  invalid(() => createCodec(4, 17), 'more than 16 parity shards');
  invalid(() => createCodec(4, 2, { kernel: 'no-such-kernel' }), 'unknown kernel');
  invalid(() => codec.encode(shards.slice(0, 2), shards.slice(3)), 'too few data shards');
  invalid(() => codec.encode(shards.slice(0, 3), [shards[3], new Uint8Array(32)]), 'unequal lengths');
  invalid(() => codec.reconstruct(shards, [true, false, false, false, true]), 'fewer than k present');
  invalid(() => codec.reconstruct(shards, [true, true, true, false, true], [9]), 'wanted index out of range');
});
