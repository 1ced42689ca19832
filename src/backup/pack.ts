// Packs: many small blobs in one S3 object, so a backup makes a few requests per hundred MiB
// instead of one per chunk. Layout: blob bytes back to back, then the sealed PackTrailer (the
// pack's own index, so a pack whose index file never got written can still be recovered), then
// the trailer's length as 4 bytes big-endian. A pack is named by the SHA-256 of its bytes.
import { createHash } from 'node:crypto';
import type { BlobCodec } from './blob-codec.js';
import { PackEntry, PackRef, PackTrailer, type BlobType } from './format.js';
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
  private entries: PackEntry[] = [];
  private size = 0;
  private readonly pendingIds = new Set<string>();
  private readonly uploads = new Set<Promise<void>>();
  private failure: Error | undefined;
  readonly written: PackRef[] = [];

  constructor(private readonly store: ObjectStore, private readonly codec: BlobCodec, private readonly options: PackWriterOptions) {}

  /** True if this writer already holds or uploaded a blob with this id. */
  has(idHex: string): boolean {
    return this.pendingIds.has(idHex);
  }

  /** Encodes and adds a blob; returns the stored size. Waits while the upload pipeline is full. */
  async add(id: Buffer, type: BlobType, plain: Buffer): Promise<number> {
    const { stored, compressed } = this.codec.encode(plain);
    this.pendingIds.add(id.toString('hex'));
    this.entries.push(PackEntry.create({ id, type, offset: this.size, length: stored.length, rawLength: plain.length, compressed }));
    this.blobs.push(stored);
    this.size += stored.length;
    if (this.size >= this.options.targetSize) await this.seal();
    return stored.length;
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
    const body = Buffer.concat([...this.blobs, trailer, length]);
    this.blobs = [];
    this.entries = [];
    this.size = 0;
    const pack = createHash('sha256').update(body).digest('hex');
    const retainUntil = this.options.retainUntil;
    const upload = this.store.put(packKey(pack), body, { retainUntil }).then(
      () => {
        this.written.push(PackRef.create({ pack, entries, lockUntilMs: retainUntil?.getTime() ?? 0 }));
        this.options.onUploaded?.(body.length);
      },
      (err: Error) => { this.failure ??= err; },
    ).finally(() => this.uploads.delete(upload));
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
