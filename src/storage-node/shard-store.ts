// Shard files of one node: shards/<2 hex of hash(data_id)>/<data_id>.<index>, written through a
// temp file beside it (write, fsync, rename, fsync the directory) so a reader or a crash never
// sees half a shard. Every block is checked against its xxHash64 whenever it is read. (Temp files
// once lived in tmp/: creating every file in one directory and renaming across directories cost
// 40 % more CPU per small shard, in ext4's inode allocation and its locks. Leftovers there are
// still found.)
import { randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readdir, rename, stat, statfs, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { StoreError } from '../common/errors.js';
import { BufferPool } from '../common/buffer-pool.js';
import { DIRECT_ALIGN, openDirect, unlessRefused } from '../common/direct-io.js';
import { BlockWriter, chunkSource, type ShardSource } from './block-writer.js';
import { alignedBuffer, alignUp, fitsDirectRead, NewFile } from './direct-file.js';
import { MAX_BLOCK_SIZE, blockChecksum, nameHash, readTrailer, type ShardLayout } from './shard-file.js';
import { shardMetrics } from './metrics.js';

const DATA_ID_PATTERN = /^[A-Za-z0-9._-]{1,200}$/;
const TEMP_SUFFIX = '.tmp';

export interface ShardRef {
  dataId: string;
  shardIndex: number;
}

export type ShardState = 'OK' | 'MISSING' | 'CORRUPT';

export interface ShardCheck {
  shard: ShardRef;
  state: ShardState;
  /** The file's size. */
  bytes: number;
  /** Shard data the file holds (what a read of it delivers). */
  dataBytes: number;
  badBlock: number;
}

/** The check of a shard whose file is missing or cannot even be opened as a shard. */
export function unreadableShard(shard: ShardRef, state: 'MISSING' | 'CORRUPT'): ShardCheck {
  return { shard, state, bytes: 0, dataBytes: 0, badBlock: 0 };
}

/** A shard file or a leftover temp file, as found on disk. */
export interface ShardFileEntry {
  shard: ShardRef;
  path: string;
  bytes: number;
  mtimeMs: number;
  temp: boolean;
}

export interface ShardStoreOptions {
  /** Byte limit for shard data; beyond it writes fail as if the disk were full. */
  capacityBytes?: number;
}

export function shardName(ref: ShardRef): string {
  return `${ref.dataId}.${ref.shardIndex}`;
}

export function validateShardRef(ref: ShardRef): void {
  if (!DATA_ID_PATTERN.test(ref.dataId)) {
    throw new StoreError('InvalidArgument', 'data_id must be 1-200 characters of [A-Za-z0-9._-]');
  }
  if (!Number.isInteger(ref.shardIndex) || ref.shardIndex < 0 || ref.shardIndex > 0xffff) {
    throw new StoreError('InvalidArgument', 'shard_index out of range');
  }
}

function parseShardFileName(name: string): ShardRef | undefined {
  const dot = name.lastIndexOf('.');
  const shard = { dataId: name.slice(0, dot), shardIndex: Number(name.slice(dot + 1)) };
  return dot > 0 && /^\d+$/.test(name.slice(dot + 1)) && DATA_ID_PATTERN.test(shard.dataId) ? shard : undefined;
}

/** Maps file-system failures to the store's typed errors. */
export function fileError(err: unknown, what: string): unknown {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new StoreError('DiskFull', `no space left for ${what}`);
  if (code === 'ENOENT') return new StoreError('NotFound', `shard ${what} not found`);
  return err;
}

export class ShardStore {
  private usedBytes = 0;
  private shardCount = 0;
  private reservedBytes = 0;
  private readonly knownDirs = new Set<string>();
  private readonly writing = new Set<string>();
  /** Block buffers for reads (blockBuffer()) and write batches, aligned for direct I/O. */
  private readonly pool = new BufferPool(8, alignedBuffer);

  private constructor(
    private readonly shardsDir: string,
    private readonly tmpDir: string,
    private readonly options: ShardStoreOptions,
  ) {}

  static async open(dataDir: string, options: ShardStoreOptions = {}): Promise<ShardStore> {
    const store = new ShardStore(join(dataDir, 'shards'), join(dataDir, 'tmp'), options);
    await mkdir(store.shardsDir, { recursive: true, mode: 0o700 });
    await mkdir(store.tmpDir, { recursive: true, mode: 0o700 });
    for await (const file of store.files()) {
      if (file.temp) continue;
      store.usedBytes += file.bytes;
      store.shardCount++;
    }
    return store;
  }

  async usage(): Promise<{ capacityBytes: number; usedBytes: number; freeBytes: number; shardCount: number }> {
    const fs = await statfs(this.shardsDir);
    const diskFree = fs.bavail * fs.bsize;
    const capacityBytes = this.options.capacityBytes ?? fs.blocks * fs.bsize;
    const limitFree = Math.max(0, capacityBytes - this.usedBytes - this.reservedBytes);
    return { capacityBytes, usedBytes: this.usedBytes, freeBytes: Math.min(diskFree, limitFree), shardCount: this.shardCount };
  }

  private dirOf(ref: ShardRef): string {
    const bucket = (nameHash(ref.dataId) & 0xff).toString(16).padStart(2, '0');
    return join(this.shardsDir, bucket);
  }

  private pathOf(ref: ShardRef): string {
    return join(this.dirOf(ref), shardName(ref));
  }

  /** Writes a whole shard from `data`; visible only once complete and durable. */
  async write(ref: ShardRef, blockSize: number, data: AsyncIterable<Uint8Array> | ShardSource): Promise<{ bytes: number; blocks: number }> {
    validateShardRef(ref);
    if (!Number.isInteger(blockSize) || blockSize < 1 || blockSize > MAX_BLOCK_SIZE) {
      throw new StoreError('InvalidArgument', `block_size must be 1..${MAX_BLOCK_SIZE}`);
    }
    const dir = this.dirOf(ref);
    const tempPath = join(dir, `${shardName(ref)}.${randomUUID()}${TEMP_SUFFIX}`);
    this.writing.add(tempPath);
    let writer: BlockWriter | undefined;
    let file: NewFile | undefined;
    try {
      await this.ensureDir(dir);
      file = await NewFile.create(tempPath, 0o600);
      writer = new BlockWriter(file, blockSize, this.pool, (bytes) => this.reserve(bytes));
      const { dataLength, fileBytes, blocks } = await writer.writeAll(Symbol.asyncIterator in data ? chunkSource(data) : data);
      file = undefined;
      const replaced = await this.install(tempPath, ref);
      this.usedBytes += fileBytes - replaced;
      if (replaced === 0) this.shardCount++;
      shardMetrics.written(dataLength);
      return { bytes: dataLength, blocks };
    } catch (err) {
      await file?.close().catch(() => {});
      await unlink(tempPath).catch(() => {});
      throw fileError(err, shardName(ref));
    } finally {
      this.reservedBytes -= writer?.reserved ?? 0;
      this.writing.delete(tempPath);
    }
  }

  /** Renames a finished temp file into place and makes the rename durable; returns the bytes it replaced. */
  private async install(tempPath: string, ref: ShardRef): Promise<number> {
    const dir = this.dirOf(ref);
    const finalPath = this.pathOf(ref);
    const replaced = await stat(finalPath).then((s) => s.size, () => 0);
    await rename(tempPath, finalPath);
    await fsyncDir(dir);
    return replaced;
  }

  private async ensureDir(dir: string): Promise<void> {
    if (this.knownDirs.has(dir)) return;
    const created = await mkdir(dir, { recursive: true, mode: 0o700 });
    if (created) await fsyncDir(this.shardsDir);
    this.knownDirs.add(dir);
  }

  private reserve(bytes: number): void {
    const limit = this.options.capacityBytes;
    if (limit !== undefined && this.usedBytes + this.reservedBytes + bytes > limit) {
      throw new StoreError('DiskFull', `node capacity of ${limit} bytes reached`);
    }
    this.reservedBytes += bytes;
  }

  /** A buffer for one block of `blockSize` bytes that can take a direct read; hand it back with returnBuffer(). */
  blockBuffer(blockSize: number): Buffer {
    return this.pool.take(alignUp(blockSize));
  }

  returnBuffer(buffer: Buffer): void {
    this.pool.give(buffer);
  }

  /** Opens a shard for verified reads. The caller closes it. */
  async openShard(ref: ShardRef): Promise<ShardReader> {
    validateShardRef(ref);
    let file: FileHandle;
    let direct: FileHandle | undefined;
    try {
      file = await open(this.pathOf(ref), 'r');
    } catch (err) {
      throw fileError(err, shardName(ref));
    }
    try {
      const { size } = await file.stat();
      const layout = await readTrailer(file, size, shardName(ref));
      // Blocks start at aligned offsets only when the block size is a multiple of the alignment.
      if (layout.blockSize % DIRECT_ALIGN === 0) direct = await openDirect(this.pathOf(ref), constants.O_RDONLY);
      return new ShardReader(file, direct, layout, shardName(ref), size);
    } catch (err) {
      await direct?.close();
      await file.close();
      if (err instanceof StoreError && err.kind === 'Corrupt') shardMetrics.corrupt();
      // Deleted between the two opens: as missing as if the first had failed.
      throw fileError(err, shardName(ref));
    }
  }

  async delete(ref: ShardRef): Promise<boolean> {
    validateShardRef(ref);
    const path = this.pathOf(ref);
    try {
      const { size } = await stat(path);
      await unlink(path);
      this.usedBytes -= size;
      this.shardCount--;
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  /** Reads every block of a shard and reports OK, MISSING or CORRUPT with the first bad block. */
  async verify(ref: ShardRef, onBlockRead: (bytes: number) => Promise<void> = async () => {}): Promise<ShardCheck> {
    let reader: ShardReader;
    try {
      reader = await this.openShard(ref);
    } catch (err) {
      if (err instanceof StoreError && err.kind === 'NotFound') return unreadableShard(ref, 'MISSING');
      if (err instanceof StoreError && err.kind === 'Corrupt') return unreadableShard(ref, 'CORRUPT');
      throw err;
    }
    const buffer = this.blockBuffer(reader.layout.blockSize);
    try {
      for (let block = 0; block < reader.blockCount; block++) {
        const data = await reader.readBlock(block, buffer);
        if (!reader.blockIsIntact(block, data)) {
          shardMetrics.corrupt();
          return { shard: ref, state: 'CORRUPT', bytes: reader.fileBytes, dataBytes: reader.layout.dataLength, badBlock: block };
        }
        await onBlockRead(data.length);
      }
      return { shard: ref, state: 'OK', bytes: reader.fileBytes, dataBytes: reader.layout.dataLength, badBlock: 0 };
    } finally {
      this.returnBuffer(buffer);
      await reader.close();
    }
  }

  /** Every shard file and leftover temp file on disk (temp files being written right now excluded). */
  async *files(): AsyncGenerator<ShardFileEntry> {
    for (const bucket of (await readdir(this.shardsDir)).sort()) {
      const dir = join(this.shardsDir, bucket);
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        if (name.endsWith(TEMP_SUFFIX)) {
          yield* this.leftoverTemp(dir, name);
          continue;
        }
        const shard = parseShardFileName(name);
        const info = shard && (await stat(join(dir, name)).catch(() => undefined));
        if (shard && info) yield { shard, path: join(dir, name), bytes: info.size, mtimeMs: info.mtimeMs, temp: false };
      }
    }
    for (const name of await readdir(this.tmpDir)) yield* this.leftoverTemp(this.tmpDir, name);
  }

  /** A temp file `name` in `dir`, unless a write is filling it now. */
  private async *leftoverTemp(dir: string, name: string): AsyncGenerator<ShardFileEntry> {
    const path = join(dir, name);
    if (this.writing.has(path)) return;
    const info = await stat(path).catch(() => undefined);
    const shard = parseShardFileName(name.split('.').slice(0, -2).join('.')) ?? { dataId: name, shardIndex: 0 };
    if (info) yield { shard, path, bytes: info.size, mtimeMs: info.mtimeMs, temp: true };
  }

  /** Removes a file found by files(); returns whether it was there. */
  async removeFile(entry: ShardFileEntry): Promise<boolean> {
    if (!entry.temp) return this.delete(entry.shard);
    return unlink(entry.path).then(() => true, () => false);
  }
}

/** An open shard file whose blocks are read and checked one at a time. */
export class ShardReader {
  readonly blockCount: number;

  constructor(
    private readonly file: FileHandle,
    /** The same file opened for direct reads, where its blocks are aligned. */
    private direct: FileHandle | undefined,
    readonly layout: ShardLayout,
    readonly name: string,
    readonly fileBytes: number,
  ) {
    this.blockCount = layout.checksums.length;
  }

  /**
   * Reads `count` blocks from block `first` (fewer at the end of the shard) into `buffer` (at
   * least count * blockSize long; one from ShardStore.blockBuffer() is read directly) and returns
   * the filled part.
   */
  async readBlocks(first: number, count: number, buffer: Buffer): Promise<Buffer> {
    const start = first * this.layout.blockSize;
    const length = Math.max(0, Math.min(count * this.layout.blockSize, this.layout.dataLength - start));
    if (this.direct && fitsDirectRead(buffer, length)) {
      // A direct read covers whole aligned pieces: the last block's read runs into the checksum table.
      const read = await unlessRefused(readInto(this.direct, buffer, start, length, alignUp(length)));
      if (read) return read;
      const direct = this.direct; // refused by the file system: read through the page cache from now on
      this.direct = undefined;
      await direct.close();
    }
    return readInto(this.file, buffer, start, length, length);
  }

  readBlock(index: number, buffer: Buffer): Promise<Buffer> {
    return this.readBlocks(index, 1, buffer);
  }

  blockIsIntact(index: number, data: Buffer): boolean {
    const expected = Math.min(this.layout.blockSize, this.layout.dataLength - index * this.layout.blockSize);
    return data.length === expected && blockChecksum(data) === this.layout.checksums[index];
  }

  /** Reads blocks as readBlocks() does and throws DATA_LOSS-worthy Corrupt for the first that fails its checksum. */
  async readVerifiedBlocks(first: number, count: number, buffer: Buffer): Promise<Buffer> {
    const data = await this.readBlocks(first, count, buffer);
    const { blockSize } = this.layout;
    const blocks = Math.min(count, this.blockCount - first);
    for (let i = 0; i < blocks; i++) {
      if (!this.blockIsIntact(first + i, data.subarray(i * blockSize, (i + 1) * blockSize))) {
        shardMetrics.corrupt();
        throw new StoreError('Corrupt', `shard ${this.name}: block ${first + i} failed its xxHash64 check`, { block: first + i });
      }
    }
    shardMetrics.read(data.length);
    return data;
  }

  readVerifiedBlock(index: number, buffer: Buffer): Promise<Buffer> {
    return this.readVerifiedBlocks(index, 1, buffer);
  }

  async close(): Promise<void> {
    await this.direct?.close();
    await this.file.close();
  }
}

/** Reads up to `want` bytes at `position` into `buffer`; returns the first `length` of those read. */
async function readInto(file: FileHandle, buffer: Buffer, position: number, length: number, want: number): Promise<Buffer> {
  let read = 0;
  while (read < length) {
    const { bytesRead } = await file.read(buffer, read, want - read, position + read);
    if (bytesRead === 0) break;
    read += bytesRead;
  }
  return buffer.subarray(0, Math.min(read, length));
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
