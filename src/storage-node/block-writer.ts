// Writing a shard's incoming bytes into its file: cut into blocks, one xxHash64 per block, written
// in large direct writes (see direct-file.ts). Bytes that arrive in memory the sender keeps (a
// bulk connection's shared-memory ring) are written straight from it, whole blocks at a time:
// copying them into a write buffer first was a node's largest cost per byte after the checksum.
import { BufferPool } from '../common/buffer-pool.js';
import { DIRECT_ALIGN } from '../common/direct-io.js';
import type { NewFile } from './direct-file.js';
import { blockChecksum, encodeTrailer } from './shard-file.js';

/** A piece of a shard's bytes; see ShardSource. */
export interface ShardPiece {
  bytes: Uint8Array;
  /**
   * Set on a lent piece: its memory starts on a DIRECT_ALIGN boundary and stays as it is until
   * the source is released up to `lentEnd`. Lent pieces come in order of their lentEnd.
   */
  lentEnd?: number;
}

/** A shard's bytes as they arrive, as many pieces at a time as have come. */
export interface ShardSource {
  /** The next pieces in order; undefined at the end. Pieces not lent are valid until the next call. */
  next(): Promise<readonly ShardPiece[] | undefined>;
  /** The writer is done with the lent pieces up to `lentEnd` (and every one before). */
  release(lentEnd: number): void;
}

/** A source of chunks that are each valid until the next is asked for. */
export function chunkSource(chunks: AsyncIterable<Uint8Array>): ShardSource {
  const iterator = chunks[Symbol.asyncIterator]();
  return {
    next: async () => {
      const item = await iterator.next();
      return item.done ? undefined : [{ bytes: item.value }];
    },
    release: () => undefined,
  };
}

/**
 * Bytes gathered per file write: one large write instead of one per block (each costs a thread-pool
 * round trip); as much as a bulk client sends at once (bulk-client.ts, RING_BYTES_PER_SEND).
 */
const WRITE_BATCH_BYTES = 2 * 1024 * 1024;

/** A file write in flight: the copy buffer it writes from, or the lent bytes to release after it. */
interface Writing {
  done: Promise<void>;
  batch?: Buffer;
  lentEnd?: number;
}

/** Whole lent blocks, adjacent in memory, to be written in one go straight from the lender's memory. */
interface LentRun {
  first: Uint8Array;
  length: number;
  lentEnd: number;
}

/**
 * Cuts incoming data into blocks, checksums each and writes them in batches, reserving capacity
 * first. One batch is written while the next fills (a direct write returns only once the disk has
 * the bytes). A batch is either whole lent blocks written from their own memory, or a copy buffer:
 * whole blocks plus room for the under-DIRECT_ALIGN rest a direct write leaves behind (already
 * checksummed), which starts the next copy buffer.
 */
export class BlockWriter {
  reserved = 0;
  private readonly batchBytes: number;
  /** Whether blocks start at aligned file offsets, as a direct write from lent memory needs. */
  private readonly blocksAligned: boolean;
  private batch: Buffer;
  private filled = 0;
  /** Where the block being filled starts in the copy buffer. */
  private blockStart = 0;
  private dataLength = 0;
  private readonly checksums: bigint[] = [];
  private writing: Writing | undefined;
  private run: LentRun | undefined;

  constructor(
    private readonly file: NewFile,
    private readonly blockSize: number,
    private readonly batches: BufferPool,
    private readonly reserve: (bytes: number) => void,
  ) {
    this.batchBytes = blockSize * Math.max(1, Math.floor(WRITE_BATCH_BYTES / blockSize)) + DIRECT_ALIGN;
    this.batch = batches.take(this.batchBytes);
    this.blocksAligned = blockSize % DIRECT_ALIGN === 0;
  }

  /** Writes everything and closes the file, durable; the caller closes it on failure. */
  async writeAll(source: ShardSource): Promise<{ dataLength: number; fileBytes: number; blocks: number }> {
    try {
      for (let pieces = await source.next(); pieces; pieces = await source.next()) {
        for (const piece of pieces) {
          if (piece.lentEnd !== undefined && this.fitsInPlace(piece.bytes)) await this.takeInPlace(piece.bytes, piece.lentEnd, source);
          else await this.copy(piece, source);
        }
        // The lender waits for its memory: what arrived together goes to disk now.
        await this.writeRun(source);
      }
      await this.settle(source);
      return await this.finish();
    } finally {
      // A write still in flight must end before its memory is reused.
      await this.writing?.done.catch(() => {});
      if (this.writing?.batch) this.batches.give(this.writing.batch);
      this.batches.give(this.batch);
    }
  }

  /** Whether a lent piece is a whole block that can be written from where it is. */
  private fitsInPlace(bytes: Uint8Array): boolean {
    return this.blocksAligned && bytes.length === this.blockSize && this.filled === this.blockStart
      && this.file.direct && bytes.byteOffset % DIRECT_ALIGN === 0;
  }

  private async takeInPlace(bytes: Uint8Array, lentEnd: number, source: ShardSource): Promise<void> {
    if (this.filled > 0) await this.writeBatch(source); // whole blocks copied before this one go first
    this.addBlock(bytes);
    const run = this.run;
    if (run && run.length < WRITE_BATCH_BYTES && bytes.buffer === run.first.buffer && bytes.byteOffset === run.first.byteOffset + run.length) {
      run.length += bytes.length;
      run.lentEnd = lentEnd;
      return;
    }
    await this.writeRun(source);
    this.run = { first: bytes, length: bytes.length, lentEnd };
  }

  /** Copies a piece into the copy buffer, writing the buffer whenever it holds no room for another block. */
  private async copy(piece: ShardPiece, source: ShardSource): Promise<void> {
    await this.writeRun(source); // file order: lent blocks taken before this piece go first
    const { bytes } = piece;
    for (let used = 0; used < bytes.length;) {
      const take = Math.min(this.blockStart + this.blockSize - this.filled, bytes.length - used);
      this.batch.set(bytes.subarray(used, used + take), this.filled);
      this.filled += take;
      used += take;
      if (this.filled < this.blockStart + this.blockSize) continue;
      this.addBlock(this.batch.subarray(this.blockStart, this.filled));
      this.blockStart = this.filled;
      if (this.batch.length - this.filled < this.blockSize) await this.writeBatch(source);
    }
    if (piece.lentEnd !== undefined) this.releaseCopied(piece.lentEnd, source);
  }

  /** A lent piece is copied: it goes back now, or after the write from lent memory before it. */
  private releaseCopied(lentEnd: number, source: ShardSource): void {
    if (this.writing?.lentEnd !== undefined) this.writing.lentEnd = lentEnd;
    else source.release(lentEnd);
  }

  private addBlock(block: Uint8Array): void {
    this.checksums.push(blockChecksum(block));
    this.reserveFor(this.blockSize);
    this.dataLength += this.blockSize;
  }

  /** Starts writing the pending lent run (after the write in flight). */
  private async writeRun(source: ShardSource): Promise<void> {
    const run = this.run;
    if (!run) return;
    this.run = undefined;
    await this.settle(source);
    this.start({ done: this.file.append(Buffer.from(run.first.buffer, run.first.byteOffset, run.length)), lentEnd: run.lentEnd });
  }

  /** Starts writing the copy buffer's aligned part (after the write in flight); the rest starts the next buffer. */
  private async writeBatch(source: ShardSource): Promise<void> {
    const length = this.file.direct ? this.filled - (this.filled % DIRECT_ALIGN) : this.filled;
    const next = this.batches.take(this.batchBytes);
    this.batch.copy(next, 0, length, this.filled);
    await this.settle(source);
    this.start({ batch: this.batch, done: this.file.append(this.batch.subarray(0, length)) });
    this.batch = next;
    this.filled = this.blockStart = this.filled - length;
  }

  private start(writing: Writing): void {
    writing.done.catch(() => {}); // awaited by settle()
    this.writing = writing;
  }

  /** Waits for the write in flight and hands back what it wrote from. */
  private async settle(source: ShardSource): Promise<void> {
    const writing = this.writing;
    if (!writing) return;
    await writing.done;
    this.writing = undefined;
    if (writing.batch) this.batches.give(writing.batch);
    if (writing.lentEnd !== undefined) source.release(writing.lentEnd);
  }

  /** Checksums the last (partial) block, appends it and the trailer and makes the file durable. */
  private async finish(): Promise<{ dataLength: number; fileBytes: number; blocks: number }> {
    const partial = this.filled - this.blockStart;
    if (partial > 0) this.checksums.push(blockChecksum(this.batch.subarray(this.blockStart, this.filled)));
    this.dataLength += partial;
    const trailer = encodeTrailer(this.checksums, this.blockSize, this.dataLength);
    this.reserveFor(partial + trailer.length);
    await this.file.finish([this.batch.subarray(0, this.filled), trailer]);
    return { dataLength: this.dataLength, fileBytes: this.dataLength + trailer.length, blocks: this.checksums.length };
  }

  /** Reserves capacity for bytes of the file before they are written. */
  private reserveFor(bytes: number): void {
    this.reserve(bytes);
    this.reserved += bytes;
  }
}
