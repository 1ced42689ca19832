// One backup of one disk: decide which chunks to read (dirty bitmap, allocation map), read them
// over NBD with several requests in flight, name each by its hash, upload only chunks the store
// lacks (packed) and the index pages that changed; only once every pack is stored the index file
// and the snapshot, which therefore never becomes visible before everything it references is stored.
import { BufferPool } from '../common/buffer-pool.js';
import { mapLimited } from '../common/concurrency.js';
import { type Extent, BASE_ALLOCATION, DIRTY, StateFlag } from './nbd/protocol.js';
import { CodecPool } from './codec-pool.js';
import { BlobType, ID_BYTES, isZeroIdAt, Snapshot, ZERO_ID } from './format.js';
import { PackWriter } from './pack.js';
import { type BlobIndex, newId, type Repository } from './repository.js';
import { ChunkIdCache } from './id-cache.js';
import { inspectSource, openSource, type DiskSource, type SourceRequest } from './source.js';
import { trace, traced } from './trace.js';
import { buildTree, DEFAULT_FANOUT, readChunkIds } from './tree.js';

export interface BackupProgress {
  bytesToRead: number;
  bytesRead: number;
  bytesUploaded: number;
}

export interface BackupRequest {
  disk: string;
  source: string;
  /** The new snapshot's id, if the caller chose it (to open the source before calling); else a new one. */
  snapshotId?: string;
  /** NBD sources: bitmap with the changes since the last snapshot. */
  bitmap?: string;
  /** Opens the source instead of `openSource` (live VMs through QMP). */
  open?: (request: SourceRequest) => Promise<DiskSource>;
  /** Object Lock retention for everything this backup writes. */
  lockDays?: number;
  /** NBD reads in flight (default: enough for READ_BYTES_IN_FLIGHT, at least 8). */
  readConcurrency?: number;
  /** Bytes per NBD read. */
  readSize?: number;
  /** Threads for hashing, compression and encryption (default: one per core; 0 = inline). */
  codecThreads?: number;
  packSize?: number;
  maxUploads?: number;
  onProgress?: (progress: BackupProgress) => void;
  /** Messages for the operator (why a full read, ...). */
  onNotice?: (message: string) => void;
}

const DEFAULTS = { readConcurrency: 8, readSize: 2 * 1024 * 1024, packSize: 16 * 1024 * 1024, maxUploads: 4 };
/**
 * A backup reading little (an incremental) packs smaller, down to this: its first uploads start
 * sooner and the last one, which the backup waits for, is short.
 */
const MIN_PACK_SIZE = 4 * 1024 * 1024;
const PACKS_PER_BACKUP = 16;
/** Scattered small reads (an incremental) get more requests in flight, up to this many bytes. */
const READ_BYTES_IN_FLIGHT = 16 * 1024 * 1024;
const MAX_READ_CONCURRENCY = 64;
/** Allocation queries in flight, one per span of wanted chunks. */
const STATUS_CONCURRENCY = 32;

/**
 * Everything that needs no lock starts at once: the newest snapshot, the source (qemu tools, QMP;
 * a qcow2's checkpoint and server do not wait for the snapshot), the parent's chunk ids (from the local cache when it holds them). The lock is announced before
 * gc's hand-off and the index are read, as gc counts on that.
 */
export async function backup(repo: Repository, request: BackupRequest): Promise<Snapshot> {
  const started = Date.now();
  const snapshotId = request.snapshotId ?? newId(new Date(started));
  const cache = ChunkIdCache.forBucket(repo.store.bucket, repo.codec);
  const pool = CodecPool.perCore(repo.codec, request.codecThreads);
  const locking = traced('lock', repo.acquireLock('backup'));
  const listing = traced('latest snapshot', repo.latestSnapshot(request.disk));
  const loading = locking.then(() => traced('load index', Promise.all([repo.readGcPending(), repo.loadIndex()])));
  const inspecting = request.open ? undefined : inspectSource(request.source);
  const open = request.open ?? ((r: SourceRequest) => openSource(r, inspecting));
  const opening = traced('open source', open({ source: request.source, disk: request.disk, snapshotId, parent: listing, bitmap: request.bitmap }));
  const readingParent = listing.then(async (parent) => {
    if (!parent || parent.chunkSize !== repo.config.chunkSize) return undefined;
    return traced('read parent ids', async () => (await cache.read(parent)) ?? readChunkIds(repo, (await loading)[1], parent));
  });
  // Reading starts without the index: only the choice of what to upload waits for it.
  const known = loading.then(([pending, index]) => ({ index, condemned: new Set(pending.packs) }));
  known.catch(() => undefined); // awaited by the run
  const [locked, listed, opened, parentRead] = await Promise.allSettled([locking, listing, opening, readingParent]);
  let succeeded = false;
  try {
    if (locked.status === 'rejected') throw locked.reason;
    if (listed.status === 'rejected') throw listed.reason;
    if (opened.status === 'rejected') throw opened.reason;
    const parent = listed.value;
    const source = opened.value;
    if (source.fullReadReason) request.onNotice?.(`full read: ${source.fullReadReason}`);
    const retainUntil = request.lockDays ? new Date(started + request.lockDays * 86_400_000) : undefined;
    const sameDisk = parent?.diskSize === source.client.size;
    if (sameDisk && parentRead.status === 'rejected') throw parentRead.reason;
    const parentIds = sameDisk && parentRead.status === 'fulfilled' ? parentRead.value : undefined;
    const run = new BackupRun(repo, known, source, request, parentIds, retainUntil);
    await run.readAndStore(pool);
    const { index } = await known;
    if (index.recovered.length > 0) request.onNotice?.(`resuming: ${index.recovered.length} packs of an interrupted backup are reused`);
    // The image's server stops while the last packs upload; only the checkpoint waits for the snapshot.
    const closingReader = traced('close reader', source.closeReading());
    closingReader.catch(() => undefined); // awaited below, and by finish()
    // The ids are final: cached now (a copy that no snapshot matches is only ever a miss).
    const caching = cache.write(request.disk, run.chunkIds);
    const tree = await run.storeTree();
    const packs = await traced('upload packs', run.writer.finish());
    await closingReader;
    const indexed = [...packs, ...index.recovered];
    const snapshot = Snapshot.create({
      id: snapshotId,
      disk: request.disk,
      timeMs: started,
      diskSize: source.client.size,
      chunkSize: repo.config.chunkSize,
      fanout: DEFAULT_FANOUT,
      root: tree.root,
      depth: tree.depth,
      parent: parent?.id ?? '',
      checkpoint: source.checkpoint,
      source: source.description,
      incremental: source.dirtyContext !== undefined,
      ...run.stats,
      durationMs: Date.now() - started,
      lockUntilMs: retainUntil?.getTime() ?? 0,
    });
    // Every pack is stored, so the snapshot need not wait for the index file: a reader finds the
    // blobs of packs no index file names from their trailers (as after an interrupted backup).
    await Promise.all([
      indexed.length > 0 ? traced('write index', repo.writeIndex(snapshotId, indexed, retainUntil)) : undefined,
      traced('save snapshot', repo.saveSnapshot(snapshot)),
      caching,
    ]);
    succeeded = true;
    return snapshot;
  } finally {
    const source = opened.status === 'fulfilled' ? opened.value : undefined;
    const lock = locked.status === 'fulfilled' ? locked.value : undefined;
    await traced('close source and unlock', Promise.all([source?.finish(succeeded), lock?.release(), pool.close(), known.catch(() => undefined)]));
  }
}

/**
 * Buffers NBD reads land in, reused from read to read: in shared memory, so the codec threads
 * name and encode the chunks in place and the buffer comes back for the next read. A fresh
 * buffer per read had cost a page fault per 4 KiB and the GC's work of freeing it. Sizes are
 * powers of two, so an incremental's many short reads reuse short buffers and touch little memory.
 */
function readBuffers(readers: number): BufferPool {
  return new BufferPool(readers, (size) => Buffer.from(new SharedArrayBuffer(size)));
}

/** The smallest power of two of at least `length` (the sizes readBuffers() deals in). */
function readBufferSize(length: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(length, 1)));
}

/** The blobs the store holds, and the packs gc condemned (whose blobs are not reused). */
interface KnownBlobs {
  index: BlobIndex;
  condemned: ReadonlySet<string>;
}

class BackupRun {
  readonly writer: PackWriter;
  readonly stats = { bytesRead: 0, bytesChanged: 0, bytesUploaded: 0, allocatedBytes: 0, chunksNew: 0, chunksReused: 0 };
  private readonly chunkSize: number;
  private readonly chunkCount: number;
  /** The chunk ids of the disk as this backup found it, ID_BYTES per chunk. */
  readonly chunkIds: Buffer;
  /** Chunks this backup decided to store (their encoding may still be running). */
  private readonly claimed = new Set<string>();
  private bytesToRead = 0;
  /** Set once `loadingKnown` is. */
  private known: KnownBlobs | undefined;

  constructor(
    private readonly repo: Repository,
    private readonly loadingKnown: Promise<KnownBlobs>,
    private readonly source: DiskSource,
    private readonly request: BackupRequest,
    private readonly parentIds: Buffer | undefined,
    retainUntil: Date | undefined,
  ) {
    this.chunkSize = repo.config.chunkSize;
    this.chunkCount = Math.ceil(source.client.size / this.chunkSize);
    this.chunkIds = Buffer.alloc(this.chunkCount * ID_BYTES);
    this.writer = new PackWriter(repo.store, repo.codec, {
      targetSize: request.packSize ?? DEFAULTS.packSize,
      maxUploads: request.maxUploads ?? DEFAULTS.maxUploads,
      retainUntil,
      onUploaded: (bytes) => { this.stats.bytesUploaded += bytes; },
    });
  }

  async readAndStore(pool: CodecPool): Promise<void> {
    const wanted = await traced('dirty extents', this.chunksToRead());
    const zero = await traced('zero extents', this.zeroChunks(wanted));
    const runs = this.readRuns(wanted, zero);
    trace(`read ${runs.length} runs`);
    this.bytesToRead = runs.reduce((sum, r) => sum + r.length, 0);
    if (!this.request.packSize) this.writer.setTargetSize(Math.min(DEFAULTS.packSize, Math.max(MIN_PACK_SIZE, Math.floor(this.bytesToRead / PACKS_PER_BACKUP))));
    let next = 0;
    const readers = this.request.readConcurrency ?? this.readConcurrency(runs);
    const buffers = readBuffers(readers);
    const worker = async () => {
      while (next < runs.length) {
        const run = runs[next++]!;
        const buffer = buffers.take(readBufferSize(run.length));
        const data = await this.source.client.read(run.offset, run.length, buffer);
        this.stats.bytesRead += run.length;
        await this.storeChunks(pool, run.offset / this.chunkSize, data);
        buffers.give(buffer);
        this.request.onProgress?.({ bytesToRead: this.bytesToRead, bytesRead: this.stats.bytesRead, bytesUploaded: this.stats.bytesUploaded });
      }
    };
    await Promise.all(Array.from({ length: readers }, worker));
    this.stats.allocatedBytes = this.countAllocated();
    trace('read and encoded');
  }

  /** Each request in flight waits for qemu-nbd: many small runs need many in flight. */
  private readConcurrency(runs: Extent[]): number {
    const averageRun = this.bytesToRead / Math.max(1, runs.length);
    return Math.min(MAX_READ_CONCURRENCY, Math.max(DEFAULTS.readConcurrency, Math.floor(READ_BYTES_IN_FLIGHT / averageRun)));
  }

  /** Uploads the index pages the store lacks; pages of unchanged regions are the parent's. */
  async storeTree(): Promise<{ root: Buffer; depth: number }> {
    this.known ??= await this.loadingKnown;
    const tree = buildTree(this.chunkIds, DEFAULT_FANOUT, (body) => this.repo.codec.idOf(body));
    for (const page of tree.pages) {
      if (!this.stored(page.id)) await this.writer.add(page.id, BlobType.PAGE, page.body);
    }
    return tree;
  }

  /** Chunks to read: those the dirty bitmap names (the rest are the parent's), or all. */
  private async chunksToRead(): Promise<Uint8Array> {
    const wanted = new Uint8Array(this.chunkCount);
    const { dirtyContext, client } = this.source;
    if (!dirtyContext || !this.parentIds) return wanted.fill(1);
    this.parentIds.copy(this.chunkIds);
    for (const extent of await client.extents(dirtyContext)) {
      if (extent.flags & DIRTY) this.markChunks(wanted, extent, 'overlapping');
    }
    return wanted;
  }

  /** Wanted chunks that read as zeroes by the allocation map: recorded as zero, never read. */
  private async zeroChunks(wanted: Uint8Array): Promise<Uint8Array> {
    const zero = new Uint8Array(this.chunkCount);
    const { client } = this.source;
    if (!client.hasContext(BASE_ALLOCATION)) return zero;
    await mapLimited(this.spans(wanted), STATUS_CONCURRENCY, async (span) => {
      for (const extent of await client.extents(BASE_ALLOCATION, span.offset, span.length)) {
        if (extent.flags & StateFlag.ZERO) this.markChunks(zero, extent, 'contained');
      }
    });
    for (let i = 0; i < this.chunkCount; i++) {
      if (zero[i] && wanted[i]) this.recordChunk(i, ZERO_ID, this.chunkLength(i));
    }
    return zero;
  }

  private markChunks(marks: Uint8Array, extent: Extent, mode: 'overlapping' | 'contained'): void {
    const end = extent.offset + extent.length;
    const first = mode === 'overlapping' ? Math.floor(extent.offset / this.chunkSize) : Math.ceil(extent.offset / this.chunkSize);
    for (let i = first; i < this.chunkCount && i * this.chunkSize < end; i++) {
      if (mode === 'overlapping' || i * this.chunkSize + this.chunkLength(i) <= end) marks[i] = 1;
    }
  }

  /** Contiguous byte ranges of marked chunks. */
  private spans(marks: Uint8Array): Extent[] {
    const spans: Extent[] = [];
    for (let i = 0; i < this.chunkCount; i++) {
      if (!marks[i]) continue;
      const last = spans[spans.length - 1];
      const offset = i * this.chunkSize;
      if (last && last.offset + last.length === offset) last.length += this.chunkLength(i);
      else spans.push({ offset, length: this.chunkLength(i), flags: 0 });
    }
    return spans;
  }

  /** NBD reads covering the chunks to read, each at most readSize. */
  private readRuns(wanted: Uint8Array, zero: Uint8Array): Extent[] {
    const toRead = wanted.map((w, i) => (w && !zero[i] ? 1 : 0));
    const maxLength = Math.max(this.chunkSize, this.request.readSize ?? DEFAULTS.readSize);
    return this.spans(toRead).flatMap((span) => {
      const runs: Extent[] = [];
      for (let at = 0; at < span.length; at += maxLength) {
        runs.push({ offset: span.offset + at, length: Math.min(maxLength, span.length - at), flags: 0 });
      }
      return runs;
    });
  }

  /** Names the chunks of one read; encodes and packs those the store lacks. */
  private async storeChunks(pool: CodecPool, first: number, read: Buffer): Promise<void> {
    const { ids, data } = await pool.nameChunks(read, this.chunkSize);
    this.known ??= await this.loadingKnown;
    const fresh: Array<{ id: Buffer; offset: number; length: number }> = [];
    for (let k = 0; k * this.chunkSize < data.length; k++) {
      const id = ids.subarray(k * ID_BYTES, (k + 1) * ID_BYTES);
      const length = Math.min(this.chunkSize, data.length - k * this.chunkSize);
      this.recordChunk(first + k, id, length);
      if (id.equals(ZERO_ID)) continue;
      if (this.stored(id)) {
        this.stats.chunksReused++;
        continue;
      }
      // Claimed now, so a concurrent read of the same content reuses it instead of storing it twice.
      this.claimed.add(id.toString('hex'));
      this.stats.chunksNew++;
      fresh.push({ id, offset: k * this.chunkSize, length });
    }
    if (fresh.length === 0) return;
    const encoded = await pool.encode(data, fresh);
    for (const [i, { id, length }] of fresh.entries()) {
      await this.writer.addStored({ id, type: BlobType.CHUNK, rawLength: length, compressed: encoded[i]!.compressed }, encoded[i]!.stored);
    }
  }

  private recordChunk(i: number, id: Buffer, length: number): void {
    const at = i * ID_BYTES;
    if (this.parentIds && !this.parentIds.subarray(at, at + ID_BYTES).equals(id)) this.stats.bytesChanged += length;
    if (!this.parentIds) this.stats.bytesChanged += id.equals(ZERO_ID) ? 0 : length;
    id.copy(this.chunkIds, at);
  }

  /** In the store (outside packs gc condemned) or already being written by this backup. */
  private stored(id: Buffer): boolean {
    const { index, condemned } = this.known!;
    const location = index.get(id);
    const hex = id.toString('hex');
    return (location !== undefined && !condemned.has(location.pack)) || this.claimed.has(hex) || this.writer.has(hex);
  }

  private chunkLength(i: number): number {
    return Math.min(this.chunkSize, this.source.client.size - i * this.chunkSize);
  }

  private countAllocated(): number {
    let bytes = 0;
    for (let i = 0; i < this.chunkCount; i++) {
      if (!isZeroIdAt(this.chunkIds, i)) bytes += this.chunkLength(i);
    }
    return bytes;
  }
}
