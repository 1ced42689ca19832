// Metadata of one node in LevelDB: object versions, tombstones of purged versions, multipart
// uploads, replicated records and the cluster map. Every write goes through the group committer,
// so each rule below is a read-check-write that sees all earlier writes, batched or not.
import { Level } from 'level';
import { StoreError } from '../common/errors.js';
import { pb } from '../common/node-service.js';
import { GroupCommitter, type Db, type Tx } from './group-commit.js';
import {
  Space, encodeU64Pair, hlcOfInverted, invertedHlc, keysUnder, namesStartingWith, objectKey, partKey, prefixKey,
  readU64, recordKey, singletonKey, spaceEnd,
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

function encode<T>(cls: { encode(message: T): { finish(): Uint8Array } }, message: T): Buffer {
  const bytes = cls.encode(message).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
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

  /** Stores each version unless a newer one (or a tombstone) already won; true where applied. */
  putVersions(versions: readonly ObjectVersion[]): Promise<boolean[]> {
    return this.committer.run(async (tx) => {
      const applied: boolean[] = [];
      for (const version of versions) applied.push(this.putVersion(tx, version));
      return applied;
    });
  }

  private putVersion(tx: Tx, version: ObjectVersion): boolean {
    const { bucket, key, versionId, hlc } = version;
    requireNames('object version', { bucket, key, versionId });
    const tombstone = tx.get(recordKey(Space.Tombstone, bucket, key, versionId));
    if (tombstone && readU64(tombstone) >= hlc) return false;
    const indexKey = recordKey(Space.VersionIndex, bucket, key, versionId);
    const stored = tx.get(indexKey);
    const storedKey = stored && objectKey(bucket, key, stored, versionId);
    const storedBytes = storedKey && tx.get(storedKey);
    const bytes = encode(pb.ObjectVersion, version);
    if (stored && storedBytes && !versionWins(hlcOfInverted(stored), storedBytes, version, bytes)) return false;
    if (storedKey) tx.del(storedKey);
    const inverted = invertedHlc(hlc);
    tx.put(objectKey(bucket, key, inverted, versionId), bytes);
    tx.put(indexKey, inverted);
    if (storedBytes) this.releaseAfterCommit(tx, segmentsDropped(pb.ObjectVersion.decode(storedBytes).segments, version.segments));
    else tx.afterCommit(() => { this.versionCount++; });
    return true;
  }

  private releaseAfterCommit(tx: Tx, segments: DataSegment[]): void {
    if (segments.length > 0) tx.afterCommit(() => this.options.releaseSegments(segments));
  }

  /**
   * Purges exact versions stored at or before `hlc` (0: whatever is stored now) and leaves a
   * tombstone so a late write of the same version stays deleted. Their local shards go too.
   */
  deleteVersions(refs: readonly VersionRef[], hlc: number, now = Date.now()): Promise<void> {
    return this.committer.run(async (tx) => {
      for (const ref of refs) this.deleteVersion(tx, ref, hlc, now);
    });
  }

  private deleteVersion(tx: Tx, { bucket, key, versionId }: VersionRef, hlc: number, now: number): void {
    requireNames('delete', { bucket, key, versionId });
    const indexKey = recordKey(Space.VersionIndex, bucket, key, versionId);
    const stored = tx.get(indexKey);
    const storedHlc = stored ? hlcOfInverted(stored) : 0;
    const deleteHlc = hlc || storedHlc;
    if (stored && storedHlc <= deleteHlc) {
      const storedKey = objectKey(bucket, key, stored, versionId);
      const removed = tx.get(storedKey);
      tx.del(storedKey);
      tx.del(indexKey);
      tx.afterCommit(() => { this.versionCount--; });
      if (removed) this.releaseAfterCommit(tx, segmentsDropped(pb.ObjectVersion.decode(removed).segments, []));
    }
    const tombstoneKey = recordKey(Space.Tombstone, bucket, key, versionId);
    const tombstone = tx.get(tombstoneKey);
    if (!tombstone || readU64(tombstone) < deleteHlc) tx.put(tombstoneKey, encodeU64Pair(deleteHlc, now));
  }

  /** Drops tombstones older than the TTL: by then no late write of their version is in flight. */
  async purgeExpiredTombstones(now = Date.now()): Promise<number> {
    const expired: Buffer[] = [];
    for (const space of [Space.Tombstone, Space.EndedUpload]) {
      for await (const [key, value] of this.db.iterator(this.spaceRange(space))) {
        if (readU64(value, 8) + TOMBSTONE_TTL_MS < now) expired.push(key);
      }
    }
    if (expired.length > 0) {
      await this.committer.run(async (tx) => { for (const key of expired) tx.del(key); });
    }
    return expired.length;
  }

  /** The version asked for, or the newest (possibly a delete marker) when version_id is empty. */
  async getVersion({ bucket, key, versionId }: VersionRef): Promise<ObjectVersion | undefined> {
    requireNames('get', { bucket, key });
    if (!versionId) {
      const [newest] = await this.db.values({ ...keysUnder(recordKey(Space.Object, bucket, key)), limit: 1 }).all();
      return newest && pb.ObjectVersion.decode(newest);
    }
    const inverted = await this.db.get(recordKey(Space.VersionIndex, bucket, key, versionId));
    const bytes = inverted && (await this.db.get(objectKey(bucket, key, inverted, versionId)));
    return bytes ? pb.ObjectVersion.decode(bytes) : undefined;
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
    if (stored) this.releaseAfterCommit(tx, segmentsDropped([pb.DataSegment.decode(stored.subarray(8))], [part]));
    const hlcBytes = Buffer.allocUnsafe(8);
    hlcBytes.writeBigUInt64BE(BigInt(hlc));
    tx.put(keyBytes, Buffer.concat([hlcBytes, encode(pb.DataSegment, part)]));
  }

  async getUpload(ref: pb.IUploadKey): Promise<pb.UploadRecord> {
    const { bucket, key, uploadId } = ref;
    requireNames('upload', { bucket, key, uploadId });
    const header = await this.db.get(recordKey(Space.Upload, bucket!, key!, uploadId!));
    if (!header) throw new StoreError('NotFound', `upload ${uploadId} not found`);
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

  /** Live records of a namespace whose key starts with `prefix`, in key order. */
  async listRecords(namespace: string, prefix: string): Promise<pb.Record[]> {
    requireNames('record', { namespace });
    const records: pb.Record[] = [];
    for await (const value of this.db.values(namesStartingWith(prefixKey(Space.Record, [namespace], prefix)))) {
      const record = pb.Record.decode(value);
      if (!record.deleted) records.push(record);
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
    for await (const value of this.db.values(this.spaceRange(Space.Part))) {
      yield pb.DataSegment.decode(value.subarray(8));
    }
  }
}
