// adviseHugePages (native/backup/huge_pages.c) covers exactly the whole 2 MiB pages inside the
// bytes it is given (or nothing, where the kernel has no transparent huge pages), and the memory
// keeps working and keeps its content.
import t from 'tap';
import { backupAddon } from '../../src/backup/native-backup.js';
import { nativeAddon } from '../../src/common/native-addon.js';

const MiB = 1024 * 1024;

t.test('advises the whole huge pages inside the bytes, and nothing is lost', (t) => {
  const memory = Buffer.alloc(9 * MiB, 7);
  for (const [start, length] of [[0, 9 * MiB], [12345, 5 * MiB], [MiB, MiB]] as const) {
    const bytes = memory.subarray(start, start + length);
    const skip = nativeAddon.alignmentOffset(bytes, 2 * MiB);
    const whole = Math.max(0, Math.floor((length - skip) / (2 * MiB)) * 2 * MiB);
    const advised = backupAddon().adviseHugePages(bytes);
    t.ok(advised === whole || advised === 0, `${start}+${length}: ${advised} of ${whole} bytes advised`);
  }
  memory.fill(3, 4 * MiB);
  t.equal(memory[0], 7);
  t.equal(memory[9 * MiB - 1], 3);
  t.throws(() => backupAddon().adviseHugePages('not bytes' as unknown as Uint8Array), RangeError);
  t.end();
});
