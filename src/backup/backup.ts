// One backup of one disk: decide which chunks to read (dirty bitmap, allocation map), read them
// over NBD with several requests in flight, name each by its hash, upload only chunks the store
// lacks (packed) and the index pages that changed; only once every pack is stored the index file
// and the snapshot, which therefore never becomes visible before everything it references is stored.
import { BufferPool } from '../common/buffer-pool.js';
import { startLimited } from '../common/concurrency.js';
import { type Extent, BASE_ALLOCATION, DIRTY, StateFlag } from './nbd/protocol.js';
import type { ChunkPiece } from './codec-tasks.js';
import { BlobType, ID_BYTES, isZeroIdAt, Snapshot, ZERO_ID } from './format.js';
import { EncodeLanes } from './encode-lanes.js';
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
  /** Batches of chunks hashed, compressed and encrypted at once, on libuv's threads (default: one per core, at most 4; 0 = inline). */
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
/** Longer spans are asked about in parts this long, so that a full read's reading starts early. */
const STATUS_SPAN = 64 * 1024 * 1024;

/**
 * Everything that needs no lock starts at once: the newest snapshot, the source (qemu tools, QMP;
 * a qcow2's checkpoint and server do not wait for the snapshot), the local cache's chunk ids and
 * their tree (checked against the parent once it is known). The lock is announced before gc's
 * hand-off and the index are read, as gc counts on that.
 */
export async function backup(repo: Repository, request: BackupRequest): Promise<Snapshot> {
  const started = Date.now();
  const snapshotId = request.snapshotId ?? newId(new Date(started));
  const cache = ChunkIdCache.forBucket(repo.store.bucket, repo.codec);
  const cachedIds = cache.load(request.disk, DEFAULT_FANOUT);
  cachedIds.catch(() => undefined); // awaited once the parent is known
  const lanes = new EncodeLanes(repo.codec, request.codecThreads);
  const locking = traced('lock', repo.acquireLock('backup'));
  const listing = traced('latest snapshot', repo.latestSnapshot(request.disk));
  const loading = locking.then(() => traced('load index', Promise.all([repo.readGcPending(), repo.loadIndex()])));
  const inspecting = request.open ? undefined : inspectSource(request.source);
  const open = request.open ?? ((r: SourceRequest) => openSource(r, inspecting));
  const opening = traced('open source', open({ source: request.source, disk: request.disk, snapshotId, parent: listing, bitmap: request.bitmap }));
  const readingParent = listing.then(async (parent) => {
    if (!parent || parent.chunkSize !== repo.config.chunkSize) return undefined;
    return traced('read parent ids', async () => (await cache.read(parent, cachedIds)) ?? readChunkIds(repo, (await loading)[1], parent));
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
    await run.readAndStore(lanes);
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
    await traced('close source and unlock', Promise.all([source?.finish(succeeded), lock?.release(), known.catch(() => undefined)]));
  }
}

/**
 * Buffers NBD reads land in, reused from read to read: the chunks are named and encoded in place
 * and the buffer comes back for the next read. A fresh buffer per read had cost a page fault per
 * 4 KiB and the GC's work of freeing it. Sizes are powers of two, so an incremental's many short
 * reads reuse short buffers and touch little memory.
 */
function readBuffers(readers: number): BufferPool {
  return new BufferPool(readers);
}

/** The smallest power of two of at least `length` (the sizes readBuffers() deals in). */
function readBufferSize(length: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(length, 1)));
}

/**
 * Buffers a read's stored chunks are encoded into, reused once the packs holding them are
 * uploaded: a fresh buffer per read had cost its pages' faults and, as memory outside the heap,
 * garbage collections of the main thread.
 */
function encodeBuffers(readers: number): BufferPool {
  return new BufferPool(2 * readers);
}

/** Sizes of encode buffers go up in these steps. */
const ENCODE_STEP = 256 * 1024;

/** `extent` cut into pieces of at most `size` bytes. */
function split(extent: Extent, size: number): Extent[] {
  const pieces: Extent[] = [];
  for (let at = 0; at < extent.length; at += size) pieces.push({ offset: extent.offset + at, length: Math.min(size, extent.length - at), flags: extent.flags });
  return pieces;
}

/** A function that runs `last` on its `calls`-th call. */
function afterCalls(calls: number, last: () => void): () => void {
  let left = calls;
  return () => {
    if (--left === 0) last();
  };
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
  /** Chunks that read as zeroes by the allocation map (of the spans asked about). */
  private readonly zero: Uint8Array;
  /** Set by readAndStore. */
  private encodeBuffers = encodeBuffers(0);
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
    this.zero = new Uint8Array(this.chunkCount);
    this.writer = new PackWriter(repo.store, repo.codec, {
      targetSize: request.packSize ?? DEFAULTS.packSize,
      maxUploads: request.maxUploads ?? DEFAULTS.maxUploads,
      retainUntil,
      onUploaded: (bytes) => { this.stats.bytesUploaded += bytes; },
    });
  }

  /**
   * Reads start as soon as the first spans' allocation is known: the queries for the rest are
   * answered meanwhile (an incremental's took 25-40 ms, all of it before its first read).
   */
  async readAndStore(lanes: EncodeLanes): Promise<void> {
    const wanted = await traced('dirty extents', this.chunksToRead());
    const spans = this.spans((i) => wanted[i] === 1).flatMap((span) => split(span, STATUS_SPAN));
    this.bytesToRead = spans.reduce((sum, s) => sum + s.length, 0);
    const readSize = Math.max(this.chunkSize, this.request.readSize ?? DEFAULTS.readSize);
    trace(`read ${spans.length} spans`);
    if (!this.request.packSize) this.writer.setTargetSize(Math.min(DEFAULTS.packSize, Math.max(MIN_PACK_SIZE, Math.floor(this.bytesToRead / PACKS_PER_BACKUP))));
    const readers = this.request.readConcurrency ?? this.readConcurrency(spans.reduce((n, s) => n + Math.ceil(s.length / readSize), 0));
    const buffers = readBuffers(readers);
    this.encodeBuffers = encodeBuffers(readers);
    const nextRun = this.runsToRead(spans, readSize);
    const worker = async () => {
      for (let run = await nextRun(); run; run = await nextRun()) {
        const buffer = buffers.take(readBufferSize(run.length));
        const data = await this.source.client.read(run.offset, run.length, buffer);
        this.stats.bytesRead += run.length;
        await this.storeChunks(lanes, run.offset / this.chunkSize, data);
        buffers.give(buffer);
        this.request.onProgress?.({ bytesToRead: this.bytesToRead, bytesRead: this.stats.bytesRead, bytesUploaded: this.stats.bytesUploaded });
      }
    };
    await Promise.all(Array.from({ length: readers }, worker));
    this.stats.allocatedBytes = this.countAllocated();
    trace('read and encoded');
  }

  /** Each request in flight waits for qemu-nbd: many small runs need many in flight. */
  private readConcurrency(runs: number): number {
    const averageRun = this.bytesToRead / Math.max(1, runs);
    return Math.min(MAX_READ_CONCURRENCY, Math.max(DEFAULTS.readConcurrency, Math.floor(READ_BYTES_IN_FLIGHT / averageRun)));
  }

  /**
   * The reads covering `spans` (each at most readSize) one by one as the spans' allocation comes
   * in, in span order: chunks that read as zeroes by the allocation map are recorded as zero and
   * never read. Undefined once all are handed out.
   */
  private runsToRead(spans: Extent[], readSize: number): () => Promise<Extent | undefined> {
    const layouts = startLimited(spans, STATUS_CONCURRENCY, (span) => this.nonZeroSpans(span));
    const ready: Extent[] = [];
    let nextSpan = 0;
    return async () => {
      while (ready.length === 0 && nextSpan < layouts.length) {
        for (const part of await layouts[nextSpan++]!) ready.push(...split(part, readSize));
      }
      return ready.shift();
    };
  }

  /** The parts of a span of wanted chunks to read: its zero chunks are recorded as zero. */
  private async nonZeroSpans(span: Extent): Promise<Extent[]> {
    const { client } = this.source;
    if (!client.hasContext(BASE_ALLOCATION)) return [span];
    for (const extent of await client.extents(BASE_ALLOCATION, span.offset, span.length)) {
      if (extent.flags & StateFlag.ZERO) this.markChunks(this.zero, extent, 'contained');
    }
    const first = span.offset / this.chunkSize;
    const end = first + Math.ceil(span.length / this.chunkSize);
    for (let i = first; i < end; i++) {
      if (!this.zero[i]) continue;
      this.bytesToRead -= this.chunkLength(i);
      this.recordChunk(i, ZERO_ID, this.chunkLength(i));
    }
    return this.spans((i) => this.zero[i] === 0, first, end);
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
    for (const extent of await (this.source.dirtyExtents ?? client.extents(dirtyContext))) {
      if (extent.flags & DIRTY) this.markChunks(wanted, extent, 'overlapping');
    }
    return wanted;
  }

  private markChunks(marks: Uint8Array, extent: Extent, mode: 'overlapping' | 'contained'): void {
    const end = extent.offset + extent.length;
    const first = mode === 'overlapping' ? Math.floor(extent.offset / this.chunkSize) : Math.ceil(extent.offset / this.chunkSize);
    for (let i = first; i < this.chunkCount && i * this.chunkSize < end; i++) {
      if (mode === 'overlapping' || i * this.chunkSize + this.chunkLength(i) <= end) marks[i] = 1;
    }
  }

  /** Contiguous byte ranges of the chunks from `first` to before `end` that are `marked`. */
  private spans(marked: (chunk: number) => boolean, first = 0, end = this.chunkCount): Extent[] {
    const spans: Extent[] = [];
    for (let i = first; i < end; i++) {
      if (!marked(i)) continue;
      const last = spans[spans.length - 1];
      const offset = i * this.chunkSize;
      if (last && last.offset + last.length === offset) last.length += this.chunkLength(i);
      else spans.push({ offset, length: this.chunkLength(i), flags: 0 });
    }
    return spans;
  }

  /**
   * Names the chunks of one read; encodes and packs those the store lacks. An incremental's dirty
   * chunks are new in nearly every case, so they are encoded in the same batch that names them
   * (which also lets the encoding run before the index is loaded).
   */
  private async storeChunks(lanes: EncodeLanes, first: number, read: Buffer): Promise<void> {
    const out = this.encodeBuffers.take(this.encodeRoom(read.length));
    const both = this.source.dirtyContext ? await lanes.nameAndEncode(read, this.chunkSize, out) : undefined;
    const named = both ?? await lanes.nameChunks(read, this.chunkSize);
    this.known ??= await this.loadingKnown;
    const fresh = this.freshChunks(first, named.ids, named.data.length);
    const { encoded, inOut } = both
      ? { encoded: fresh.map((chunk) => both.encoded[chunk.offset / this.chunkSize]!), inOut: both.inOut }
      : fresh.length > 0 ? await lanes.encode(named.data, fresh, out) : { encoded: [], inOut: false };
    const uploaded = inOut && fresh.length > 0 ? afterCalls(fresh.length, () => this.encodeBuffers.give(out)) : undefined;
    if (!uploaded) this.encodeBuffers.give(out);
    for (const [i, { id, length }] of fresh.entries()) {
      await this.writer.addStored({ id, type: BlobType.CHUNK, rawLength: length, compressed: encoded[i]!.compressed }, encoded[i]!.stored, uploaded);
    }
  }

  /** Records the ids of a read's chunks; returns the chunks to store (claimed now). */
  private freshChunks(first: number, ids: Buffer, readLength: number): ChunkPiece[] {
    const fresh: ChunkPiece[] = [];
    for (let k = 0; k * this.chunkSize < readLength; k++) {
      const id = ids.subarray(k * ID_BYTES, (k + 1) * ID_BYTES);
      const length = Math.min(this.chunkSize, readLength - k * this.chunkSize);
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
    return fresh;
  }

  /**
   * Room for the stored forms of a read's chunks: in steps of ENCODE_STEP, so that reads of
   * about the same length share buffers, each with the codec's overhead per chunk.
   */
  private encodeRoom(readLength: number): number {
    const room = Math.ceil(readLength / ENCODE_STEP) * ENCODE_STEP;
    return room + Math.ceil(room / this.chunkSize) * this.repo.codec.overhead;
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
