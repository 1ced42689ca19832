// Shard bytes with direct I/O (O_DIRECT) where the file system allows it. On this kind of virtual
// machine copying shard bytes into the page cache cost a node 70 % of its CPU during PUTs (perf:
// copy_folio_from_iter_atomic; every page-cache page of a new file is fresh memory), while a
// direct write hands the buffer to the disk, and a direct read has the disk fill the caller's
// buffer. Direct I/O needs aligned memory, file offsets and lengths: a writer fills an aligned
// buffer, whole aligned pieces go out directly and only the unaligned tail of the file goes
// through the page cache; a reader reads whole aligned blocks of a shard directly.
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { DIRECT_ALIGN, openDirect, unlessRefused } from '../common/direct-io.js';
import { nativeAddon } from '../common/native-addon.js';

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


/** A file being written: direct where the file system allows, through the page cache otherwise. */
export class NewFile {
  private position = 0;
  /** The page-cache handle, opened for the tail (or for everything once a direct write is refused). */
  private buffered: FileHandle | undefined;

  private constructor(private readonly path: string, private directHandle: FileHandle | undefined, buffered?: FileHandle) {
    this.buffered = buffered;
  }

  /** Creates `path` (which must not exist); direct unless the file system refuses O_DIRECT. */
  static async create(path: string, mode: number): Promise<NewFile> {
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL;
    const direct = await openDirect(path, flags, mode);
    return new NewFile(path, direct, direct ? undefined : await open(path, flags, mode));
  }

  /** Whether appends go around the page cache (and so must be aligned). */
  get direct(): boolean {
    return this.directHandle !== undefined;
  }

  /**
   * Appends `bytes`: when direct, a view from the start of an alignedBuffer, a multiple of
   * DIRECT_ALIGN long. A direct write the file system refuses (EINVAL, e.g. a larger logical
   * block size) is made through the page cache, and so is every later one.
   */
  async append(bytes: Buffer): Promise<void> {
    const position = this.position;
    this.position += bytes.length;
    if (this.directHandle) {
      if (await unlessRefused(writeAt(this.directHandle, bytes, position).then(() => true))) return;
      const direct = this.directHandle;
      this.directHandle = undefined;
      await direct.close();
    }
    await writeAt(await this.bufferedHandle(), bytes, position);
  }

  /** Appends the last pieces through the page cache, makes the whole file durable and closes it. */
  async finish(pieces: Buffer[]): Promise<void> {
    const buffered = await this.bufferedHandle();
    for (const piece of pieces) {
      await writeAt(buffered, piece, this.position);
      this.position += piece.length;
    }
    await buffered.sync(); // the inode's data, including what went around the page cache, and its metadata
    await this.close();
  }

  async close(): Promise<void> {
    const handles = [this.directHandle, this.buffered];
    this.directHandle = this.buffered = undefined;
    for (const handle of handles) await handle?.close();
  }

  private async bufferedHandle(): Promise<FileHandle> {
    this.buffered ??= await open(this.path, 'r+');
    return this.buffered;
  }
}

async function writeAt(handle: FileHandle, bytes: Buffer, position: number): Promise<void> {
  for (let written = 0; written < bytes.length;) {
    written += (await handle.write(bytes, written, bytes.length - written, position + written)).bytesWritten;
  }
}
