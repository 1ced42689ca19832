// A backup repository in one S3 bucket (layout in proto/backup.proto): its config and keys, the
// blob index (which pack holds which blob), snapshots, and locks.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { setImmediate as nextTurn } from 'node:timers/promises';
import protobuf from 'protobufjs/minimal.js';
import { mapLimited } from '../common/concurrency.js';
import { StoreError } from '../common/errors.js';
import { BlobCodec, keyCheck, keyMatches, readKeyFile } from './blob-codec.js';
import { GcPending, ID_BYTES, IndexFile, LockInfo, PackEntry, PackRef, packEntries, RepoConfig, Snapshot } from './format.js';
import type { ObjectStore } from './object-store.js';
import { newId } from './ids.js';
import { packIdOfKey, packKey, readPackTrailer } from './pack.js';

export { newId };

export const DEFAULT_CHUNK_SIZE = 64 * 1024;
/** New repositories' format: 2 binds each blob's id into its seal (blob-codec.ts); 1 is still read and written. */
const REPO_VERSION = 2;
const READABLE_VERSIONS = [1, 2];
/** A lock not refreshed for this long belongs to a process that died. */
export const LOCK_STALE_MS = 10 * 60 * 1000;
const LOCK_REFRESH_MS = 60 * 1000;

export interface BlobLocation {
  pack: string;
  entry: PackEntry;
}

/**
 * Where every known blob lives; built from the index files plus the trailers of unindexed packs.
 * Compact: the blobs' fields sit in typed arrays, found through an open-addressing table keyed by
 * the ids' first bytes (ids are cryptographic hashes), and a PackRef is decoded again only when
 * `packs` is asked for. A repository's index holds ~10^5 blobs, and an object (or three) per blob
 * had cost a backup's main thread more in garbage collection than in decoding them.
 */
export class BlobIndex {
  /** Index files read, by key. */
  readonly files: string[] = [];
  /** Packs that no index file names (left by an interrupted backup), recovered from trailers. */
  readonly recovered: PackRef[] = [];
  /** Lookups by hex id. */
  readonly blobs = { get: (hex: string) => this.get(Buffer.from(hex, 'hex')) };
  private readonly packNames: string[] = [];
  private readonly packNumbers = new Map<string, number>();
  /** Each pack's PackRef, or its encoding to decode when `packs` is asked for. */
  private readonly packSources: Array<PackRef | Uint8Array> = [];
  private decodedPacks: Map<string, PackRef> | undefined;
  private count = 0;
  private ids = Buffer.alloc(0);
  private packOf = new Uint32Array(0);
  private offsets = new Float64Array(0);
  private lengths = new Uint32Array(0);
  private rawLengths = new Uint32Array(0);
  /** BlobType << 1 | compressed. */
  private kinds = new Uint8Array(0);
  /** Blob number + 1 per slot, 0 = free; at most half full. */
  private slots = new Int32Array(1024);

  /** Adds a pack's blobs (a blob in several packs: the last one added wins). */
  addPack(ref: PackRef): void {
    const packNumber = this.newPack(ref.pack, ref);
    if (packNumber === undefined) return;
    const entries = packEntries(ref);
    this.reserve(this.count + entries.length);
    for (const e of entries) this.addBlob(packNumber, e.id, e.type, Number(e.offset), e.length, e.rawLength, e.compressed);
  }

  /**
   * addPack() of an encoded PackRef (unless its pack is in `skip`), read straight into the
   * arrays: decoding a message object per entry first was most of a backup's index load (the
   * index file of a full backup of the bench's disk names ~35,000 blobs).
   */
  addEncodedPack(encoded: Uint8Array, skip?: ReadonlySet<string>): void {
    const { pack, entries } = packRefFields(encoded);
    if (skip?.has(pack)) return;
    const packNumber = this.newPack(pack, encoded);
    if (packNumber === undefined) return;
    this.reserve(this.count + entries.length);
    const fields = new VarintReader(encoded);
    for (const at of entries) {
      fields.at = at;
      const end = fields.varint() + fields.at;
      let idAt = 0, idLength = 0, type = 0, offset = 0, length = 0, rawLength = 0, compressed = false;
      while (fields.at < end) {
        const tag = fields.varint();
        switch (tag) {
          case (1 << 3) | 2: idLength = fields.varint(); idAt = fields.at; fields.at += idLength; break;
          case 2 << 3: type = fields.varint(); break;
          case 3 << 3: offset = fields.varint(); break;
          case 4 << 3: length = fields.varint(); break;
          case 5 << 3: rawLength = fields.varint(); break;
          case 6 << 3: compressed = fields.varint() !== 0; break;
          default: fields.skip(tag & 7);
        }
      }
      this.addBlob(packNumber, encoded.subarray(idAt, idAt + Math.min(idLength, ID_BYTES)), type, offset, length, rawLength, compressed);
    }
  }

  /** Numbers a pack not added before; undefined if it was. */
  private newPack(pack: string, source: PackRef | Uint8Array): number | undefined {
    if (this.packNumbers.has(pack)) return undefined;
    const packNumber = this.packNames.length;
    this.packNames.push(pack);
    this.packNumbers.set(pack, packNumber);
    this.packSources.push(source);
    this.decodedPacks = undefined;
    return packNumber;
  }

  /** One blob (room reserved). */
  private addBlob(packNumber: number, id: Uint8Array, type: number, offset: number, length: number, rawLength: number, compressed: boolean): void {
    const blob = this.count++;
    this.ids.set(id, blob * ID_BYTES);
    this.packOf[blob] = packNumber;
    this.offsets[blob] = offset;
    this.lengths[blob] = length;
    this.rawLengths[blob] = rawLength;
    this.kinds[blob] = (type << 1) | (compressed ? 1 : 0);
    this.place(blob);
  }

  hasPack(pack: string): boolean {
    return this.packNumbers.has(pack);
  }

  /** Every pack by id, decoded (gc uses them; a backup does not). */
  get packs(): ReadonlyMap<string, PackRef> {
    this.decodedPacks ??= new Map(this.packSources.map((source, i) => [this.packNames[i]!, source instanceof Uint8Array ? PackRef.decode(source) : source]));
    return this.decodedPacks;
  }

  get(id: Uint8Array): BlobLocation | undefined {
    const blob = this.find(id);
    if (blob < 0) return undefined;
    const kind = this.kinds[blob]!;
    const entry = PackEntry.create({
      id: this.ids.subarray(blob * ID_BYTES, (blob + 1) * ID_BYTES), type: kind >> 1, offset: this.offsets[blob]!,
      length: this.lengths[blob]!, rawLength: this.rawLengths[blob]!, compressed: (kind & 1) === 1,
    });
    return { pack: this.packNames[this.packOf[blob]!]!, entry };
  }

  /** The blob number of `id`, or -1. */
  private find(id: Uint8Array): number {
    const slot = this.slotOf(id, 0);
    return this.slots[slot]! - 1;
  }

  /** Puts blob number `blob` in the table, over an earlier blob with its id. */
  private place(blob: number): void {
    this.slots[this.slotOf(this.ids, blob * ID_BYTES)] = blob + 1;
  }

  /** The slot holding the id at `at` in `bytes`, or the free slot where it would go. */
  private slotOf(bytes: Uint8Array, at: number): number {
    const mask = this.slots.length - 1;
    let slot = hashOf(bytes, at) & mask;
    while (this.slots[slot] !== 0 && !this.idIs(this.slots[slot]! - 1, bytes, at)) slot = (slot + 1) & mask;
    return slot;
  }

  private idIs(blob: number, bytes: Uint8Array, at: number): boolean {
    const own = blob * ID_BYTES;
    for (let i = 0; i < ID_BYTES; i++) if (this.ids[own + i] !== bytes[at + i]) return false;
    return true;
  }

  /** Room for `blobs` blobs: the arrays grow by doubling, the table stays at most half full. */
  private reserve(blobs: number): void {
    if (blobs > this.packOf.length) {
      const capacity = Math.max(1024, blobs, this.packOf.length * 2);
      const grow = <T extends Uint8Array | Uint32Array | Float64Array>(old: T, make: (n: number) => T): T => { const next = make(capacity); next.set(old); return next; };
      this.ids = grow(this.ids, (n) => Buffer.alloc(n * ID_BYTES));
      this.packOf = grow(this.packOf, (n) => new Uint32Array(n));
      this.offsets = grow(this.offsets, (n) => new Float64Array(n));
      this.lengths = grow(this.lengths, (n) => new Uint32Array(n));
      this.rawLengths = grow(this.rawLengths, (n) => new Uint32Array(n));
      this.kinds = grow(this.kinds, (n) => new Uint8Array(n));
    }
    if (blobs * 2 > this.slots.length) {
      let size = this.slots.length;
      while (blobs * 2 > size) size *= 2;
      this.slots = new Int32Array(size);
      for (let blob = 0; blob < this.count; blob++) this.place(blob);
    }
  }
}

/** Ids are cryptographic hashes: their first four bytes (of the id at `at`) are as good as any hash of them. */
function hashOf(bytes: Uint8Array, at: number): number {
  return (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;
}

export interface OpenOptions {
  keyFile?: string;
  /** Create the repository if the bucket has none. */
  create?: { chunkSize?: number; encrypted: boolean };
}

export class Repository {
  private constructor(readonly store: ObjectStore, readonly config: RepoConfig, readonly codec: BlobCodec) {}

  static async open(store: ObjectStore, options: OpenOptions = {}): Promise<Repository> {
    const raw = await store.tryGet('config');
    let config: RepoConfig;
    if (raw) {
      config = RepoConfig.decode(raw);
    } else if (options.create) {
      config = await Repository.create(store, options.create.chunkSize ?? DEFAULT_CHUNK_SIZE, options.create.encrypted, options.keyFile);
    } else {
      throw new StoreError('NotFound', `bucket ${store.bucket} holds no backup repository`);
    }
    if (!READABLE_VERSIONS.includes(config.version)) throw new StoreError('InvalidArgument', `repository version ${config.version} is not supported`);
    if (!config.encrypted) return new Repository(store, config, BlobCodec.plain());
    if (!options.keyFile) throw new StoreError('InvalidArgument', 'this repository is encrypted: pass --key-file');
    const codec = BlobCodec.encrypted(await readKeyFile(options.keyFile), config.keySalt, config.version >= 2);
    if (!keyMatches(codec, Buffer.from(config.keyCheck))) throw new StoreError('Unauthenticated', `key file ${options.keyFile} does not open this repository`);
    return new Repository(store, config, codec);
  }

  private static async create(store: ObjectStore, chunkSize: number, encrypted: boolean, keyFile?: string): Promise<RepoConfig> {
    if (chunkSize < 64 * 1024 || chunkSize > 256 * 1024 || chunkSize & (chunkSize - 1)) {
      throw new StoreError('InvalidArgument', 'chunk size must be a power of two from 64 KiB to 256 KiB');
    }
    const config = RepoConfig.create({ version: REPO_VERSION, chunkSize, encrypted, createdMs: Date.now() });
    if (encrypted) {
      if (!keyFile) throw new StoreError('InvalidArgument', 'encryption needs --key-file');
      config.keySalt = randomBytes(32);
      config.keyCheck = keyCheck(BlobCodec.encrypted(await readKeyFile(keyFile), config.keySalt, true));
    }
    await store.put('config', Buffer.from(RepoConfig.encode(config).finish()));
    return config;
  }

  // ------------------------------------------------------------------ blobs

  /**
   * Loads every index file, then recovers packs that no index names from their trailers.
   * `exclude` drops packs (gc's condemned ones) so a backup re-uploads rather than reuses them.
   */
  async loadIndex(exclude: ReadonlySet<string> = new Set()): Promise<BlobIndex> {
    const index = new BlobIndex();
    // Both listings at once: a pack listed whose index file was not is recovered from its trailer.
    const [files, packs] = await Promise.all([this.store.listAll('index/'), this.store.listAll('packs/')]);
    await mapLimited(files, 16, async ({ key }) => {
      const file = this.codec.open(await this.store.get(key));
      index.files.push(key);
      // Pack by pack, letting other work run in between: a repository's index takes tens of
      // milliseconds to decode, which a backup's start (NBD handshake, first reads) need not wait for.
      for (const encoded of packRefsOf(file)) {
        index.addEncodedPack(encoded, exclude);
        await nextTurn();
      }
    });
    const unindexed = packs.map((o) => packIdOfKey(o.key)).filter((p) => !index.hasPack(p) && !exclude.has(p));
    await mapLimited(unindexed, 16, async (pack) => {
      try {
        const entries = await readPackTrailer(this.store, this.codec, pack);
        const ref = { pack, entries, lockUntilMs: 0 } as PackRef;
        index.addPack(ref);
        index.recovered.push(ref);
      } catch (err) {
        if (!(err instanceof StoreError)) throw err; // a pack being deleted or torn: not reusable
      }
    });
    return index;
  }

  async writeIndex(name: string, packs: PackRef[], retainUntil?: Date): Promise<string> {
    const key = `index/${name}`;
    await this.store.put(key, this.codec.seal(Buffer.from(IndexFile.encode({ packs }).finish())), { retainUntil });
    return key;
  }

  async readBlob(location: BlobLocation): Promise<Buffer> {
    const { pack, entry } = location;
    const stored = await this.store.get(packKey(pack), { start: entry.offset, end: entry.offset + entry.length });
    return this.codec.decodeEntry(stored, entry);
  }

  // ------------------------------------------------------------------ snapshots

  async listSnapshots(disk?: string): Promise<Snapshot[]> {
    const listed = await this.store.listAll(disk ? `snapshots/${disk}/` : 'snapshots/');
    const snapshots: Snapshot[] = [];
    await mapLimited(listed, 16, async ({ key }) => {
      const body = await this.store.tryGet(key);
      if (body) snapshots.push(Snapshot.decode(this.codec.open(body)));
    });
    return snapshots.sort((a, b) => a.timeMs - b.timeMs || a.id.localeCompare(b.id));
  }

  /**
   * The disk's newest snapshot, reading only it: ids begin with the snapshot's time, so the
   * listing's last key is the newest (an object deleted since the listing passes to the one before).
   */
  async latestSnapshot(disk: string): Promise<Snapshot | undefined> {
    const keys = (await this.store.listAll(`snapshots/${disk}/`)).map((o) => o.key).sort();
    for (const key of keys.reverse()) {
      const body = await this.store.tryGet(key);
      if (body) return Snapshot.decode(this.codec.open(body));
    }
    return undefined;
  }

  /** One snapshot by id (a single GET), or undefined if the disk has none by that id. */
  async readSnapshot(disk: string, id: string): Promise<Snapshot | undefined> {
    if (!/^[A-Za-z0-9-]+$/.test(id)) return undefined;
    const body = await this.store.tryGet(snapshotKey({ disk, id }));
    return body ? Snapshot.decode(this.codec.open(body)) : undefined;
  }

  async saveSnapshot(snapshot: Snapshot): Promise<void> {
    const retainUntil = snapshot.lockUntilMs ? new Date(snapshot.lockUntilMs) : undefined;
    await this.store.put(snapshotKey(snapshot), this.codec.seal(Buffer.from(Snapshot.encode(snapshot).finish())), { retainUntil });
  }

  // ------------------------------------------------------------------ gc hand-off

  async readGcPending(): Promise<GcPending> {
    const body = await this.store.tryGet('gc/pending');
    return body ? GcPending.decode(this.codec.open(body)) : GcPending.create({ timeMs: 0, packs: [] });
  }

  async writeGcPending(pending: GcPending): Promise<void> {
    await this.store.put('gc/pending', this.codec.seal(Buffer.from(GcPending.encode(pending).finish())));
  }

  // ------------------------------------------------------------------ locks

  /** Announces a running backup or gc; refreshed until released so others can tell it is alive. */
  async acquireLock(kind: 'backup' | 'gc'): Promise<RepoLock> {
    const info = LockInfo.create({ kind, host: hostname(), pid: process.pid, startedMs: Date.now() });
    const key = `locks/${kind}-${newId()}`;
    const body = Buffer.from(LockInfo.encode(info).finish());
    await this.store.put(key, body);
    const timer = setInterval(() => { void this.store.put(key, body).catch(() => undefined); }, LOCK_REFRESH_MS);
    timer.unref();
    return {
      info,
      release: async () => {
        clearInterval(timer);
        await this.store.deleteMany([key]);
      },
    };
  }

  /** Locks of live processes (refreshed within LOCK_STALE_MS). */
  async liveLocks(now = Date.now()): Promise<LockInfo[]> {
    const live = (await this.store.listAll('locks/')).filter((o) => now - o.lastModified.getTime() < LOCK_STALE_MS);
    const locks: LockInfo[] = [];
    for (const { key } of live) {
      const body = await this.store.tryGet(key);
      if (body) locks.push(LockInfo.decode(body));
    }
    return locks;
  }
}

/** Varints and skipped fields of protobuf bytes, read in place (offsets below 2^53). */
class VarintReader {
  at = 0;

  constructor(private readonly bytes: Uint8Array) {}

  varint(): number {
    let value = 0;
    for (let scale = 1; ; scale *= 128) {
      const byte = this.bytes[this.at++]!;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
    }
  }

  /** Skips a field's value of wire type `wireType`. */
  skip(wireType: number): void {
    if (wireType === 0) this.varint();
    else if (wireType === 1) this.at += 8;
    else if (wireType === 2) this.at += this.varint();
    else if (wireType === 5) this.at += 4;
    else throw new StoreError('Corrupt', `unexpected protobuf wire type ${wireType} in an index file`);
  }
}

/** An encoded PackRef's pack id, and where each of its entries starts (at its length prefix). */
function packRefFields(encoded: Uint8Array): { pack: string; entries: number[] } {
  const reader = protobuf.Reader.create(encoded);
  let pack = '';
  const entries: number[] = [];
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    if (tag === ((1 << 3) | 2)) pack = reader.string();
    else if (tag === ((2 << 3) | 2)) {
      entries.push(reader.pos);
      reader.skipType(2);
    } else reader.skipType(tag & 7);
  }
  return { pack, entries };
}

/** The encoded PackRef messages of an encoded IndexFile (its field 1, `repeated PackRef packs`). */
function* packRefsOf(indexFile: Uint8Array): Generator<Uint8Array> {
  const reader = protobuf.Reader.create(indexFile);
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    if (tag === ((1 << 3) | 2)) yield reader.bytes();
    else reader.skipType(tag & 7);
  }
}

export interface RepoLock {
  info: LockInfo;
  release(): Promise<void>;
}

export const snapshotKey = (snapshot: Pick<Snapshot, 'disk' | 'id'>) => `snapshots/${snapshot.disk}/${snapshot.id}`;


