// The interface between the gateway and the replication layer (the cluster client).
// The gateway speaks S3; below this line there are only versions, segments and records.
import type { Readable } from 'node:stream';
import type { pb } from '../common/node-service.js';

/** Replicated-record namespace of bucket records (the healer and rebalancer walk every bucket). */
export const BUCKET_NAMESPACE = 'buckets';

export type ObjectVersion = pb.IObjectVersion & { bucket: string; key: string; versionId: string; hlc: number };
export type ClusterMap = pb.IClusterMap;
export type DataSegment = pb.IDataSegment;
export type UploadRecord = pb.IUploadRecord;

/** Where a write goes: `versionId: 'null'` replaces the null version; 'new' mints a time-ordered id. */
export interface WriteTarget {
  bucket: string;
  key: string;
  versionId: 'null' | 'new';
}

/** What the writer learned while streaming the body. */
export interface StreamedBody {
  size: number;
  md5Hex: string;
}

/**
 * Called once the body is fully received and its shards are durable, just before metadata
 * commits. It returns the S3-level fields of the version, or throws (e.g. BadDigest) to abort
 * the write: the shards are then deleted and nothing becomes visible.
 */
export type FinalizeVersion = (body: StreamedBody) => Promise<VersionFields> | VersionFields;

export type VersionFields = Omit<pb.IObjectVersion, 'bucket' | 'key' | 'versionId' | 'hlc' | 'segments' | 'size'>;

export interface ByteRange {
  start: number; // inclusive
  end: number;   // inclusive
}

export interface ListOptions {
  prefix?: string;
  delimiter?: string;
  startAfter?: string;
  startAfterVersion?: string;
  allVersions?: boolean;
  includeDeleteMarkers?: boolean;
  /** Stop after this many entries (keys and common prefixes). */
  limit: number;
}

export interface ListItem {
  commonPrefix?: string;
  version?: ObjectVersion;
}

export interface ErasureChoice {
  dataShards: number;
  parityShards: number;
}

/** The cluster client as the gateway sees it. */
export interface ObjectStore {
  // --- objects
  writeObject(target: WriteTarget, body: AsyncIterable<Buffer>, finalize: FinalizeVersion, ec?: ErasureChoice): Promise<ObjectVersion>;
  writeDeleteMarker(target: WriteTarget, fields?: VersionFields): Promise<ObjectVersion>;
  /** Replace the record of an existing version (tags, retention, ACL): same data, same version id. */
  updateVersion(version: ObjectVersion): Promise<void>;
  /** The given version, or the newest one (which may be a delete marker); undefined if none. */
  getVersion(bucket: string, key: string, versionId?: string): Promise<ObjectVersion | undefined>;
  /** Stream the bytes of a version (a range of them), verified; reconstructs around bad shards. */
  readObject(version: ObjectVersion, range?: ByteRange): Readable;
  /** Permanently remove one version and its data. */
  deleteVersion(bucket: string, key: string, versionId: string): Promise<void>;
  list(bucket: string, options: ListOptions): Promise<{ items: ListItem[]; truncated: boolean }>;

  // --- multipart
  createUpload(record: UploadRecord & { bucket: string; key: string; uploadId: string }): Promise<void>;
  writePart(upload: { bucket: string; key: string; uploadId: string }, partNumber: number, body: AsyncIterable<Buffer>,
    finalize: (body: StreamedBody) => Promise<Pick<DataSegment, 'checksums'>> | Pick<DataSegment, 'checksums'>): Promise<DataSegment>;
  getUpload(bucket: string, key: string, uploadId: string): Promise<UploadRecord | undefined>;
  listUploads(bucket: string, options: { prefix?: string; keyMarker?: string; uploadIdMarker?: string; limit: number }): Promise<UploadRecord[]>;
  /** Stitch the chosen parts into a new version (no data copy) and drop the upload. */
  completeUpload(upload: UploadRecord, parts: DataSegment[], target: WriteTarget, fields: VersionFields): Promise<ObjectVersion>;
  abortUpload(bucket: string, key: string, uploadId: string): Promise<void>;

  // --- small replicated records (buckets, keys, policies): newest write wins
  putRecord(namespace: string, key: string, value: Buffer | null): Promise<void>;
  getRecord(namespace: string, key: string): Promise<Buffer | undefined>;
  listRecords(namespace: string, prefix?: string): Promise<Array<{ key: string; value: Buffer }>>;

  // --- cluster
  clusterMap(): ClusterMap;
  /** Nodes the client currently considers reachable, for readiness checks. */
  healthyNodeCount(): number;
  close(): Promise<void>;
}
