// Deterministic bench content: a reader with only the seed and key accepts exactly what was
// written and rejects anything else, for whole objects, ranges and any chunking.
import t from 'tap';
import fc from 'fast-check';
import { ContentGenerator } from '../../bench/lib/content.js';
import { parseDuration, parseSize, parseSizeSpec } from '../../bench/lib/units.js';

const generator = new ContentGenerator('test-seed');

function rechunk(data: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let last = 0;
  for (const p of [...points, data.length]) { chunks.push(data.subarray(last, p)); last = p; }
  return chunks;
}

t.test('what was written verifies, however the reader receives it', async (t) => {
  fc.assert(fc.property(fc.string(), fc.integer({ min: 0, max: 600_000 }), fc.array(fc.nat()), (key, size, cuts) => {
    const body = Buffer.concat([...generator.chunks(key, 0, size)]);
    const verifier = generator.verifier(key, 0, size);
    rechunk(body, cuts).forEach((c) => verifier.update(c));
    return body.length === size && verifier.problem() === undefined;
  }), { numRuns: 50 });
  t.pass();
});

t.test('a range verifies against the same bytes of the whole object', async (t) => {
  const size = 9 * 1024 * 1024 + 17; // longer than the pattern, so the range may wrap around it
  const whole = Buffer.concat([...generator.chunks('k', 0, size)]);
  fc.assert(fc.property(fc.nat({ max: size - 1 }), fc.nat({ max: 2_000_000 }), (offset, wanted) => {
    const length = Math.min(wanted, size - offset);
    const verifier = generator.verifier('k', offset, length);
    verifier.update(whole.subarray(offset, offset + length));
    return verifier.problem() === undefined && generator.bytes('k', offset, length).equals(whole.subarray(offset, offset + length));
  }), { numRuns: 100 });
  t.pass();
});

t.test('wrong size, a flipped byte, another key or another seed is caught', async (t) => {
  const body = generator.bytes('a', 0, 100_000);
  const check = (data: Buffer, key = 'a', g = generator) => {
    const v = g.verifier(key, 0, 100_000);
    v.update(data);
    return v.problem();
  };
  t.match(check(body.subarray(0, 99_999)), /size 99999, expected 100000/);
  t.match(check(Buffer.concat([body, Buffer.from('x')])), /size 100001/);
  const flipped = Buffer.from(body);
  flipped[77_777] ^= 1;
  t.match(check(flipped), /content differs/);
  t.match(check(body, 'b'), /content differs/);
  t.match(check(body, 'a', new ContentGenerator('other-seed')), /content differs/);
  t.equal(check(body), undefined);
});

t.test('sizes and durations parse as the flags are written', async (t) => {
  t.equal(parseSize('4KiB'), 4096);
  t.equal(parseSize('1MiB'), 1024 * 1024);
  t.equal(parseSize('64m'), 64 * 1024 * 1024);
  t.equal(parseSize('2GB'), 2e9);
  t.equal(parseSize('4096'), 4096);
  t.same(parseSizeSpec('1KiB-1MiB'), { min: 1024, max: 1024 * 1024 });
  t.equal(parseDuration('10s'), 10_000);
  t.equal(parseDuration('500ms'), 500);
  t.equal(parseDuration('2m'), 120_000);
  t.throws(() => parseSize('lots'));
});
