// mapLimited and startLimited: every item once, results in order, never more than the limit in flight.
import fc from 'fast-check';
import t from 'tap';
import { mapLimited, startLimited } from '../../src/common/concurrency.js';

t.test('mapLimited keeps order and its bound', async (t) => {
  await fc.assert(fc.asyncProperty(
    fc.array(fc.nat(3), { maxLength: 40 }),
    fc.integer({ min: 1, max: 8 }),
    async (delays, limit) => {
      let inFlight = 0;
      let peak = 0;
      const seen: number[] = [];
      const results = await mapLimited(delays, limit, async (delay, index) => {
        peak = Math.max(peak, ++inFlight);
        seen.push(index);
        await new Promise((resolve) => setTimeout(resolve, delay));
        inFlight--;
        return index * 2;
      });
      return results.every((value, index) => value === index * 2)
        && results.length === delays.length
        && seen.length === delays.length
        && peak <= limit;
    },
  ), { numRuns: 60 });
});

t.test('a failing item rejects the whole map', async (t) => {
  await t.rejects(mapLimited([1, 2, 3], 2, async (n) => {
    if (n === 2) throw new Error('item 2 failed');
    return n;
  }), /item 2 failed/);
});

t.test('startLimited answers each item on its own, within its bound', async (t) => {
  let inFlight = 0;
  let peak = 0;
  const results = startLimited([5, 1, 3, 0], 2, async (delay, index) => {
    peak = Math.max(peak, ++inFlight);
    await new Promise((resolve) => setTimeout(resolve, delay));
    inFlight--;
    if (index === 2) throw new Error('item 2 failed');
    return index;
  });
  t.equal(await results[1], 1, 'item 1 answers');
  await t.rejects(results[2]!, /item 2 failed/, 'a failing item rejects only its own promise');
  t.same(await Promise.all([results[0], results[3]]), [0, 3], 'the others answer');
  t.ok(peak <= 2, `at most 2 in flight (${peak})`);
});
