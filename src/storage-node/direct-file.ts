// Shard bytes with direct I/O (O_DIRECT) where the file system allows it. On this kind of virtual
// machine copying shard bytes into the page cache cost a node 70 % of its CPU during PUTs (perf:
// copy_folio_from_iter_atomic; every page-cache page of a new file is fresh memory), while a
// direct write hands the buffer to the disk, and a direct read has the disk fill the caller's
// buffer. Direct I/O needs aligned memory, file offsets and lengths: a writer fills an aligned
// buffer, whole aligned pieces go out directly and only the unaligned tail of the file goes
// through the page cache; a reader reads whole aligned blocks of a shard directly.
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { nativeAddon } from '../common/native-addon.js';

/** Alignment of memory, offsets and lengths for direct writes: 4 KiB covers every common logical block size. */
export const DIRECT_ALIGN = 4096;

/** A buffer whose memory starts on a DIRECT_ALIGN boundary. */
export function alignedBuffer(size: number): Buffer {
  const raw = Buffer.allocUnsafeSlow(size + DIRECT_ALIGN);
  const skip = nativeAddon.alignmentOffset(raw, DIRECT_ALIGN);
  return raw.subarray(skip, skip + size);
}

/** `n` rounded up to a multiple of DIRECT_ALIGN. */
export function alignUp(n: number): number {
  return Math.ceil(n / DIRECT_ALIGN) * DIRECT_ALIGN;
}

/** Whether `buffer` can take a direct read of `length` bytes (rounded up). */
export function fitsDirectRead(buffer: Buffer, length: number): boolean {
  return buffer.length >= alignUp(length) && nativeAddon.alignmentOffset(buffer, DIRECT_ALIGN) === 0;
}

/** `path` opened for direct reads; undefined where the file system refuses O_DIRECT. */
export async function openForDirectReads(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, constants.O_RDONLY | constants.O_DIRECT);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EINVAL') return undefined;
    throw err;
  }
}

export class NewFile {
  private position = 0;

  private constructor(private readonly path: string, private readonly handle: FileHandle, readonly direct: boolean) {}

  /** Creates `path` (which must not exist); direct unless the file system refuses O_DIRECT. */
  static async create(path: string, mode: number): Promise<NewFile> {
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL;
    try {
      return new NewFile(path, await open(path, flags | constants.O_DIRECT, mode), true);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
      return new NewFile(path, await open(path, flags, mode), false);
    }
  }

  /** Appends `bytes`: when direct, a view from the start of an alignedBuffer, a multiple of DIRECT_ALIGN long. */
  append(bytes: Buffer): Promise<void> {
    return this.writeFully(this.handle, bytes);
  }

  /** Appends the last pieces through the page cache, makes the whole file durable and closes it. */
  async finish(pieces: Buffer[]): Promise<void> {
    const buffered = this.direct ? await open(this.path, 'r+') : this.handle;
    try {
      for (const piece of pieces) await this.writeFully(buffered, piece);
      await buffered.sync(); // the inode's data, including what went around the page cache, and its metadata
    } finally {
      if (buffered !== this.handle) await buffered.close();
    }
    await this.handle.close();
  }

  close(): Promise<void> {
    return this.handle.close();
  }

  /** Writes at the file's end; the next write's place is taken at once, so writes may overlap. */
  private async writeFully(handle: FileHandle, bytes: Buffer): Promise<void> {
    const position = this.position;
    this.position += bytes.length;
    for (let written = 0; written < bytes.length;) {
      written += (await handle.write(bytes, written, bytes.length - written, position + written)).bytesWritten;
    }
  }
}
