// Packs: many small blobs in one S3 object, so a backup makes a few requests per hundred MiB
// instead of one per chunk. Layout: blob bytes back to back, then the sealed PackTrailer (the
// pack's own index, so a pack whose index file never got written can still be recovered), then
// the trailer's length as 4 bytes big-endian. A pack is named by the SHA-256 of its trailer (packs
// written before were named by the SHA-256 of all their bytes; either is just a unique name).
import { createHash } from 'node:crypto';
import type { BlobCodec } from './blob-codec.js';
import { PackEntry, PackRef, PackTrailer, type BlobType } from './format.js';
import type { BlobLocation } from './repository.js';
import type { ObjectStore } from './object-store.js';

export const packKey = (pack: string) => `packs/${pack.slice(0, 2)}/${pack}`;
export const packIdOfKey = (key: string) => key.slice(key.lastIndexOf('/') + 1);

export interface PackWriterOptions {
  /** Seal a pack once it holds this many bytes. */
  targetSize: number;
  /** Uploads in flight; adding waits when this many are busy, which bounds memory. */
  maxUploads: number;
  retainUntil?: Date;
  onUploaded?: (bytes: number) => void;
}

export class PackWriter {
  private blobs: Buffer[] = [];
  private uploadedCallbacks: Array<() => void> = [];
  private entries: PackEntry[] = [];
  private size = 0;
  private readonly pendingIds = new Set<string>();
  private readonly uploads = new Set<Promise<void>>();
  private failure: Error | undefined;
  private targetSize: number;
  readonly written: PackRef[] = [];

  constructor(private readonly store: ObjectStore, private readonly codec: BlobCodec, private readonly options: PackWriterOptions) {
    this.targetSize = options.targetSize;
  }

  /** Seals packs at this size from now on. */
  setTargetSize(bytes: number): void {
    this.targetSize = bytes;
  }

  /** True if this writer already holds or uploaded a blob with this id. */
  has(idHex: string): boolean {
    return this.pendingIds.has(idHex);
  }

  /** Encodes and adds a blob. Waits while the upload pipeline is full. */
  async add(id: Buffer, type: BlobType, plain: Buffer): Promise<void> {
    const { stored, compressed } = this.codec.encode(plain, id);
    await this.addStored({ id, type, rawLength: plain.length, compressed }, stored);
  }

  /**
   * Adds a blob already in stored form (repacking copies blobs without opening them). `uploaded`,
   * if given, is called once its pack's upload has ended, successfully or not (`stored` is then no
   * longer read, and its memory can be reused).
   */
  async addStored(entry: Pick<PackEntry, 'id' | 'type' | 'rawLength' | 'compressed'>, stored: Buffer, uploaded?: () => void): Promise<void> {
    const { id, type, rawLength, compressed } = entry;
    this.pendingIds.add(Buffer.from(id).toString('hex'));
    this.entries.push(PackEntry.create({ id, type, offset: this.size, length: stored.length, rawLength, compressed }));
    this.blobs.push(stored);
    if (uploaded) this.uploadedCallbacks.push(uploaded);
    this.size += stored.length;
    if (this.size >= this.targetSize) await this.seal();
  }

  /** Uploads what is left and waits for every upload; returns every pack written. */
  async finish(): Promise<PackRef[]> {
    if (this.entries.length > 0) await this.seal();
    await Promise.all(this.uploads);
    if (this.failure) throw this.failure;
    return this.written;
  }

  private async seal(): Promise<void> {
    while (this.uploads.size >= this.options.maxUploads) await Promise.race(this.uploads);
    if (this.failure) throw this.failure;
    const entries = this.entries;
    const trailer = this.codec.seal(Buffer.from(PackTrailer.encode({ entries }).finish()));
    const length = Buffer.alloc(4);
    length.writeUInt32BE(trailer.length);
    const body = [...this.blobs, trailer, length];
    const size = this.size + trailer.length + length.length;
    const callbacks = this.uploadedCallbacks;
    this.uploadedCallbacks = [];
    this.blobs = [];
    this.entries = [];
    this.size = 0;
    // The trailer lists every blob's id and place (and is sealed with a fresh nonce when
    // encrypted), so its hash names the pack without hashing the blobs again.
    const pack = createHash('sha256').update(trailer).digest('hex');
    const retainUntil = this.options.retainUntil;
    const upload = this.store.put(packKey(pack), body, { retainUntil }).then(
      () => {
        this.written.push(PackRef.create({ pack, entries, lockUntilMs: retainUntil?.getTime() ?? 0 }));
        this.options.onUploaded?.(size);
      },
      (err: Error) => { this.failure ??= err; },
    ).finally(() => {
      this.uploads.delete(upload);
      for (const callback of callbacks) callback();
    });
    this.uploads.add(upload);
  }
}

/** Reads the trailer of a stored pack: its entries, for packs no index file names. */
export async function readPackTrailer(store: ObjectStore, codec: BlobCodec, pack: string): Promise<PackEntry[]> {
  const guess = 64 * 1024;
  let tail = await store.getTail(packKey(pack), guess);
  const trailerLength = tail.readUInt32BE(tail.length - 4);
  if (trailerLength + 4 > tail.length) tail = await store.getTail(packKey(pack), trailerLength + 4);
  const sealed = tail.subarray(tail.length - 4 - trailerLength, tail.length - 4);
  return PackTrailer.decode(codec.open(sealed)).entries as PackEntry[];
}

/** One ranged GET covering neighbouring blobs of a pack. */
export interface RangeRead {
  pack: string;
  start: number;
  end: number;
  blobs: BlobLocation[];
}

export interface RangeLimits {
  /** Most stored bytes per GET. */
  stored: number;
  /** Most plaintext the blobs of one GET open to. */
  plain: number;
  /** Bytes no blob wants that a GET may span between two that are. */
  gap: number;
}

const DEFAULT_LIMITS: RangeLimits = { stored: 4 * 1024 * 1024, plain: 16 * 1024 * 1024, gap: 256 * 1024 };

/** Groups blobs into few ranged GETs: neighbours in a pack (small gaps allowed) share one request. */
export function planRangeReads(locations: BlobLocation[], limits = DEFAULT_LIMITS): RangeRead[] {
  // Plain comparison: localeCompare (ICU collation) made sorting a large restore's blobs take a second.
  const sorted = [...locations].sort((a, b) => (a.pack < b.pack ? -1 : a.pack > b.pack ? 1 : 0) || a.entry.offset - b.entry.offset);
  const ranges: Array<RangeRead & { plain: number }> = [];
  for (const location of sorted) {
    const { pack, entry } = location;
    const last = ranges[ranges.length - 1];
    const end = entry.offset + entry.length;
    const fits = last && end - last.start <= limits.stored && last.plain + entry.rawLength <= limits.plain;
    if (last && last.pack === pack && entry.offset - last.end <= limits.gap && fits) {
      last.end = Math.max(last.end, end);
      last.plain += entry.rawLength;
      last.blobs.push(location);
    } else {
      ranges.push({ pack, start: entry.offset, end, plain: entry.rawLength, blobs: [location] });
    }
  }
  return ranges;
}

/** The range's bytes, into `into` if given (it must hold the range's length). */
export function readRange(store: ObjectStore, range: RangeRead, into?: Buffer): Promise<Buffer> {
  return store.get(packKey(range.pack), { start: range.start, end: range.end }, into);
}

export function blobInRange(body: Buffer, range: RangeRead, entry: PackEntry): Buffer {
  return body.subarray(entry.offset - range.start, entry.offset - range.start + entry.length);
}
