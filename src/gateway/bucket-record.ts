// Buckets are small JSON records in the store's replicated "buckets" namespace. Every bucket
// configuration (versioning, object lock, policy, CORS, lifecycle, ...) is a field of the record,
// so a bucket is read with one record fetch. Modules add their optional fields here.
import type { ObjectStore, WriteTarget } from '../replication/types.js';
import { ExpiringCache } from './expiring-cache.js';

export const BUCKETS_NAMESPACE = 'buckets';

export type VersioningState = 'Enabled' | 'Suspended';

export interface BucketOwner {
  id: string;
  displayName: string;
}

/** PutPublicAccessBlock's four switches (ops/public-access-block.ts). */
export interface PublicAccessBlock {
  blockPublicAcls: boolean;
  ignorePublicAcls: boolean;
  blockPublicPolicy: boolean;
  restrictPublicBuckets: boolean;
}

/** S3 Object Ownership (ops/ownership-controls.ts); BucketOwnerEnforced disables ACLs. */
export const OBJECT_OWNERSHIP_SETTINGS = ['BucketOwnerEnforced', 'BucketOwnerPreferred', 'ObjectWriter'] as const;
export type ObjectOwnership = typeof OBJECT_OWNERSHIP_SETTINGS[number];

export interface BucketRecord {
  name: string;
  owner: BucketOwner;
  createdMs: number;
  region: string;
  /** Absent: never versioned. */
  versioning?: VersioningState;
  /** Set at creation (x-amz-bucket-object-lock-enabled); implies versioning Enabled. */
  objectLockEnabled?: boolean;
  /** Configuration documents owned by their modules (stored as the module chooses). */
  objectLock?: unknown;
  policy?: string;
  acl?: unknown;
  cors?: unknown;
  lifecycle?: unknown;
  tagging?: Record<string, string>;
  /** Default server-side encryption of new objects (PutBucketEncryption, ops/encryption.ts). */
  encryption?: 'AES256';
  publicAccessBlock?: PublicAccessBlock;
  objectOwnership?: ObjectOwnership;
  /** Static-website configuration (ops/website.ts, served by website.ts). */
  website?: unknown;
}

/** Where a new write to `key` goes: a fresh version in versioned buckets, the null version otherwise. */
export function writeTargetFor(bucket: BucketRecord, key: string): WriteTarget {
  return { bucket: bucket.name, key, versionId: bucket.versioning === 'Enabled' ? 'new' : 'null' };
}

/** S3 general-purpose bucket naming rules. Returns the violated rule, or undefined when valid. */
export function bucketNameProblem(name: string): string | undefined {
  if (name.length < 3 || name.length > 63) return 'Bucket name must be between 3 and 63 characters long';
  if (!/^[a-z0-9][a-z0-9.-]*[a-z0-9]$/.test(name)) return 'Bucket name must use lowercase letters, digits, dots and hyphens, and begin and end with a letter or digit';
  if (name.includes('..')) return 'Bucket name must not contain two adjacent periods';
  if (/^\d+\.\d+\.\d+\.\d+$/.test(name)) return 'Bucket name must not be formatted as an IP address';
  if (/^(xn--|sthree-|amzn-s3-demo-)/.test(name)) return 'Bucket name must not start with a reserved prefix';
  if (/(-s3alias|--ol-s3|\.mrap|--x-s3|--table-s3)$/.test(name)) return 'Bucket name must not end with a reserved suffix';
  return undefined;
}

/**
 * Reads and writes bucket records. Records are cached briefly because every object request
 * needs its bucket; this gateway's own writes update the cache at once, other gateways' writes
 * are seen within a second.
 */
export class BucketRegistry {
  private readonly cache: ExpiringCache<BucketRecord | undefined>;

  constructor(private readonly store: ObjectStore) {
    this.cache = new ExpiringCache(1000, async (name) => {
      const raw = await store.getRecord(BUCKETS_NAMESPACE, name);
      return raw ? (JSON.parse(raw.toString('utf8')) as BucketRecord) : undefined;
    });
  }

  get(name: string): Promise<BucketRecord | undefined> {
    return this.cache.get(name);
  }

  async put(record: BucketRecord): Promise<void> {
    await this.store.putRecord(BUCKETS_NAMESPACE, record.name, Buffer.from(JSON.stringify(record)));
    this.cache.set(record.name, record);
  }

  async delete(name: string): Promise<void> {
    await this.store.putRecord(BUCKETS_NAMESPACE, name, null);
    this.cache.set(name, undefined);
  }

  /** All buckets whose name starts with `prefix`, in name order. */
  async list(prefix = ''): Promise<BucketRecord[]> {
    const records = await this.store.listRecords(BUCKETS_NAMESPACE, prefix);
    return records
      .map((r) => JSON.parse(r.value.toString('utf8')) as BucketRecord)
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
}
