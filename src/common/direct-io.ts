// Direct I/O (O_DIRECT) where the file system allows it, the page cache where it does not. A file
// system without O_DIRECT, or a device that wants another alignment, refuses with EINVAL before
// anything is read or written; every caller then goes through the page cache instead. Shared by
// the storage node's shard files and the backup agent's restores.
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

/** Alignment of memory, offsets and lengths for direct I/O: 4 KiB covers every common logical block size. */
export const DIRECT_ALIGN = 4096;

/** What `direct` yields, or undefined when the file system refuses direct I/O (EINVAL). */
export async function unlessRefused<T>(direct: Promise<T>): Promise<T | undefined> {
  try {
    return await direct;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EINVAL') return undefined;
    throw err;
  }
}

/** `path` opened with `flags` plus O_DIRECT; undefined where the file system refuses O_DIRECT. */
export function openDirect(path: string, flags: number, mode?: number): Promise<FileHandle | undefined> {
  return unlessRefused(open(path, flags | constants.O_DIRECT, mode));
}
