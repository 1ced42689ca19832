// The project's NBD client against its NBD server over a unix socket: handshake, structured
// reads with many requests in flight, base:allocation, errors. (Both also meet QEMU in the
// integration tests: qemu-nbd and qemu-storage-daemon as servers, qemu-img and nbdinfo as clients.)
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import t from 'tap';
import { NbdClient, NbdError, parseNbdUrl } from '../../src/backup/nbd/client.js';
import { BASE_ALLOCATION, StateFlag, type Extent } from '../../src/backup/nbd/protocol.js';
import { NbdServer, type NbdExport } from '../../src/backup/nbd/server.js';

const BLOCK = 64 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'tessera-nbd-unit-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

// 4 MiB: data blocks alternate with zero blocks in runs.
const disk = Buffer.alloc(4 * 1024 * 1024);
for (let block = 0; block < disk.length / BLOCK; block++) if (block % 5 < 3) randomBytes(BLOCK).copy(disk, block * BLOCK);
const isZero = (block: number) => block % 5 >= 3;
const memoryExport: NbdExport = {
  size: disk.length,
  read: async (offset, length) => Buffer.from(disk.subarray(offset, offset + length)),
  allocation: async (offset, length) => {
    const extents: Extent[] = [];
    for (let at = offset; at < offset + length;) {
      const block = Math.floor(at / BLOCK);
      const end = Math.min(offset + length, (block + 1) * BLOCK);
      extents.push({ offset: at, length: end - at, flags: isZero(block) ? StateFlag.HOLE | StateFlag.ZERO : 0 });
      at = end;
    }
    return extents;
  },
};

const socketPath = join(dir, 'nbd.sock');
const server = await NbdServer.listen({ path: socketPath }, new Map([['mem', memoryExport]]), 'mem');
t.teardown(() => server.close());

t.test('URLs name the socket or host and the export', async (t) => {
  t.same(parseNbdUrl('nbd://example:10810/vm%201'), { host: 'example', port: 10810, exportName: 'vm 1' });
  t.same(parseNbdUrl('nbd+unix:///disk?socket=/run/x.sock'), { socketPath: '/run/x.sock', exportName: 'disk' });
  t.throws(() => parseNbdUrl('http://x/'));
});

t.test('reads with many requests in flight return exactly the export bytes', async (t) => {
  const client = await NbdClient.connect({ socketPath, exportName: 'mem' }, { metaContexts: [BASE_ALLOCATION] });
  t.teardown(() => client.close());
  t.equal(client.size, disk.length);
  t.ok(client.structured, 'structured replies negotiated');
  t.ok(client.readOnly);
  await fc.assert(fc.asyncProperty(
    fc.array(fc.tuple(fc.nat(disk.length - 1), fc.integer({ min: 1, max: 300_000 })), { minLength: 1, maxLength: 40 }),
    async (requests) => {
      const ranges = requests.map(([offset, length]) => ({ offset, length: Math.min(length, disk.length - offset) }));
      const results = await Promise.all(ranges.map((r) => client.read(r.offset, r.length)));
      return results.every((data, i) => data.equals(disk.subarray(ranges[i]!.offset, ranges[i]!.offset + ranges[i]!.length)));
    },
  ), { numRuns: 25 });
});

t.test('base:allocation reports the zero blocks as holes', async (t) => {
  const client = await NbdClient.connect({ socketPath, exportName: '' }, { metaContexts: [BASE_ALLOCATION] });
  t.teardown(() => client.close());
  const extents = await client.extents(BASE_ALLOCATION);
  t.equal(extents.reduce((sum, e) => sum + e.length, 0), disk.length, 'the default export covers the whole disk');
  const wrong = extents.flatMap((extent) => {
    const blocks = Array.from({ length: extent.length / BLOCK }, (_, k) => extent.offset / BLOCK + k);
    return blocks.filter((block) => isZero(block) !== ((extent.flags & StateFlag.ZERO) !== 0));
  });
  t.same(wrong, [], 'every block is reported as data or zero as it is');
});

t.test('errors: writes to a read-only export, unknown exports, closed clients', async (t) => {
  const client = await NbdClient.connect({ socketPath, exportName: 'mem' });
  await t.rejects(client.write(0, Buffer.alloc(512)), NbdError, 'the read-only export refuses writes');
  t.ok((await client.read(0, 512)).equals(disk.subarray(0, 512)), 'and the connection goes on');
  await client.close();
  await t.rejects(client.read(0, 1), /closed/);
  await t.rejects(NbdClient.connect({ socketPath, exportName: 'nope' }), /not available/);
});
