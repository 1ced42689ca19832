// The restore's write queue: every write lands where it was asked to, no more than `depth` are
// in flight, writes waiting end to end leave as one (within the size limit), parked small writes
// leave with the neighbours that come later, and a failed write fails the writes it carried.
import fc from 'fast-check';
import t from 'tap';
import { WriteQueue } from '../../src/backup/write-queue.js';

const BLOCK = 16;

/** An image in memory whose writes finish one tick later, counting what is in flight. */
function memoryImage(size: number) {
  const image = Buffer.alloc(size);
  const calls: Array<{ offset: number; length: number }> = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const writeOut = async (offset: number, parts: Buffer[]) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await new Promise((resolve) => setImmediate(resolve));
    Buffer.concat(parts).copy(image, offset);
    calls.push({ offset, length: parts.reduce((sum, p) => sum + p.length, 0) });
    inFlight--;
  };
  return { image, calls, writeOut, maxInFlight: () => maxInFlight };
}

t.test('writes in any order land in place, joined while they wait, within depth and size', async (t) => {
  await fc.assert(fc.asyncProperty(
    fc.shuffledSubarray([...Array(64).keys()], { minLength: 1 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 0, max: 24 }),
    async (blocks, depth, maxBlocks, arenaBlocks) => {
      const memory = memoryImage(64 * BLOCK);
      const park = arenaBlocks > 0 ? { below: 2 * BLOCK, arena: Buffer.alloc(arenaBlocks * BLOCK), alignment: BLOCK } : undefined;
      const queue = new WriteQueue(memory.writeOut, { depth, maxBytes: maxBlocks * BLOCK, park });
      const expected = Buffer.alloc(64 * BLOCK);
      await Promise.all(blocks.map((block) => {
        const data = Buffer.alloc(BLOCK, block + 1);
        data.copy(expected, block * BLOCK);
        // A caller reuses its buffer once its write is done (written or parked).
        return queue.write(block * BLOCK, [data.subarray(0, 5), data.subarray(5)]).then(() => data.fill(0));
      }));
      await queue.flush();
      t.ok(memory.image.equals(expected), 'every block where it belongs');
      t.ok(memory.maxInFlight() <= depth, 'at most depth in flight');
      t.ok(memory.calls.every((c) => c.length <= maxBlocks * BLOCK), 'no joined write over the limit');
    },
  ), { numRuns: 50 });
});

t.test('neighbours that wait together go out as one write', async (t) => {
  const memory = memoryImage(8 * BLOCK);
  const queue = new WriteQueue(memory.writeOut, { depth: 1, maxBytes: 8 * BLOCK });
  const block = (i: number) => queue.write(i * BLOCK, [Buffer.alloc(BLOCK, i)]);
  const first = block(0);
  await Promise.resolve(); // the first leaves alone; the rest wait for it
  await Promise.all([first, block(3), block(2), block(4), block(1)]);
  t.same(memory.calls, [{ offset: 0, length: BLOCK }, { offset: BLOCK, length: 4 * BLOCK }], 'the first alone, the rest joined');
  await Promise.all([block(6), block(5)]);
  t.same(memory.calls.at(-1), { offset: 5 * BLOCK, length: 2 * BLOCK }, 'writes queued in the same tick leave as one');
});

t.test('a parked write leaves with the neighbours that arrive later, as one write', async (t) => {
  const memory = memoryImage(16 * BLOCK);
  const queue = new WriteQueue(memory.writeOut, { depth: 1, maxBytes: 16 * BLOCK, park: { below: 2 * BLOCK, arena: Buffer.alloc(4 * BLOCK), alignment: BLOCK } });
  const patch = Buffer.alloc(BLOCK, 9);
  await queue.write(4 * BLOCK, [patch]);
  patch.fill(0); // done: the caller may reuse its buffer
  t.same(memory.calls, [], 'the small write waits');
  await Promise.all([queue.write(0, [Buffer.alloc(4 * BLOCK, 1)]), queue.write(5 * BLOCK, [Buffer.alloc(4 * BLOCK, 2)])]);
  await queue.write(12 * BLOCK, [Buffer.alloc(BLOCK, 3)]);
  await queue.flush();
  t.same(memory.calls, [{ offset: 0, length: 9 * BLOCK }, { offset: 12 * BLOCK, length: BLOCK }], 'joined with both neighbours; the lone one at flush');
  t.same(memory.image.subarray(4 * BLOCK, 5 * BLOCK), Buffer.alloc(BLOCK, 9), 'the parked copy was written');
});

t.test('flush reports the failure of a write that carried parked parts', async (t) => {
  const queue = new WriteQueue(async () => { throw new Error('disk full'); }, { depth: 1, maxBytes: 1024, park: { below: 2 * BLOCK, arena: Buffer.alloc(BLOCK), alignment: BLOCK } });
  await t.resolves(queue.write(0, [Buffer.alloc(BLOCK)]), 'parked: done at once');
  await t.rejects(queue.flush(), /disk full/);
});

t.test('a failed write rejects every write it carried, and the queue goes on', async (t) => {
  const queue = new WriteQueue(async (offset, parts) => {
    await new Promise((resolve) => setImmediate(resolve));
    if (parts.length > 1) throw new Error('disk full');
  }, { depth: 1, maxBytes: 1024 });
  const first = queue.write(0, [Buffer.alloc(BLOCK)]);
  await Promise.resolve();
  const joined = [queue.write(BLOCK, [Buffer.alloc(BLOCK)]), queue.write(2 * BLOCK, [Buffer.alloc(BLOCK)])];
  await t.resolves(first, 'the first write went out alone');
  await t.rejects(joined[0]!, /disk full/);
  await t.rejects(joined[1]!, /disk full/, 'the writes joined to it failed with it');
  await t.resolves(queue.write(0, [Buffer.alloc(BLOCK)]), 'later writes still go out');
});
