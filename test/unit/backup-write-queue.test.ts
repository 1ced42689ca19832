// The restore's write queue: every write lands where it was asked to, no more than `depth` are
// in flight, writes waiting end to end leave as one (within the size limit), and a failed write
// fails the writes it carried.
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
    fc.shuffledSubarray([...Array(64).keys()], { minLength: 1 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 8 }),
    async (blocks, depth, maxBlocks) => {
      const memory = memoryImage(64 * BLOCK);
      const queue = new WriteQueue(memory.writeOut, depth, maxBlocks * BLOCK);
      const expected = Buffer.alloc(64 * BLOCK);
      await Promise.all(blocks.map((block) => {
        const data = Buffer.alloc(BLOCK, block + 1);
        data.copy(expected, block * BLOCK);
        return queue.write(block * BLOCK, [data.subarray(0, 5), data.subarray(5)]);
      }));
      t.ok(memory.image.equals(expected), 'every block where it belongs');
      t.ok(memory.maxInFlight() <= depth, 'at most depth in flight');
      t.ok(memory.calls.every((c) => c.length <= maxBlocks * BLOCK), 'no joined write over the limit');
    },
  ), { numRuns: 50 });
});

t.test('neighbours that wait together go out as one write', async (t) => {
  const memory = memoryImage(8 * BLOCK);
  const queue = new WriteQueue(memory.writeOut, 1, 8 * BLOCK);
  const block = (i: number) => queue.write(i * BLOCK, [Buffer.alloc(BLOCK, i)]);
  await Promise.all([block(0), block(3), block(2), block(4), block(1)]);
  t.same(memory.calls, [{ offset: 0, length: BLOCK }, { offset: BLOCK, length: 4 * BLOCK }], 'the first alone, the rest joined');
});

t.test('a failed write rejects every write it carried, and the queue goes on', async (t) => {
  const queue = new WriteQueue(async (offset, parts) => {
    await new Promise((resolve) => setImmediate(resolve));
    if (parts.length > 1) throw new Error('disk full');
  }, 1, 1024);
  const first = queue.write(0, [Buffer.alloc(BLOCK)]);
  const joined = [queue.write(BLOCK, [Buffer.alloc(BLOCK)]), queue.write(2 * BLOCK, [Buffer.alloc(BLOCK)])];
  await t.resolves(first, 'the first write went out alone');
  await t.rejects(joined[0]!, /disk full/);
  await t.rejects(joined[1]!, /disk full/, 'the writes joined to it failed with it');
  await t.resolves(queue.write(0, [Buffer.alloc(BLOCK)]), 'later writes still go out');
});
