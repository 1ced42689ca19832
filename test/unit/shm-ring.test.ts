// The bulk channel's shared-memory ring (src/common/shm-ring.ts): what a gateway places, a node
// reads back byte for byte, in order, and the ring never hands out space the node still reads.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import fc from 'fast-check';
import t from 'tap';
import { isStoreError } from '../../src/common/errors.js';
import { RING_BLOCK_BYTES, RingReader, RingWriter, sweepOrphanRings } from '../../src/common/shm-ring.js';

const probe = RingWriter.create();
probe?.unlink();
if (!probe) t.comment('no shared memory on this host: skipped');

function pair(): { writer: RingWriter; reader: RingReader } {
  const writer = RingWriter.create()!;
  t.teardown(() => writer.unlink());
  return { writer, reader: RingReader.attach(writer.path, writer.nonce, writer.size) };
}

t.test('a node maps only the ring it was handed', { skip: !probe }, async (t) => {
  const writer = RingWriter.create()!;
  t.teardown(() => writer.unlink());
  const refusal = (path: string, nonce: Buffer, size: number) => {
    try {
      RingReader.attach(path, nonce, size);
      return undefined;
    } catch (err) {
      return err;
    }
  };
  t.ok(isStoreError(refusal(writer.path, Buffer.alloc(16), writer.size), 'Unauthenticated'), 'a wrong nonce is refused');
  t.ok(isStoreError(refusal('/etc/passwd', writer.nonce, writer.size), 'InvalidArgument'), 'a path that is no ring is refused');
  t.ok(isStoreError(refusal(writer.path, writer.nonce, writer.size - 4096), 'InvalidArgument'), 'a ring of another size is refused');
  t.ok(isStoreError(refusal(`${writer.path.slice(0, -4)}0000`, writer.nonce, writer.size), 'Unavailable'), 'a ring not on this host is unavailable');
  RingReader.attach(writer.path, writer.nonce, writer.size);
  t.notOk(existsSync(writer.path), 'the file is unlinked once the node has it mapped');
});

t.test('blocks cross in order, byte for byte, and space is reused only once released', { skip: !probe }, async (t) => {
  const { writer, reader } = pair();
  let seed = 0;
  await fc.assert(fc.asyncProperty(
    fc.array(fc.record({ length: fc.integer({ min: 1, max: RING_BLOCK_BYTES / 2 }), readFirst: fc.nat(6) }), { minLength: 1, maxLength: 40 }),
    async (steps) => {
      const inFlight: Array<{ position: number; bytes: Buffer }> = [];
      const readOne = () => {
        const block = inFlight.shift()!;
        const view = reader.view(block.position, block.bytes.length);
        if (!view.equals(block.bytes)) throw new Error(`block at ${block.position} changed in the ring`);
        reader.release(block.position + block.bytes.length);
      };
      for (const step of steps) {
        for (let i = 0; i < step.readFirst && inFlight.length; i++) readOne();
        const bytes = Buffer.alloc(step.length, ++seed % 251);
        let position = writer.put(bytes);
        if (position === undefined) {
          const waiting = inFlight.reduce((sum, block) => sum + block.bytes.length, 0);
          if (waiting === 0) throw new Error('an empty ring refused a block of half its size');
          while (inFlight.length) readOne();
          position = writer.put(bytes);
          if (position === undefined) throw new Error('a drained ring refused a block of half its size');
        }
        inFlight.push({ position, bytes });
      }
      while (inFlight.length) readOne();
    },
  ), { numRuns: 25 });
  t.pass('every block read back as written');
});

t.test('a block the node has not released is never overwritten: the ring reports itself full', { skip: !probe }, async (t) => {
  const { writer, reader } = pair();
  const block = Buffer.alloc(RING_BLOCK_BYTES / 4, 1);
  const positions = [0, 1, 2, 3].map(() => writer.put(block));
  t.ok(positions.every((p) => p !== undefined), 'four quarter-ring blocks fit');
  t.equal(writer.put(Buffer.alloc(1)), undefined, 'a fifth byte does not');
  reader.view(positions[0]!, block.length);
  reader.release(positions[0]! + block.length);
  t.not(writer.put(block), undefined, 'a released quarter is reused');
  t.throws(() => reader.view(positions[0]!, block.length), 'a released block cannot be read again');
  t.throws(() => reader.view(RING_BLOCK_BYTES - 10, 20), 'a block running past the ring is refused');
});

t.test('ring files of gateways that are gone are swept, those of live ones kept', { skip: !probe }, async (t) => {
  const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
  const orphan = `/dev/shm/tessera-ring-${deadPid}-${'ab'.repeat(16)}`;
  const live = `/dev/shm/tessera-ring-${process.pid}-${'cd'.repeat(16)}`;
  writeFileSync(orphan, '');
  writeFileSync(live, '');
  t.teardown(() => rmSync(live, { force: true }));
  sweepOrphanRings();
  t.notOk(existsSync(orphan), 'the dead gateway\'s file is gone');
  t.ok(existsSync(live), 'a live gateway\'s file stays');
});
