// Writes a snapshot back to an image: raw (sparse file or block device) or qcow2 (through
// qemu-nbd). Chunks are fetched with coalesced ranged GETs in parallel and each is checked against
// its id (by its seal, or its hash), and the pages against theirs (or the locally cached chunk ids
// against the root), so the result is verified against the snapshot's root (its image hash).
// Over an existing image only chunks whose content differs are written.
import { constants, existsSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { mapLimited } from '../common/concurrency.js';
import { DIRECT_ALIGN, openDirect, unlessRefused } from '../common/direct-io.js';
import { nativeAddon } from '../common/native-addon.js';
import { ID_BYTES, isZeroIdAt, type Snapshot } from './format.js';
import { NbdClient } from './nbd/client.js';
import { StoreError } from '../common/errors.js';
import { CodecPool } from './codec-pool.js';
import { EncodeLanes } from './encode-lanes.js';
import { ChunkIdCache } from './id-cache.js';
import { backupAddon } from './native-backup.js';
import { planRangeReads, type RangeLimits, type RangeRead, readRange } from './pack.js';
import { type BlobIndex, type BlobLocation, type Repository } from './repository.js';
import { imageInfo, qemuImg, serveImage } from './qemu-tools.js';
import { trace, traced } from './trace.js';
import { readChunkIds } from './tree.js';
import { WriteQueue } from './write-queue.js';

export interface RestoreRequest {
  snapshot: Snapshot;
  to: string;
  format: 'raw' | 'qcow2';
  concurrency?: number;
  /** Threads for decryption, decompression and verification (default: by the amount to fetch). */
  codecThreads?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface RestoreSummary {
  snapshot: string;
  bytesWritten: number;
  bytesFetched: number;
  chunksUnchanged: number;
  durationMs: number;
}

/** Where restored bytes go. */
interface ImageTarget {
  existed: boolean;
  read(offset: number, length: number): Promise<Buffer>;
  /** Writes the parts back to back from `offset` (one pwritev or NBD request). */
  write(offset: number, parts: Buffer[]): Promise<void>;
  writeZeroes(offset: number, length: number): Promise<void>;
  close(): Promise<void>;
}

const COMPARE_READ = 2 * 1024 * 1024;
/** A raw image is flushed (fdatasync, in the background) each time this much more is written. */
const SYNC_EVERY = 256 * 1024 * 1024;
const WASM_PAGE = 64 * 1024;
const MiB = 1024 * 1024;
const HUGE_PAGE = 2 * MiB;
/**
 * A restore GETs whole packs, or most of them: the store spends less per byte on fewer, larger
 * GETs (0.45 vs 0.8 CPU-s for 0.5 GB in 16 vs 4 MiB GETs on the bench's all-in-one store).
 */
const RANGE_LIMITS: RangeLimits = { stored: 20 * MiB, plain: Infinity, gap: MiB };
const FETCHES_IN_FLIGHT = 4;
/**
 * Plaintext opened per codec task; slots of it wait for their writes (up to WRITES_IN_FLIGHT). 96
 * MiB in all (was 192): on huge pages (hugePagedShared) each costs its fault-in in every restore
 * (bench, latest of 3 days: 12 x 8 MiB 2.30-2.37 s, 8 x 8 MiB 2.40-2.86 s, 12 x 16 MiB 2.37-3.25 s).
 */
const PLAIN_BATCH = 8 * MiB;
const PLAIN_SLOTS = 12;
/**
 * Writes in flight and the most one joined write carries (NBD: below 32 MiB). libuv runs 4 at a
 * time; the 4 more waiting in its queue start as soon as a thread is free, not when the busy main
 * thread gets to it (the bench's restore writes replayed alone: 1.73-1.89 s at 8 vs 1.79-2.42 s at 4).
 */
const WRITES_IN_FLIGHT = 8;
const MAX_WRITE = 16 * MiB;
/**
 * Writes shorter than this wait aside (copied, up to PARK_ARENA bytes) for a neighbour to leave
 * with: chunks changed after the full backup sit in the runs of its packs like patches.
 */
const PARK_BELOW = 256 * 1024;
const PARK_ARENA = 256 * MiB;

export async function restore(repo: Repository, request: RestoreRequest): Promise<RestoreSummary> {
  const started = Date.now();
  const { snapshot } = request;
  // Threads start while the index loads; restoring over an image reads all of it to compare.
  const pool = CodecPool.forWork(repo.codec, existsSync(request.to) ? snapshot.diskSize : Number(snapshot.allocatedBytes || snapshot.diskSize), request.codecThreads);
  try {
    const [index, cached] = await traced('load index', Promise.all([repo.loadIndex(), ChunkIdCache.forBucket(repo.store.bucket, repo.codec).read(snapshot)]));
    const ids = cached ?? await traced('read chunk ids', readChunkIds(repo, index, snapshot));
    const target = await openTarget(request.to, request.format, snapshot.diskSize);
    try {
      const summary = await writeSnapshot(repo, index, ids, pool, target, request);
      return { ...summary, durationMs: Date.now() - started };
    } finally {
      await target.close();
    }
  } finally {
    await pool.close();
  }
}

/** Writes the chunks whose ids are `ids` (the snapshot's, in disk order) into `target`. */
async function writeSnapshot(repo: Repository, index: BlobIndex, ids: Buffer, pool: CodecPool, target: ImageTarget, request: RestoreRequest): Promise<RestoreSummary> {
  const { snapshot } = request;
  const summary = { snapshot: snapshot.id, bytesWritten: 0, bytesFetched: 0, chunksUnchanged: 0, durationMs: 0 };
  const count = ids.length / ID_BYTES;
  const chunkLength = (i: number) => Math.min(snapshot.chunkSize, snapshot.diskSize - i * snapshot.chunkSize);
  const writing: Array<Promise<void>> = [];
  try {
    const differs = target.existed ? await changedChunks(new EncodeLanes(repo.codec, request.codecThreads), target, ids, snapshot.chunkSize, chunkLength) : undefined;
    // The chunks each blob to fetch is written to, by its location (the objects the ranges carry):
    // looked up once per blob, not by id again as ranges are planned and written.
    const positions = new Map<BlobLocation, number[]>();
    const positionsById = new Map<string, number[]>();
    for (let i = 0; i < count; i++) {
      if (differs && !differs[i]) { summary.chunksUnchanged++; continue; }
      if (isZeroIdAt(ids, i)) {
        if (differs) { await target.writeZeroes(i * snapshot.chunkSize, chunkLength(i)); summary.bytesWritten += chunkLength(i); }
        continue;
      }
      const key = ids.toString('latin1', i * ID_BYTES, (i + 1) * ID_BYTES);
      const list = positionsById.get(key);
      if (list) { list.push(i); continue; }
      const location = index.get(ids.subarray(i * ID_BYTES, (i + 1) * ID_BYTES));
      if (!location) throw new StoreError('NotFound', `chunk ${ids.toString('hex', i * ID_BYTES, (i + 1) * ID_BYTES)} is missing from the repository`);
      const first = [i];
      positionsById.set(key, first);
      positions.set(location, first);
    }
    const ranges = scatteredFirst(planRangeReads([...positions.keys()], RANGE_LIMITS), positions);
    let done = 0;
    const fetches = Math.min(request.concurrency ?? FETCHES_IN_FLIGHT, ranges.length);
    // GET bodies and plaintexts live in memory the codec threads share, reused from range to
    // range (a buffer per range cost the main thread seconds of GC). A range is fetched into a
    // body and opened a batch at a time into plaintext slots, which return once written.
    const bodies = Array.from({ length: fetches }, () => Buffer.from(new SharedArrayBuffer(RANGE_LIMITS.stored)));
    const plains = hugePagedShared(PLAIN_SLOTS * PLAIN_BATCH);
    const plainSlots = new Slots(Array.from({ length: PLAIN_SLOTS }, (_, i) => plains.subarray(i * PLAIN_BATCH, (i + 1) * PLAIN_BATCH)));
    const queue = new WriteQueue((offset, parts) => target.write(offset, parts), {
      depth: WRITES_IN_FLIGHT,
      maxBytes: MAX_WRITE,
      park: { below: PARK_BELOW, arena: pageAlignedShared(PARK_ARENA), alignment: DIRECT_ALIGN },
    });
    let writeFailure: Error | undefined;
    const decodeAndWrite = async (body: Buffer, start: number, blobs: BlobLocation[]) => {
      const plain = await plainSlots.take();
      let opened: Buffer[];
      try {
        opened = await pool.decode(body, blobs.map(({ entry }) => ({ ...entry, offset: entry.offset - start })), plain);
      } catch (err) {
        plainSlots.give(plain);
        throw err;
      }
      const writes = blobs.flatMap((blob, i) => positions.get(blob)!.map((chunk) => ({ chunk, data: opened[i]! })));
      const written = Promise.all(adjacentRuns(writes).map(async (run) => {
        await queue.write(run.chunk * snapshot.chunkSize, run.parts);
        summary.bytesWritten += run.parts.reduce((sum, p) => sum + p.length, 0);
      }));
      writing.push(written.then(() => undefined, (err: Error) => { writeFailure ??= err; }).finally(() => plainSlots.give(plain)));
    };
    await mapLimited(ranges, fetches, async (range) => {
      if (writeFailure) throw writeFailure;
      const buffer = bodies.pop()!;
      try {
        const body = await readRange(repo.store, range, buffer);
        summary.bytesFetched += body.length;
        await Promise.all(plainBatches(range.blobs).map((blobs) => decodeAndWrite(body, range.start, blobs)));
      } finally {
        bodies.push(buffer);
      }
      request.onProgress?.(++done, ranges.length);
    });
    await Promise.all(writing);
    if (writeFailure) throw writeFailure;
    await queue.flush();
    trace(`fetched and wrote ${ranges.length} ranges`);
    return summary;
  } finally {
    await Promise.all(writing);
  }
}

/**
 * Whether a write can bypass the page cache (O_DIRECT): copying every byte into the cache and
 * writing it back cost the restore as much CPU as decompressing.
 */
function directAligned(offset: number, parts: Buffer[]): boolean {
  const aligned = (n: number) => n % DIRECT_ALIGN === 0;
  return aligned(offset) && parts.every((p) => aligned(p.byteOffset) && aligned(p.length));
}

/**
 * Shared memory whose start is page-aligned, as O_DIRECT writes from it must be: a shared
 * WebAssembly memory is mapped whole pages at a time (a plain SharedArrayBuffer comes from malloc).
 */
function pageAlignedShared(length: number): Buffer {
  const pages = Math.ceil(length / WASM_PAGE);
  return Buffer.from(new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true }).buffer, 0, length);
}

/**
 * pageAlignedShared() starting at a 2 MiB boundary and on transparent huge pages where the kernel
 * gives them: the disk sees a direct write as one request per ~0.5 MiB from 4 KiB pages, per 4 MiB
 * from huge pages, and this VM's disk pays per request (2.4 GB in 16 MiB direct writes: 1.72-1.89 s
 * in ~4,700 requests, 1.06-1.13 s in ~700). Not for the park arena: fresh huge pages cost ~2-4 ms
 * each here to fault in, and parked writes are few.
 */
function hugePagedShared(length: number): Buffer {
  const memory = pageAlignedShared(length + HUGE_PAGE);
  const start = nativeAddon.alignmentOffset(memory, HUGE_PAGE);
  const bytes = memory.subarray(start, start + length);
  backupAddon().adviseHugePages(bytes);
  return bytes;
}

/** The one WebAssembly API used here (the project's TypeScript libs do not declare it). */
declare const WebAssembly: { Memory: new (descriptor: { initial: number; maximum: number; shared: boolean }) => { buffer: SharedArrayBuffer } };

/** A range's blobs in batches that each open to at most PLAIN_BATCH bytes. */
function plainBatches(blobs: BlobLocation[]): BlobLocation[][] {
  const batches: BlobLocation[][] = [];
  let plain = Infinity;
  for (const blob of blobs) {
    if (plain + blob.entry.rawLength > PLAIN_BATCH) {
      batches.push([]);
      plain = 0;
    }
    batches[batches.length - 1]!.push(blob);
    plain += blob.entry.rawLength;
  }
  return batches;
}

/** Buffers handed out one at a time; taking waits while none is free. */
class Slots {
  private readonly waiting: Array<(slot: Buffer) => void> = [];

  constructor(private readonly free: Buffer[]) {}

  take(): Promise<Buffer> {
    const slot = this.free.pop();
    return slot ? Promise.resolve(slot) : new Promise((resolve) => this.waiting.push(resolve));
  }

  give(slot: Buffer): void {
    const next = this.waiting.shift();
    if (next) next(slot);
    else this.free.push(slot);
  }
}

/**
 * The ranges whose chunks land in the shortest runs on disk first (an incremental's packs hold
 * chunks from all over the disk): their writes are parked, and the long runs of the ranges that
 * follow (the full backup's packs) take them along as they pass, as one write.
 */
function scatteredFirst(ranges: RangeRead[], positions: Map<BlobLocation, number[]>): RangeRead[] {
  const averageRun = (range: RangeRead) => {
    const chunks = range.blobs.flatMap((blob) => positions.get(blob)!).sort((a, b) => a - b);
    const runs = chunks.reduce((n, chunk, i) => (i > 0 && chunks[i - 1]! + 1 === chunk ? n : n + 1), 0);
    return chunks.length / runs;
  };
  return ranges.map((range) => ({ range, run: averageRun(range) })).sort((a, b) => a.run - b.run).map(({ range }) => range);
}

/** Groups writes of consecutive chunks (one syscall or NBD request per run). */
function adjacentRuns(writes: Array<{ chunk: number; data: Buffer }>): Array<{ chunk: number; parts: Buffer[] }> {
  writes.sort((a, b) => a.chunk - b.chunk);
  const runs: Array<{ chunk: number; parts: Buffer[] }> = [];
  for (const { chunk, data } of writes) {
    const last = runs[runs.length - 1];
    if (last && last.chunk + last.parts.length === chunk) last.parts.push(data);
    else runs.push({ chunk, parts: [data] });
  }
  return runs;
}

/** Chunks of an existing image that differ from the snapshot (1 = differs). */
async function changedChunks(lanes: EncodeLanes, target: ImageTarget, ids: Buffer, chunkSize: number, chunkLength: (i: number) => number): Promise<Uint8Array> {
  const count = ids.length / ID_BYTES;
  const differs = new Uint8Array(count);
  const perRead = Math.max(1, Math.floor(COMPARE_READ / chunkSize));
  const starts = Array.from({ length: Math.ceil(count / perRead) }, (_, k) => k * perRead);
  await mapLimited(starts, 4, async (first) => {
    const last = Math.min(count, first + perRead);
    const data = await target.read(first * chunkSize, (last - 1 - first) * chunkSize + chunkLength(last - 1));
    const { ids: found } = await lanes.nameChunks(data, chunkSize);
    const want = ids.subarray(first * ID_BYTES, last * ID_BYTES);
    for (let i = first; i < last; i++) {
      const at = (i - first) * ID_BYTES;
      differs[i] = found.subarray(at, at + ID_BYTES).equals(want.subarray(at, at + ID_BYTES)) ? 0 : 1;
    }
  });
  return differs;
}

async function openTarget(path: string, format: 'raw' | 'qcow2', size: number): Promise<ImageTarget> {
  return format === 'qcow2' ? openQcow2Target(path, size) : openRawTarget(path, size);
}

async function openRawTarget(path: string, size: number): Promise<ImageTarget> {
  const existed = existsSync(path);
  const file: FileHandle = await open(path, existed ? 'r+' : 'w+');
  const { size: current } = await file.stat();
  if (current !== size && (await file.stat()).isFile()) await file.truncate(size);
  const zeroes = Buffer.alloc(1024 * 1024);
  const direct = await openDirect(path, constants.O_WRONLY);
  // What goes through the page cache is written back while the restore goes on, rather than all
  // of it in the final fsync.
  let unsynced = 0;
  let syncing: Promise<void> = Promise.resolve();
  let syncFailure: Error | undefined;
  return {
    existed: existed && current > 0,
    read: async (offset, length) => {
      const buffer = Buffer.alloc(length);
      await file.read(buffer, 0, length, offset);
      return buffer;
    },
    write: async (offset, parts) => {
      // A refused direct write (an alignment the device wants) goes through the page cache.
      if (direct && directAligned(offset, parts) && await unlessRefused(direct.writev(parts, offset))) return;
      const { bytesWritten } = await file.writev(parts, offset);
      unsynced += bytesWritten;
      if (unsynced < SYNC_EVERY) return;
      unsynced = 0;
      syncing = syncing.then(() => file.datasync()).catch((err: Error) => { syncFailure ??= err; });
    },
    writeZeroes: async (offset, length) => {
      for (let at = 0; at < length; at += zeroes.length) await file.write(zeroes, 0, Math.min(zeroes.length, length - at), offset + at);
    },
    close: async () => {
      await direct?.close();
      await syncing;
      if (syncFailure) throw syncFailure;
      await traced('fsync', file.sync());
      await file.close();
    },
  };
}

async function openQcow2Target(path: string, size: number): Promise<ImageTarget> {
  const existed = existsSync(path);
  if (existed) {
    const info = await imageInfo(path);
    if (info.format !== 'qcow2') throw new Error(`${path} exists and is ${info.format}, not qcow2`);
    if (info.virtualSize !== size) await qemuImg(['resize', '-f', 'qcow2', path, String(size)]);
  } else {
    await qemuImg(['create', '-q', '-f', 'qcow2', path, String(size)]);
  }
  const served = await serveImage(path, { format: 'qcow2', readOnly: false });
  const client = await NbdClient.connect(served.address).catch(async (err: Error) => { await served.stop(); throw err; });
  return {
    existed,
    read: (offset, length) => client.read(offset, length),
    write: (offset, parts) => client.write(offset, parts.length === 1 ? parts[0]! : Buffer.concat(parts)),
    writeZeroes: (offset, length) => client.writeZeroes(offset, length),
    close: async () => {
      await client.flush();
      await client.close();
      await served.stop();
    },
  };
}
