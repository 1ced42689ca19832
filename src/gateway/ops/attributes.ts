// Gateway-owned attributes of a version (retention, legal hold, ACL, the checksum algorithm of a
// multipart upload), kept as JSON in the version's `attributesJson` so the layers below stay S3-blind.
import type { ObjectVersion } from '../../replication/types.js';
import { aclFromHeaders, type Grant, grantsFor } from '../acl.js';
import type { BucketRecord } from '../bucket-record.js';
import type { S3Context } from '../context.js';
import type { StoredEncryption } from '../sse.js';
import { lockAttributesForNewObject } from './object-lock.js';

export type RetentionMode = 'GOVERNANCE' | 'COMPLIANCE';

export interface Retention {
  mode: RetentionMode;
  untilMs: number;
}

export interface ObjectAttributes {
  retention?: Retention;
  legalHold?: boolean;
  /** Explicit grants; absent means the owner's FULL_CONTROL only. */
  acl?: Grant[];
  /** Multipart uploads: the x-amz-checksum-algorithm parts are checked with. */
  checksumAlgorithm?: string;
  /** Multipart uploads: who started the upload. */
  initiator?: { id: string; displayName: string };
  /** Server-side encryption of the data (../sse.ts); never a usable key. */
  encryption?: StoredEncryption;
}

export function attributesOf(version: Pick<ObjectVersion, 'attributesJson'>): ObjectAttributes {
  return version.attributesJson ? (JSON.parse(version.attributesJson) as ObjectAttributes) : {};
}

export function attributesJson(attributes: ObjectAttributes): string {
  return Object.values(attributes).some((v) => v !== undefined) ? JSON.stringify(attributes) : '';
}

/** The version with some attributes changed (undefined removes one). */
export function withAttributes<T extends Pick<ObjectVersion, 'attributesJson'>>(version: T, change: Partial<ObjectAttributes>): T {
  return { ...version, attributesJson: attributesJson({ ...attributesOf(version), ...change }) };
}

/** The gateway-owned attributes of a new object: x-amz-object-lock-* (or the bucket default) and x-amz-acl. */
export function newObjectAttributes(ctx: S3Context, bucket: BucketRecord): string {
  return attributesJson({ ...lockAttributesForNewObject(ctx, bucket), acl: grantsFor(bucket, aclFromHeaders(ctx, bucket.owner)) });
}
