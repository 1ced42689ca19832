// Disk images for the backup tests: qcow2 images holding an ext4 filesystem of real files
// (mkfs.ext4 -d fills it without mounting), changed afterwards with qemu-io like a guest would.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Copies real files (docs, licences, libraries) into `dir` until about `bytes` are there. */
export function fillWithRealFiles(dir: string, bytes: number, sources = ['/usr/share/common-licenses', '/usr/share/doc', '/usr/lib/x86_64-linux-gnu']): void {
  mkdirSync(dir, { recursive: true });
  let total = 0;
  let n = 0;
  const visit = (path: string): boolean => {
    if (total >= bytes) return false;
    let stat;
    try { stat = statSync(path); } catch { return true; }
    if (stat.isDirectory()) {
      let entries: string[] = [];
      try { entries = readdirSync(path).sort(); } catch { return true; }
      for (const entry of entries) if (!visit(join(path, entry))) return false;
    } else if (stat.isFile() && stat.size > 0 && stat.size < 4 * 1024 * 1024) {
      try { copyFileSync(path, join(dir, `${n++}-${path.split('/').pop()}`)); total += stat.size; } catch { /* unreadable */ }
    }
    return true;
  };
  for (const source of sources) if (!visit(source)) break;
  // Some incompressible data too, like media or already-compressed files in a real guest.
  writeFileSync(join(dir, 'random.bin'), randomBytes(Math.min(4 * 1024 * 1024, Math.floor(bytes / 8))));
}

/** A qcow2 image of `sizeMiB` with an ext4 filesystem holding about `dataMiB` of real files. */
export function makeExt4Qcow2(workDir: string, name: string, sizeMiB: number, dataMiB: number): string {
  const files = join(workDir, `${name}-files`);
  fillWithRealFiles(files, dataMiB * 1024 * 1024);
  const raw = join(workDir, `${name}.raw`);
  execFileSync('mkfs.ext4', ['-q', '-F', '-d', files, raw, `${sizeMiB}M`]);
  const qcow2 = join(workDir, `${name}.qcow2`);
  execFileSync('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, qcow2]);
  execFileSync('rm', ['-rf', raw, files]);
  return qcow2;
}

/** Writes a pattern at each offset through qemu-io (offsets and length in bytes). */
export function qemuIoWrite(image: string, writes: Array<{ offset: number; length: number; pattern?: number; zero?: boolean }>, format = 'qcow2'): void {
  const commands = writes.flatMap(({ offset, length, pattern, zero }) =>
    ['-c', zero ? `write -z ${offset} ${length}` : `write -P ${pattern ?? 0x5a} ${offset} ${length}`]);
  execFileSync('qemu-io', ['-f', format, ...commands, image], { stdio: 'ignore' });
}

/** SHA-256 of the guest-visible content of an image (any format qemu-img reads). */
export function imageSha256(image: string, workDir: string): string {
  const raw = join(workDir, `sha-${randomBytes(4).toString('hex')}.raw`);
  execFileSync('qemu-img', ['convert', '-q', '-O', 'raw', image, raw]);
  const digest = fileSha256(raw);
  execFileSync('rm', ['-f', raw]);
  return digest;
}

export function fileSha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}
