import t from 'tap';
import { StoreError } from '../../src/common/errors.js';
import { CallCoalescer } from '../../src/replication/call-coalescer.js';

const refused = (err: unknown) => err instanceof StoreError && err.kind !== 'Unavailable';

t.test('calls made together leave as one call, each caller gets its own answer', async (t) => {
  const calls: number[][] = [];
  const doubler = new CallCoalescer(async (items: number[]) => {
    calls.push(items);
    return items.map((n) => n * 2);
  }, refused);
  const answers = await Promise.all([1, 2, 3, 4].map((n) => doubler.call(n)));
  t.same(answers, [2, 4, 6, 8]);
  t.same(calls, [[1, 2, 3, 4]]);
});

t.test('an item the node refuses fails alone; its neighbours are retried one by one', async (t) => {
  const calls: string[][] = [];
  const store = new CallCoalescer(async (items: string[]) => {
    calls.push(items);
    if (items.includes('bad')) throw new StoreError('InvalidArgument', 'bad name');
    return items.map((item) => `stored ${item}`);
  }, refused);
  const outcomes = await Promise.allSettled(['a', 'bad', 'b'].map((item) => store.call(item)));
  t.same(outcomes.map((o) => o.status), ['fulfilled', 'rejected', 'fulfilled']);
  t.equal((outcomes[0] as PromiseFulfilledResult<string>).value, 'stored a');
  t.same(calls, [['a', 'bad', 'b'], ['a'], ['bad'], ['b']]);
});

t.test('an unreachable node fails the whole batch without retries', async (t) => {
  let calls = 0;
  const store = new CallCoalescer(async (): Promise<string[]> => {
    calls++;
    throw new StoreError('Unavailable', 'node down');
  }, refused);
  const outcomes = await Promise.allSettled(['a', 'b'].map((item) => store.call(item)));
  t.same(outcomes.map((o) => o.status), ['rejected', 'rejected']);
  t.equal(calls, 1);
});

t.test('while calls are in flight, new items queue and leave together in the next call', async (t) => {
  const calls: number[][] = [];
  const waited: number[] = [];
  const releases: Array<() => void> = [];
  const slow = new CallCoalescer((items: number[], waitedMs: number) => {
    calls.push(items);
    waited.push(waitedMs);
    return new Promise<number[]>((resolve) => releases.push(() => resolve(items)));
  }, refused);
  const first = [slow.call(1)];
  await new Promise((resolve) => setImmediate(resolve));
  first.push(slow.call(2));
  await new Promise((resolve) => setImmediate(resolve));
  const queued = [3, 4, 5].map((n) => slow.call(n));
  await new Promise((resolve) => setImmediate(resolve));
  t.same(calls, [[1], [2]], 'two calls in flight, the rest waits');
  await new Promise((resolve) => setTimeout(resolve, 10));
  releases.shift()!();
  await new Promise((resolve) => setTimeout(resolve, 10));
  t.same(calls.at(-1), [3, 4, 5], 'a finished call lets the queued items go, together');
  t.ok(waited.at(-1)! >= 5, 'the call is told how long its items queued (its deadline includes it)');
  for (const release of releases) release();
  t.same(await Promise.all([...first, ...queued]), [1, 2, 3, 4, 5]);
});

t.test('a coalescer limited to one call in flight gathers everything else into the next call', async (t) => {
  const calls: number[][] = [];
  const releases: Array<() => void> = [];
  const single = new CallCoalescer((items: number[]) => {
    calls.push(items);
    return new Promise<number[]>((resolve) => releases.push(() => resolve(items)));
  }, refused, 1);
  const first = single.call(1);
  await new Promise((resolve) => setImmediate(resolve));
  const queued = [2, 3, 4].map((n) => single.call(n));
  await new Promise((resolve) => setImmediate(resolve));
  t.same(calls, [[1]], 'one call in flight, the rest waits');
  releases.shift()!();
  await new Promise((resolve) => setTimeout(resolve, 10));
  t.same(calls, [[1], [2, 3, 4]], 'the queued items leave together once the call is answered');
  for (const release of releases) release();
  t.same(await Promise.all([first, ...queued]), [1, 2, 3, 4]);
});
