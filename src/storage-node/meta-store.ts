// Metadata of one node in LevelDB: object versions, tombstones of purged versions, multipart
// uploads, replicated records and the cluster map. Every write goes through the group committer,
// so each rule below is a read-check-write that sees all earlier writes, batched or not.
import { Level } from 'level';
import { StoreError } from '../common/errors.js';
import { encodeMessage as encode, KEPT_TTL_MS, MAX_CLOCK_SKEW_MS, pb, stampOf, UNARY_DEADLINE_MS, writeAgeMs, type WriteStamp } from '../common/node-service.js';
import { GroupCommitter, type Db, type Tx } from './group-commit.js';
import {
  Space, encodeU64Pair, hlcOfInverted, invertedHlc, keysUnder, namesStartingWith, objectKey, partKey, prefixKey,
  readU64, recordKey, singletonKey, spaceEnd, splitKey,
} from './meta-keys.js';

export const TOMBSTONE_TTL_MS = 7 * 24 * 3600_000;

export type ObjectVersion = pb.ObjectVersion;
export type DataSegment = pb.IDataSegment;

export interface MetaStoreOptions {
  /** Called after a commit that dropped the last reference to segments' local shards. */
  releaseSegments(segments: DataSegment[]): Promise<void>;
}

export interface VersionRef {
  bucket: string;
  key: string;
  versionId: string;
}

/** One exact version to purge, stamped with its delete's hlc (0: whatever is stored now). */
export interface VersionDelete {
  ref: VersionRef;
  hlc: number;
}

/** One revertible write to settle or revert, named by its stamp. */
export interface StampedWrite {
  ref: VersionRef;
  stamp: WriteStamp;
}

export interface PutResult {
  /** Per version: false where a newer version (or a tombstone) already won. */
  applied: boolean[];
  /** Per version: a replaced record is kept until ResolveMeta (revertible writes only). */
  keptPrevious: boolean[];
}

/**
 * What a revertible write replaced or purged. `tombstone` is undefined when the write left the
 * tombstone alone (a put), null when there was none before (a delete), else its previous value.
 */
interface KeptRecord {
  stamp: WriteStamp;
  keptAt: number;
  tombstone: Buffer | null | undefined;
  record: Buffer | undefined;
}

const TOMBSTONE_UNTOUCHED = 0;
const TOMBSTONE_ABSENT = 1;
const TOMBSTONE_SAVED = 2;

function encodeKept(kept: KeptRecord): Buffer {
  const head = Buffer.alloc(25);
  head.writeBigUInt64BE(BigInt(kept.stamp.hlc), 0);
  head.writeBigUInt64BE(BigInt(kept.stamp.revision), 8);
  head.writeBigUInt64BE(BigInt(kept.keptAt), 16);
  head[24] = kept.tombstone === undefined ? TOMBSTONE_UNTOUCHED : kept.tombstone === null ? TOMBSTONE_ABSENT : TOMBSTONE_SAVED;
  return Buffer.concat([head, kept.tombstone ?? Buffer.alloc(0), kept.record ?? Buffer.alloc(0)]);
}

function decodeKept(bytes: Buffer): KeptRecord {
  const mode = bytes[24];
  const tombstoneEnd = mode === TOMBSTONE_SAVED ? 41 : 25;
  return {
    stamp: { hlc: readU64(bytes, 0), revision: readU64(bytes, 8) },
    keptAt: readU64(bytes, 16),
    tombstone: mode === TOMBSTONE_UNTOUCHED ? undefined : mode === TOMBSTONE_ABSENT ? null : bytes.subarray(25, 41),
    record: bytes.length > tombstoneEnd ? bytes.subarray(tombstoneEnd) : undefined,
  };
}

/**
 * Undo levels kept per version: writes refused while overlapping (concurrent overwrites of one key
 * during an outage) stack up to this many; beyond it the oldest undo is dropped.
 */
const MAX_KEPT_PER_VERSION = 8;

function encodeKeptList(list: readonly KeptRecord[]): Buffer {
  return Buffer.concat(list.flatMap((kept) => {
    const bytes = encodeKept(kept);
    const length = Buffer.allocUnsafe(4);
    length.writeUInt32BE(bytes.length);
    return [length, bytes];
  }));
}

function decodeKeptList(bytes: Buffer | undefined): KeptRecord[] {
  const list: KeptRecord[] = [];
  for (let at = 0; bytes && at < bytes.length; at += 4 + bytes.readUInt32BE(at)) {
    list.push(decodeKept(bytes.subarray(at + 4, at + 4 + bytes.readUInt32BE(at))));
  }
  return list;
}

function keptKey({ bucket, key, versionId }: VersionRef): Buffer {
  return recordKey(Space.Kept, bucket, key, versionId);
}

/** One marker per reverted write, so that overlapping writes of a version each stay refused. */
function revertMarkerKey({ bucket, key, versionId }: VersionRef, stamp: WriteStamp): Buffer {
  return Buffer.concat([recordKey(Space.Reverted, bucket, key, versionId), encodeU64Pair(stamp.hlc, stamp.revision)]);
}

function sameStamp(a: WriteStamp, b: WriteStamp): boolean {
  return a.hlc === b.hlc && a.revision === b.revision;
}

/**
 * A revertible write that arrives after its writer gave up on it (a request held up by a cut
 * link and delivered when it healed) must not apply: the writer may have reverted it everywhere
 * else, and this node would be left alone with a write that never reached its quorum.
 */
function refuseLateWrite(stamps: readonly WriteStamp[], now: number): void {
  for (const stamp of stamps) {
    const age = writeAgeMs(stamp, now);
    if (age > UNARY_DEADLINE_MS + MAX_CLOCK_SKEW_MS) {
      throw new StoreError('Unavailable', `write stamped ${Math.round(age / 1000)} s ago arrived after its deadline`);
    }
  }
}

function segmentsOf(bytes: Buffer | undefined): DataSegment[] {
  return bytes ? pb.ObjectVersion.decode(bytes).segments : [];
}

/** Segments of `before` whose shards `after` no longer uses. */
function segmentsDropped(before: readonly DataSegment[], after: readonly DataSegment[]): DataSegment[] {
  const kept = new Set(after.map((s) => s.dataId));
  return before.filter((s) => !s.inline && !kept.has(s.dataId));
}

/**
 * Whether an incoming write replaces a stored one: a newer hlc wins; on equal clocks (a retry, or
 * two writers that happened to stamp alike) the greater encoding wins, so that every node keeps
 * the same one whatever order the writes arrive in.
 */
function incomingWins(storedHlc: number, storedBytes: Buffer, hlc: number, bytes: Buffer): boolean {
  return hlc > storedHlc || (hlc === storedHlc && Buffer.compare(bytes, storedBytes) >= 0);
}

function requireNames(what: string, values: Record<string, string | null | undefined>): void {
  for (const [name, value] of Object.entries(values)) {
    if (!value) throw new StoreError('InvalidArgument', `${what}: ${name} is required`);
  }
}

/** As incomingWins, but a metadata update (same hlc, higher revision: tags, retention, ACL) wins first. */
function versionWins(storedHlc: number, storedBytes: Buffer, version: ObjectVersion, bytes: Buffer): boolean {
  if (version.hlc === storedHlc) {
    const storedRevision = Number(pb.ObjectVersion.decode(storedBytes).revision ?? 0);
    const revision = Number(version.revision ?? 0);
    if (revision !== storedRevision) return revision > storedRevision;
  }
  return incomingWins(storedHlc, storedBytes, version.hlc, bytes);
}

/** Drops inline shard bytes (in place: callers pass a version they just decoded). */
export function withoutInline(version: ObjectVersion): ObjectVersion {
  for (const segment of version.segments) {
    if (segment.inlineShard?.length) segment.inlineShard = new Uint8Array(0);
  }
  return version;
}

export class MetaStore {
  private versionCount = 0;

  private constructor(
    readonly db: Db,
    private readonly committer: GroupCommitter,
    private readonly options: MetaStoreOptions,
  ) {}

  static async open(path: string, options: MetaStoreOptions): Promise<MetaStore> {
    const db: Db = new Level<Buffer, Buffer>(path, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    try {
      await db.open();
    } catch (err) {
      const cause = (err as Error & { cause?: Error }).cause?.message ?? String(err);
      throw new StoreError('Unavailable', `cannot open metadata in ${path} (is another node using it?): ${cause}`);
    }
    const store = new MetaStore(db, new GroupCommitter(db), options);
    for await (const _ of db.keys(store.spaceRange(Space.VersionIndex))) store.versionCount++;
    return store;
  }

  close(): Promise<void> {
    return this.db.close();
  }

  get objectVersionCount(): number {
    return this.versionCount;
  }

  /** Hooks a callback onto every durable group commit (used to measure batching). */
  set onBatch(callback: (mutations: number) => void) {
    this.committer.onBatch = callback;
  }

  private spaceRange(space: Space): { gte: Buffer; lt: Buffer } {
    return { gte: Buffer.from(space), lt: spaceEnd(space) };
  }

  // ------------------------------------------------------------ object versions

  /**
   * Stores each version unless a newer one (or a tombstone) already won. A revertible write keeps
   * the record it replaces (and its shards) until resolveWrites settles or reverts it.
   */
  async putVersions(versions: readonly ObjectVersion[], { revertible = false } = {}, now = Date.now()): Promise<PutResult> {
    if (revertible) refuseLateWrite(versions.map(stampOf), now);
    return this.committer.run(async (tx) => {
      const result: PutResult = { applied: [], keptPrevious: [] };
      for (const version of versions) {
        const outcome = this.putVersion(tx, version, revertible, now);
        result.applied.push(outcome !== 'ignored');
        result.keptPrevious.push(outcome === 'kept');
      }
      return result;
    });
  }

  private putVersion(tx: Tx, version: ObjectVersion, revertible: boolean, now: number): 'ignored' | 'applied' | 'kept' {
    const { bucket, key, versionId, hlc } = version;
    requireNames('object version', { bucket, key, versionId });
    const ref = { bucket, key, versionId };
    if (this.wasReverted(tx, ref, stampOf(version))) return 'ignored';
    const tombstone = tx.get(recordKey(Space.Tombstone, bucket, key, versionId));
    if (tombstone && readU64(tombstone) >= hlc) return 'ignored';
    const storedBytes = this.storedRecord(tx, ref);
    const bytes = encode(pb.ObjectVersion, version);
    if (storedBytes && !versionWins(storedBytes.hlc, storedBytes.bytes, version, bytes)) return 'ignored';
    if (storedBytes) tx.del(storedBytes.key);
    else tx.afterCommit(() => { this.versionCount++; });
    this.writeRecord(tx, ref, hlc, bytes);
    if (revertible) {
      if (!storedBytes && this.keptList(tx, ref).length === 0) return 'applied';
      this.keep(tx, ref, { stamp: stampOf(version), keptAt: now, tombstone: undefined, record: storedBytes?.bytes });
      return 'kept';
    }
    this.dropSupersededKept(tx, ref, stampOf(version));
    this.releaseUnused(tx, ref, [storedBytes?.bytes], this.keptList(tx, ref));
    return 'applied';
  }

  /** The version's current record, if any, with its key and hlc. */
  private storedRecord(tx: Tx, { bucket, key, versionId }: VersionRef): { key: Buffer; hlc: number; bytes: Buffer } | undefined {
    const inverted = tx.get(recordKey(Space.VersionIndex, bucket, key, versionId));
    if (!inverted) return undefined;
    const storedKey = objectKey(bucket, key, inverted, versionId);
    const bytes = tx.get(storedKey);
    return bytes && { key: storedKey, hlc: hlcOfInverted(inverted), bytes };
  }

  private writeRecord(tx: Tx, { bucket, key, versionId }: VersionRef, hlc: number, bytes: Buffer): void {
    const inverted = invertedHlc(hlc);
    tx.put(objectKey(bucket, key, inverted, versionId), bytes);
    tx.put(recordKey(Space.VersionIndex, bucket, key, versionId), inverted);
  }

  /**
   * What the unresolved revertible writes of a version replaced, oldest first: each entry holds
   * the state (record, tombstone) its write found. Overlapping writes stack, so that reverting
   * them in any order comes back to the last state that reached its quorum.
   */
  private keptList(tx: Tx, ref: VersionRef): KeptRecord[] {
    return decodeKeptList(tx.get(keptKey(ref)));
  }

  private saveKeptList(tx: Tx, ref: VersionRef, list: readonly KeptRecord[]): void {
    if (list.length > 0) tx.put(keptKey(ref), encodeKeptList(list));
    else tx.del(keptKey(ref));
  }

  /** Keeps what a revertible write replaced, on top of what earlier unresolved writes kept. */
  private keep(tx: Tx, ref: VersionRef, kept: KeptRecord): void {
    const list = [...this.keptList(tx, ref), kept];
    const dropped = list.splice(0, Math.max(0, list.length - MAX_KEPT_PER_VERSION));
    this.saveKeptList(tx, ref, list);
    this.releaseUnused(tx, ref, dropped.map((k) => k.record), list);
  }

  /**
   * A write that is not revertible (a repair, a relocation) carries state newer than the revertible
   * writes still unresolved here, so what they kept can go: no revert could restore it anymore.
   */
  private dropSupersededKept(tx: Tx, ref: VersionRef, stamp: WriteStamp): void {
    const list = this.keptList(tx, ref);
    const remaining = list.filter((k) => sameStamp(k.stamp, stamp));
    if (remaining.length === list.length) return;
    this.saveKeptList(tx, ref, remaining);
    this.releaseUnused(tx, ref, list.filter((k) => !remaining.includes(k)).map((k) => k.record), remaining);
  }

  /** Frees the shards of dropped records that neither the current record nor a kept one uses. */
  private releaseUnused(tx: Tx, ref: VersionRef, dropped: ReadonlyArray<Buffer | undefined>, kept: readonly KeptRecord[]): void {
    // Most writes drop no record (a new key): then nothing needs decoding to find what is in use.
    if (dropped.every((bytes) => bytes === undefined)) return;
    const inUse = [this.storedRecord(tx, ref)?.bytes, ...kept.map((k) => k.record)].flatMap((bytes) => segmentsOf(bytes));
    this.releaseAfterCommit(tx, ref, segmentsDropped(dropped.flatMap((bytes) => segmentsOf(bytes)), inUse));
  }

  private wasReverted(tx: Tx, ref: VersionRef, stamp: WriteStamp): boolean {
    return tx.get(revertMarkerKey(ref, stamp)) !== undefined;
  }

  /**
   * Frees the local shards of segments a change of `owner`'s records dropped — except those a part
   * of an upload of the same key still names here. A completed upload's version is made of its
   * parts' data, and the upload can outlive it where its end never arrived (the gateway died
   * between the two, or the complete was reverted): its parts must stay healable and abortable.
   * Only a part's data carries a part number, so other releases skip the look-up.
   */
  private releaseAfterCommit(tx: Tx, owner: { bucket: string; key: string }, segments: DataSegment[]): void {
    if (segments.length === 0) return;
    tx.afterCommit(async () => {
      const named = segments.some((s) => s.partNumber) ? await this.partDataIds(owner) : new Set<string>();
      const unnamed = segments.filter((s) => !named.has(s.dataId ?? ''));
      if (unnamed.length > 0) await this.options.releaseSegments(unnamed);
    });
  }

  /** Data ids the parts of every upload of this key name here. */
  private async partDataIds({ bucket, key }: { bucket: string; key: string }): Promise<Set<string>> {
    const ids = new Set<string>();
    for await (const value of this.db.values(keysUnder(prefixKey(Space.Part, [bucket, key])))) {
      ids.add(pb.DataSegment.decode(value.subarray(8)).dataId);
    }
    return ids;
  }

  /**
   * Purges exact versions stored at or before their `hlc` (0: whatever is stored now) and leaves a
   * tombstone so a late write of the same version stays deleted. Their local shards go too.
   * `moved`: no delete — the records moved to other nodes (rebalance), so no tombstone is left: a
   * tombstone would tell readers the version was deleted, and refuse the record if this node is
   * in its placement again after a later map change.
   */
  async deleteVersions(deletes: readonly VersionDelete[], { revertible = false, moved = false } = {}, now = Date.now()): Promise<void> {
    if (revertible && moved) throw new StoreError('InvalidArgument', 'a moved record is no revertible delete');
    if (revertible) refuseLateWrite(deletes.map(({ hlc }) => ({ hlc, revision: 0 })), now);
    return this.committer.run(async (tx) => {
      for (const { ref, hlc } of deletes) this.deleteVersion(tx, ref, hlc, { revertible, moved }, now);
    });
  }

  private deleteVersion(tx: Tx, ref: VersionRef, hlc: number, { revertible, moved }: { revertible: boolean; moved: boolean }, now: number): void {
    const { bucket, key, versionId } = ref;
    requireNames('delete', { bucket, key, versionId });
    const stamp = { hlc, revision: 0 };
    if (revertible && this.wasReverted(tx, ref, stamp)) return;
    const stored = this.storedRecord(tx, ref);
    const deleteHlc = hlc || (stored?.hlc ?? 0);
    let removed: Buffer | undefined;
    if (stored && stored.hlc <= deleteHlc) {
      removed = stored.bytes;
      tx.del(stored.key);
      tx.del(recordKey(Space.VersionIndex, bucket, key, versionId));
      tx.afterCommit(() => { this.versionCount--; });
    }
    const tombstoneKey = recordKey(Space.Tombstone, bucket, key, versionId);
    const tombstone = tx.get(tombstoneKey);
    if (revertible) this.keep(tx, ref, { stamp, keptAt: now, tombstone: tombstone ?? null, record: removed });
    else {
      this.dropSupersededKept(tx, ref, stamp);
      this.releaseUnused(tx, ref, [removed], this.keptList(tx, ref));
    }
    if (!moved && (!tombstone || readU64(tombstone) < deleteHlc)) tx.put(tombstoneKey, encodeU64Pair(deleteHlc, now));
  }

  /**
   * The outcome of revertible writes. Settled (commit): drop what they kept. Reverted: undo them
   * here — remove the record they wrote, restore what they replaced or purged — and refuse late
   * copies of them, all without touching a newer write that has since won.
   */
  resolveWrites(writes: readonly StampedWrite[], commit: boolean, now = Date.now()): Promise<void> {
    return this.committer.run(async (tx) => {
      for (const { ref, stamp } of writes) {
        requireNames('resolve', { bucket: ref.bucket, key: ref.key, versionId: ref.versionId });
        if (commit) this.settle(tx, ref, stamp);
        else this.revert(tx, ref, stamp, now);
      }
    });
  }

  /**
   * The write reached its quorum: what it replaced is superseded for good, and so is whatever the
   * writes before it kept (their reverts can no longer bring back anything under this one).
   */
  private settle(tx: Tx, ref: VersionRef, stamp: WriteStamp): void {
    const list = this.keptList(tx, ref);
    const at = list.findIndex((k) => sameStamp(k.stamp, stamp));
    if (at < 0) return;
    const remaining = list.slice(at + 1);
    this.saveKeptList(tx, ref, remaining);
    this.releaseUnused(tx, ref, list.slice(0, at + 1).map((k) => k.record), remaining);
  }

  /**
   * Undoes the write here. If its result is what this node holds, what it replaced comes back. If a
   * later unresolved write replaced its result, that write now undoes to what this one replaced.
   */
  private revert(tx: Tx, ref: VersionRef, stamp: WriteStamp, now: number): void {
    const list = this.keptList(tx, ref);
    const at = list.findIndex((k) => sameStamp(k.stamp, stamp));
    const own = list[at];
    const before = { record: own?.record, tombstone: own?.tombstone };
    const remaining = list.filter((k) => k !== own);
    const current = this.storedRecord(tx, ref);
    const written = current && sameStamp(stampOf(pb.ObjectVersion.decode(current.bytes)), stamp) ? current : undefined;
    const dropped: Array<Buffer | undefined> = [];
    if (written || (own && at === list.length - 1)) {
      if (written) this.removeRecord(tx, ref, written.key);
      dropped.push(written?.bytes);
      // A record newer than this write's (it lost to one) stays; only the slot it emptied is refilled.
      this.restoreState(tx, ref, { record: written || !current ? before.record : undefined, tombstone: before.tombstone });
      if (current && !written) dropped.push(before.record);
    } else {
      const next = own ? list[at + 1] : list.find((k) => k.record && sameStamp(stampOf(pb.ObjectVersion.decode(k.record)), stamp));
      if (next) {
        dropped.push(next.record);
        next.record = before.record;
        if (before.tombstone !== undefined) next.tombstone = before.tombstone;
      } else {
        dropped.push(before.record);
      }
    }
    this.saveKeptList(tx, ref, remaining);
    this.releaseUnused(tx, ref, dropped, remaining);
    const marker = Buffer.alloc(24);
    marker.writeBigUInt64BE(BigInt(stamp.hlc), 0);
    marker.writeBigUInt64BE(BigInt(stamp.revision), 8);
    marker.writeBigUInt64BE(BigInt(now), 16);
    tx.put(revertMarkerKey(ref, stamp), marker);
  }

  private removeRecord(tx: Tx, ref: VersionRef, storedKey: Buffer): void {
    tx.del(storedKey);
    tx.del(recordKey(Space.VersionIndex, ref.bucket, ref.key, ref.versionId));
    tx.afterCommit(() => { this.versionCount--; });
  }

  /** Puts back the record and tombstone a write found (a tombstone it left alone stays as is). */
  private restoreState(tx: Tx, ref: VersionRef, state: Pick<KeptRecord, 'record' | 'tombstone'>): void {
    if (state.record) {
      this.writeRecord(tx, ref, pb.ObjectVersion.decode(state.record).hlc, state.record);
      tx.afterCommit(() => { this.versionCount++; });
    }
    const tombstoneKey = recordKey(Space.Tombstone, ref.bucket, ref.key, ref.versionId);
    if (state.tombstone === null) tx.del(tombstoneKey);
    else if (state.tombstone) tx.put(tombstoneKey, state.tombstone);
  }

  /**
   * Drops tombstones and revert markers older than the TTL (by then no late write of their version
   * is in flight), and settles kept records whose writer never resolved them.
   */
  async purgeExpiredTombstones(now = Date.now()): Promise<number> {
    const expired: Buffer[] = [];
    const markers: Array<[Space, number]> = [[Space.Tombstone, 8], [Space.EndedUpload, 8], [Space.Reverted, 16]];
    for (const [space, timeOffset] of markers) {
      for await (const [key, value] of this.db.iterator(this.spaceRange(space))) {
        if (readU64(value, timeOffset) + TOMBSTONE_TTL_MS < now) expired.push(key);
      }
    }
    const abandoned: Array<[VersionRef, KeptRecord]> = [];
    for await (const [key, value] of this.db.iterator(this.spaceRange(Space.Kept))) {
      const [bucket, objectName, versionId] = splitKey(key, 3).parts as [string, string, string];
      for (const kept of decodeKeptList(value)) {
        if (kept.keptAt + KEPT_TTL_MS < now) abandoned.push([{ bucket, key: objectName, versionId }, kept]);
      }
    }
    if (expired.length + abandoned.length > 0) {
      await this.committer.run(async (tx) => {
        for (const key of expired) tx.del(key);
        for (const [ref, kept] of abandoned) this.settle(tx, ref, kept.stamp);
      });
    }
    return expired.length + abandoned.length;
  }

  /** The version asked for, or the newest (possibly a delete marker) when version_id is empty. */
  async getVersion(ref: VersionRef): Promise<ObjectVersion | undefined> {
    const bytes = await this.getVersionBytes(ref);
    return bytes && pb.ObjectVersion.decode(bytes);
  }

  /** The stored record (an encoded ObjectVersion) of a version, or of the newest one without a version id. */
  async getVersionBytes({ bucket, key, versionId }: VersionRef): Promise<Buffer | undefined> {
    requireNames('get', { bucket, key });
    if (!versionId) {
      const [newest] = await this.db.values({ ...keysUnder(recordKey(Space.Object, bucket, key)), limit: 1 }).all();
      return newest;
    }
    // Point lookups, synchronous for the reason group-commit.ts gives (a thread-pool round trip
    // each cost more than the lookup itself).
    const inverted = this.db.getSync(recordKey(Space.VersionIndex, bucket, key, versionId));
    return (inverted && this.db.getSync(objectKey(bucket, key, inverted, versionId))) || undefined;
  }

  /** The delete that purged this exact version here, if any, and whether it may still be reverted. */
  tombstoneOf(ref: VersionRef): { hlc: number; pending: boolean } | undefined {
    requireNames('get', { bucket: ref.bucket, key: ref.key, versionId: ref.versionId });
    const tombstone = this.db.getSync(recordKey(Space.Tombstone, ref.bucket, ref.key, ref.versionId));
    if (!tombstone) return undefined;
    const hlc = readU64(tombstone);
    const pending = decodeKeptList(this.db.getSync(keptKey(ref))).some((k) => k.stamp.hlc === hlc);
    return { hlc, pending };
  }

  // ------------------------------------------------------------ multipart uploads

  /**
   * Creates the upload record, or merges the parts it carries (newer same-number parts win).
   * False when the upload was already completed or aborted here: a late part stays out.
   */
  putUpload(upload: pb.IUploadRecord): Promise<boolean> {
    const { bucket, key, uploadId } = upload;
    requireNames('upload', { bucket, key, uploadId });
    const hlc = upload.hlc ?? 0;
    return this.committer.run(async (tx) => {
      if (tx.get(recordKey(Space.EndedUpload, bucket!, key!, uploadId!))) return false;
      const headerKey = recordKey(Space.Upload, bucket!, key!, uploadId!);
      const header = tx.get(headerKey);
      const stored = header && pb.UploadRecord.decode(header);
      if (!stored || (upload.template && (!stored.template || stored.hlc <= hlc))) {
        tx.put(headerKey, encode(pb.UploadRecord, { ...upload, parts: [] }));
      }
      for (const part of upload.parts ?? []) this.putPart(tx, bucket!, key!, uploadId!, hlc, part);
      return true;
    });
  }

  private putPart(tx: Tx, bucket: string, key: string, uploadId: string, hlc: number, part: DataSegment): void {
    const keyBytes = partKey(bucket, key, uploadId, part.partNumber ?? 0);
    const stored = tx.get(keyBytes);
    if (stored && readU64(stored) > hlc) return;
    if (stored) this.releaseAfterCommit(tx, { bucket, key }, segmentsDropped([pb.DataSegment.decode(stored.subarray(8))], [part]));
    const hlcBytes = Buffer.allocUnsafe(8);
    hlcBytes.writeBigUInt64BE(BigInt(hlc));
    tx.put(keyBytes, Buffer.concat([hlcBytes, encode(pb.DataSegment, part)]));
  }

  /** The upload with its parts; only `ended` set once it was completed or aborted here. */
  async getUpload(ref: pb.IUploadKey): Promise<pb.UploadRecord> {
    const { bucket, key, uploadId } = ref;
    requireNames('upload', { bucket, key, uploadId });
    const header = await this.db.get(recordKey(Space.Upload, bucket!, key!, uploadId!));
    if (!header) {
      if (await this.db.get(recordKey(Space.EndedUpload, bucket!, key!, uploadId!))) return pb.UploadRecord.create({ ended: true });
      throw new StoreError('NotFound', `upload ${uploadId} not found`);
    }
    const upload = pb.UploadRecord.decode(header);
    for await (const value of this.db.values(keysUnder(recordKey(Space.Part, bucket!, key!, uploadId!)))) {
      upload.parts.push(pb.DataSegment.decode(value.subarray(8)));
    }
    return upload;
  }

  /**
   * Removes the upload and its part records, remembering it ended so late parts stay out.
   * The parts' shards stay: a completed object uses them, an abort deletes them itself.
   */
  deleteUpload(ref: pb.IUploadKey, now = Date.now()): Promise<void> {
    const { bucket, key, uploadId } = ref;
    requireNames('upload', { bucket, key, uploadId });
    return this.committer.run(async (tx) => {
      tx.del(recordKey(Space.Upload, bucket!, key!, uploadId!));
      tx.put(recordKey(Space.EndedUpload, bucket!, key!, uploadId!), encodeU64Pair(0, now));
      for await (const partKeyBytes of this.db.keys(keysUnder(recordKey(Space.Part, bucket!, key!, uploadId!)))) {
        tx.del(partKeyBytes);
      }
    });
  }

  /** Uploads in key then upload-id order, after (key_marker, upload_id_marker). */
  async listUploads(request: pb.IListUploadsRequest): Promise<pb.UploadRecord[]> {
    const bucket = request.bucket ?? '';
    requireNames('list uploads', { bucket });
    const prefix = prefixKey(Space.Upload, [bucket], request.prefix ?? '');
    const range: { gt?: Buffer; gte?: Buffer; lt: Buffer } = namesStartingWith(prefix);
    const keyMarker = request.keyMarker ?? '';
    if (keyMarker) {
      const after = request.uploadIdMarker
        ? recordKey(Space.Upload, bucket, keyMarker, request.uploadIdMarker)
        : Buffer.concat([prefixKey(Space.Upload, [bucket], keyMarker), Buffer.of(0x01)]);
      if (Buffer.compare(after, prefix) > 0) { delete range.gte; range.gt = after; }
    }
    const uploads: pb.UploadRecord[] = [];
    const limit = request.limit || Infinity;
    for await (const value of this.db.values(range)) {
      if (uploads.length >= limit) break;
      uploads.push(pb.UploadRecord.decode(value));
    }
    return uploads;
  }

  // ------------------------------------------------------------ replicated records

  /** Stores each record unless a newer one (tombstones included) is already there. */
  putRecords(records: readonly pb.IRecord[]): Promise<void> {
    return this.committer.run(async (tx) => {
      for (const record of records) {
        requireNames('record', { namespace: record.namespace, key: record.key });
        const keyBytes = recordKey(Space.Record, record.namespace!, record.key!);
        const stored = tx.get(keyBytes);
        const bytes = encode(pb.Record, record);
        if (stored && !incomingWins(pb.Record.decode(stored).hlc, stored, record.hlc ?? 0, bytes)) continue;
        tx.put(keyBytes, bytes);
      }
    });
  }

  /** The record, including a tombstone (deleted=true) so callers can compare hlcs. */
  async getRecord(namespace: string, key: string): Promise<pb.Record> {
    requireNames('record', { namespace, key });
    const bytes = await this.db.get(recordKey(Space.Record, namespace, key));
    if (!bytes) throw new StoreError('NotFound', `record ${namespace}/${key} not found`);
    return pb.Record.decode(bytes);
  }

  /** Records of a namespace whose key starts with `prefix`, in key order (tombstones on request). */
  async listRecords(namespace: string, prefix: string, { includeDeleted = false } = {}): Promise<pb.Record[]> {
    requireNames('record', { namespace });
    const records: pb.Record[] = [];
    for await (const value of this.db.values(namesStartingWith(prefixKey(Space.Record, [namespace], prefix)))) {
      const record = pb.Record.decode(value);
      if (includeDeleted || !record.deleted) records.push(record);
    }
    return records;
  }

  // ------------------------------------------------------------ cluster map

  async getClusterMap(): Promise<pb.ClusterMap> {
    const bytes = await this.db.get(singletonKey(Space.ClusterMap));
    return bytes ? pb.ClusterMap.decode(bytes) : pb.ClusterMap.create();
  }

  /** Stores the map only when its epoch is newer than the stored one; true when stored. */
  setClusterMap(map: pb.IClusterMap): Promise<boolean> {
    return this.committer.run(async (tx) => {
      const stored = tx.get(singletonKey(Space.ClusterMap));
      if (stored && pb.ClusterMap.decode(stored).epoch >= (map.epoch ?? 0)) return false;
      tx.put(singletonKey(Space.ClusterMap), encode(pb.ClusterMap, map));
      return true;
    });
  }

  // ------------------------------------------------------------ scrubbing support

  /** Every segment named by a local object version or upload part. */
  async *referencedSegments(): AsyncGenerator<DataSegment> {
    for await (const value of this.db.values(this.spaceRange(Space.Object))) {
      yield* pb.ObjectVersion.decode(value).segments;
    }
    for await (const value of this.db.values(this.spaceRange(Space.Kept))) {
      for (const kept of decodeKeptList(value)) yield* segmentsOf(kept.record);
    }
    for await (const value of this.db.values(this.spaceRange(Space.Part))) {
      yield pb.DataSegment.decode(value.subarray(8));
    }
  }
}
