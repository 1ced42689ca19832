import t from 'tap';
import { ExpiringCache } from '../../src/gateway/expiring-cache.js';

t.test('requests that miss together share one load', async (t) => {
  let loads = 0;
  const cache = new ExpiringCache(60_000, async (key: string) => { loads++; return `record of ${key}`; });
  const answers = await Promise.all(Array.from({ length: 32 }, () => cache.get('b1')));
  t.equal(loads, 1);
  t.ok(answers.every((a) => a === 'record of b1'));
  t.equal(await cache.get('b1'), 'record of b1');
  t.equal(loads, 1, 'then served from the cache');
});

t.test('a write during a load wins over the older answer the load brings back', async (t) => {
  let finishLoad!: (value: string) => void;
  const cache = new ExpiringCache(60_000, () => new Promise<string>((resolve) => { finishLoad = resolve; }));
  const loading = cache.get('b1');
  cache.set('b1', 'written');
  finishLoad('read before the write');
  t.equal(await loading, 'read before the write', 'the caller that asked before the write gets the read');
  t.equal(await cache.get('b1'), 'written');
});

t.test('entries expire, and a failed load is not cached', async (t) => {
  let loads = 0;
  const cache = new ExpiringCache(1, async () => {
    loads++;
    if (loads === 2) throw new Error('nodes unreachable');
    return `version ${loads}`;
  });
  t.equal(await cache.get('k'), 'version 1');
  await new Promise((resolve) => setTimeout(resolve, 5));
  await t.rejects(cache.get('k'), /unreachable/);
  t.equal(await cache.get('k'), 'version 3');
});
