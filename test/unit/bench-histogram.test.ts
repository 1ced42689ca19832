// The bench's latency histogram: percentiles within its stated precision, exact where it claims,
// and merging worker histograms equals recording everything in one.
import t from 'tap';
import fc from 'fast-check';
import { Histogram } from '../../bench/lib/histogram.js';

function exactPercentile(sorted: number[], p: number): number {
  return sorted[Math.max(1, Math.ceil((p / 100) * sorted.length)) - 1]!;
}

const values = fc.array(fc.oneof(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 2 ** 32 - 1 })), { minLength: 1, maxLength: 500 });
const percentile = fc.double({ min: 0.1, max: 100, noNaN: true });

t.test('percentiles are within 1/64 of the exact nearest-rank value, never below it', async (t) => {
  fc.assert(fc.property(values, percentile, (recorded, p) => {
    const h = new Histogram();
    recorded.forEach((v) => h.record(v));
    const exact = exactPercentile([...recorded].sort((a, b) => a - b), p);
    const reported = h.percentile(p);
    return reported >= exact && reported <= exact + exact / 64;
  }), { numRuns: 500 });
  t.pass();
});

t.test('small values, min, max, count and mean are exact', async (t) => {
  const h = new Histogram();
  for (let v = 1; v <= 100; v++) h.record(v);
  t.equal(h.percentile(50), 50);
  t.equal(h.percentile(99), 99);
  t.equal(h.percentile(100), 100);
  t.equal(h.min, 1);
  t.equal(h.max, 100);
  t.equal(h.count, 100);
  t.equal(h.mean(), 50.5);
  t.equal(new Histogram().percentile(99), 0, 'an empty histogram reports 0');
});

t.test('merging histograms equals recording every value in one', async (t) => {
  fc.assert(fc.property(values, values, percentile, (a, b, p) => {
    const left = new Histogram();
    const right = new Histogram();
    const all = new Histogram();
    a.forEach((v) => { left.record(v); all.record(v); });
    b.forEach((v) => { right.record(v); all.record(v); });
    const merged = Histogram.from(left.toJSON());
    merged.merge(right.toJSON());
    return merged.percentile(p) === all.percentile(p) && merged.count === all.count && merged.max === all.max && merged.min === all.min;
  }), { numRuns: 200 });
  t.pass();
});

t.test('buckets list every recorded value once, in order', async (t) => {
  const h = new Histogram();
  [5, 5, 1000, 70_000, 3_000_000].forEach((v) => h.record(v));
  const buckets = h.buckets();
  t.equal(buckets.reduce((sum, [, n]) => sum + n, 0), 5);
  t.same(buckets.map(([v]) => v), [...buckets.map(([v]) => v)].sort((x, y) => x - y));
  t.equal(buckets[0]![0], 5);
});
