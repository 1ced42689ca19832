// A backup's chunk naming and encoding (hash, compress, seal: native/backup/encode.c) on libuv's
// thread pool, a batch per call, as many batches at a time as there are lanes (one per core, up to
// libuv's four threads); a batch queued behind them takes the first lane that frees, in native
// code, without waiting for a turn of the busy main thread. Worker threads had cost ~60 ms of CPU
// each to start (Node bootstraps its internals in every worker), a message each way per batch,
// and their own garbage collection: most of the CPU a small incremental spent outside its codec
// work. The batches' memory stays where it is: reads and outputs are left alone until their
// batch is done.
import { availableParallelism } from 'node:os';
import type { BlobCodec, EncodedBlob } from './blob-codec.js';
import { ID_BYTES, isZeroIdAt } from './chunk-id.js';
import { type ChunkPiece, packIds, packPieces } from './codec-tasks.js';
import { backupAddon, type NativeEncoder } from './native-backup.js';

/** libuv's thread pool runs 4 jobs at a time (UV_THREADPOOL_SIZE). */
const MAX_LANES = 4;

interface Batch {
  chunkSize: number;
  ids: Uint8Array;
  pieces: Float64Array | null;
  out: Buffer | null;
  stored: Float64Array | null;
}

export class EncodeLanes {
  private readonly encoder: NativeEncoder;

  /** `lanes` batches at a time (default one per core); 0 runs each batch on the calling thread. */
  constructor(codec: BlobCodec, private readonly lanes = Math.min(MAX_LANES, availableParallelism())) {
    this.encoder = codec.newEncoder(Math.max(1, lanes));
  }

  /** Chunk ids of `data` cut into chunkSize pieces, ID_BYTES each (ZERO_ID for all-zero chunks). */
  async nameChunks(data: Buffer, chunkSize: number): Promise<{ ids: Buffer; data: Buffer }> {
    const ids = Buffer.alloc(Math.ceil(data.length / chunkSize) * ID_BYTES);
    await this.run(data, { chunkSize, ids, pieces: null, out: null, stored: null });
    return { ids, data };
  }

  /**
   * Stored forms of pieces of `data`, written into `out` (room for each piece plus the codec's
   * overhead), which the caller reuses once the blobs are uploaded. A well-compressed batch is
   * copied to a buffer of its own, and then `inOut` is false: `out` is free at once.
   */
  async encode(data: Buffer, blobs: ChunkPiece[], out: Buffer): Promise<{ encoded: EncodedBlob[]; inOut: boolean }> {
    const stored = new Float64Array(blobs.length * 2);
    const written = await this.run(data, { chunkSize: 0, ids: packIds(blobs), pieces: packPieces(blobs), out, stored });
    return storedForms(out, written, stored);
  }

  /**
   * nameChunks, and encode of every chunk that is not all zero, in one batch (for reads whose
   * chunks are new in nearly every case); `encoded` is undefined for a zero chunk.
   */
  async nameAndEncode(data: Buffer, chunkSize: number, out: Buffer): Promise<{ ids: Buffer; data: Buffer; encoded: Array<EncodedBlob | undefined>; inOut: boolean }> {
    const ids = Buffer.alloc(Math.ceil(data.length / chunkSize) * ID_BYTES);
    const stored = new Float64Array(ids.length / ID_BYTES * 2);
    const written = await this.run(data, { chunkSize, ids, pieces: null, out, stored });
    const { encoded, inOut } = storedForms(out, written, stored);
    return { ids, data, encoded: encoded.map((blob, i) => (isZeroIdAt(ids, i) ? undefined : blob)), inOut };
  }

  private async run(data: Buffer, { chunkSize, ids, pieces, out, stored }: Batch): Promise<number> {
    const addon = backupAddon();
    if (this.lanes === 0) return addon.encodeBatch(this.encoder, data, chunkSize, ids, pieces, out, stored);
    return new Promise<number>((resolve, reject) => {
      addon.encodeBatch(this.encoder, data, chunkSize, ids, pieces, out, stored, (error, written) => (error ? reject(error) : resolve(written)));
    });
  }
}

/**
 * The blobs `stored` describes (length, compressed each), back to back in `out`; moved to a
 * buffer their size when they fill less than half of it.
 */
function storedForms(out: Buffer, written: number, stored: Float64Array): { encoded: EncodedBlob[]; inOut: boolean } {
  const inOut = written >= out.length / 2;
  const from = inOut ? out : Buffer.from(out.subarray(0, written));
  let at = 0;
  const encoded = Array.from({ length: stored.length / 2 }, (_, i) => {
    at += stored[2 * i]!;
    return { stored: from.subarray(at - stored[2 * i]!, at), compressed: stored[2 * i + 1] === 1 };
  });
  return { encoded, inOut };
}
