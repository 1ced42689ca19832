// The straggler watch gives up only streams that alone held a transfer, never more than there are
// spares, and never one that finished.
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { StragglerWatch } from '../../src/replication/straggler.js';

const MIN_HELD_MS = 30;
const never = () => new Promise<void>(() => undefined);
const after = (ms: number) => sleep(ms).then(() => undefined);

t.test('steps that all finish give nothing up', async (t) => {
  const watch = new StragglerWatch(MIN_HELD_MS);
  t.same(await watch.step([after(5), after(10), undefined, Promise.resolve()], 1), []);
  t.same(await watch.step([], 1), [], 'a step without streams');
});

t.test('a stream that alone holds the step is given up when a spare exists', async (t) => {
  const watch = new StragglerWatch(MIN_HELD_MS);
  t.same(await watch.step([Promise.resolve(), never(), after(5)], 1), [1]);
});

t.test('a lone stream (a spare read after a swap) is given up when another spare exists', async (t) => {
  const watch = new StragglerWatch(MIN_HELD_MS);
  t.same(await watch.step([undefined, never(), undefined], 1), [1]);
  t.same(await new StragglerWatch(MIN_HELD_MS).step([after(2 * MIN_HELD_MS)], 0), [], 'and waited for when none does');
});

t.test('without spares every stream is waited for', async (t) => {
  const watch = new StragglerWatch(MIN_HELD_MS);
  t.same(await watch.step([Promise.resolve(), after(4 * MIN_HELD_MS)], 0), []);
});

t.test('streams pending together beyond the spares do not count as holding the step', async (t) => {
  const watch = new StragglerWatch(MIN_HELD_MS);
  const late = after(3 * MIN_HELD_MS);
  // Two pending with one spare: nobody is given up until one of them finishes.
  const given = await watch.step([Promise.resolve(), late, never()], 1);
  t.same(given, [2], 'the stream left alone after the other finished');
});

t.test('a failed step counts as finished', async (t) => {
  const watch = new StragglerWatch(MIN_HELD_MS);
  t.same(await watch.step([Promise.reject(new Error('node gone')), after(5)], 1), []);
});

t.test('a stream slow step after step is given up once its held time adds up', async (t) => {
  const watch = new StragglerWatch(MIN_HELD_MS);
  const stepMs = MIN_HELD_MS / 2;
  let given: number[] = [];
  let steps = 0;
  while (given.length === 0 && steps < 20) {
    given = await watch.step([Promise.resolve(), after(stepMs)], 1);
    steps++;
  }
  t.same(given, [1], 'given up');
  t.ok(steps > 1, `after ${steps} steps, none of which alone crossed the threshold`);
});
