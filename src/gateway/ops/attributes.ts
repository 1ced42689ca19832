// Gateway-owned attributes of a version (retention, legal hold, ACL, the checksum algorithm of a
// multipart upload), kept as JSON in the version's `attributesJson` so the layers below stay S3-blind.
import type { ObjectVersion } from '../../replication/types.js';
import type { Grant } from '../acl.js';

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
