// PutObject, and the building blocks every object write shares (CopyObject and multipart reuse
// versionFieldsFromHeaders / storedChecksumHeaders / checkWriteConditions).
import type { ObjectVersion, VersionFields, WriteTarget } from '../../replication/types.js';
import { type BucketRecord, writeTargetFor } from '../bucket-record.js';
import { checksumHeader, parseChecksumAlgorithm } from '../checksums.js';
import { header, requireBucket, requireKey, type S3Context, sendEmpty } from '../context.js';
import { S3Error } from '../errors.js';
import type { OperationSpec } from '../router.js';
import { type EncryptedBody, encryptionForWrite, withEncryption } from '../sse.js';
import { newObjectAttributes } from './attributes.js';
import { etagMatches } from './get.js';

export const MAX_OBJECT_BYTES = 5 * 1024 ** 3;
const MAX_USER_METADATA_BYTES = 2048;

/** System headers stored with a version and returned on GET/HEAD. */
export const STORED_HEADERS = ['cache-control', 'content-disposition', 'content-encoding', 'content-language', 'expires', 'x-amz-website-redirect-location'] as const;

export const STORAGE_CLASSES = new Set(['STANDARD', 'REDUCED_REDUNDANCY', 'STANDARD_IA', 'ONEZONE_IA', 'INTELLIGENT_TIERING', 'GLACIER', 'DEEP_ARCHIVE', 'GLACIER_IR', 'OUTPOSTS', 'EXPRESS_ONEZONE', 'SNOW']);

/**
 * The S3-level fields of a new version from the request headers: content type, stored system
 * headers, x-amz-meta-* (byte-exact: header strings hold the bytes as sent), storage class, tags,
 * and the gateway-owned attributes (object lock, ACL).
 */
export function versionFieldsFromHeaders(ctx: S3Context, bucket: BucketRecord): VersionFields {
  const headers: Record<string, string> = {};
  for (const name of STORED_HEADERS) {
    let value = header(ctx.request, name);
    // aws-chunked is transfer framing, not a property of the stored object.
    if (name === 'content-encoding' && value !== undefined) value = value.split(',').map((v) => v.trim()).filter((v) => v !== '' && v !== 'aws-chunked').join(',');
    if (value !== undefined && value !== '') headers[name] = value;
  }
  const storageClass = header(ctx.request, 'x-amz-storage-class') ?? 'STANDARD';
  if (!STORAGE_CLASSES.has(storageClass)) throw new S3Error('InvalidStorageClass', { fields: { StorageClassRequested: storageClass } });
  return {
    contentType: header(ctx.request, 'content-type') ?? 'binary/octet-stream',
    headers,
    userMetadata: userMetadataFromHeaders(ctx),
    tags: tagsFromHeader(header(ctx.request, 'x-amz-tagging')),
    storageClass,
    attributesJson: newObjectAttributes(ctx, bucket),
  };
}

function userMetadataFromHeaders(ctx: S3Context): Record<string, string> {
  const metadata: Record<string, string> = {};
  let bytes = 0;
  const raw = ctx.request.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (!name.startsWith('x-amz-meta-')) continue;
    const key = name.slice('x-amz-meta-'.length);
    const value = raw[i + 1]!;
    metadata[key] = key in metadata ? `${metadata[key]},${value}` : value;
    bytes += key.length + value.length;
  }
  if (bytes > MAX_USER_METADATA_BYTES) throw new S3Error('MetadataTooLarge', { fields: { Size: bytes, MaxSizeAllowed: MAX_USER_METADATA_BYTES } });
  return metadata;
}

/** `x-amz-tagging: k1=v1&k2=v2` (URL-encoded), with S3's limits. */
export function tagsFromHeader(value: string | undefined): Record<string, string> {
  if (value === undefined || value === '') return {};
  const tags: Record<string, string> = {};
  for (const [key, tagValue] of new URLSearchParams(value)) {
    if (key in tags) throw new S3Error('InvalidTag', { message: 'Cannot provide multiple Tags with the same key' });
    if (key.length === 0 || key.length > 128) throw new S3Error('InvalidTag', { message: 'The TagKey you have provided is invalid' });
    if (tagValue.length > 256) throw new S3Error('InvalidTag', { message: 'The TagValue you have provided is too long, max length is 256' });
    tags[key] = tagValue;
  }
  if (Object.keys(tags).length > 10) throw new S3Error('InvalidTag', { message: 'Object tags cannot be greater than 10' });
  return tags;
}

/** x-amz-checksum-<alg> response headers for the checksums stored with a version. */
export function storedChecksumHeaders(checksums: Record<string, string> | null | undefined): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(checksums ?? {})) {
    const algorithm = parseChecksumAlgorithm(name);
    if (algorithm) headers[checksumHeader(algorithm)] = value;
  }
  return headers;
}

export interface WriteConditions {
  ifNoneMatch?: string;
  ifMatch?: string;
}

export function writeConditionsOf(ctx: S3Context): WriteConditions {
  const ifNoneMatch = header(ctx.request, 'if-none-match');
  if (ifNoneMatch !== undefined && ifNoneMatch.trim() !== '*') {
    throw new S3Error('NotImplemented', { message: 'If-None-Match on writes supports only *' });
  }
  return { ifNoneMatch, ifMatch: header(ctx.request, 'if-match') };
}

/** Conditional writes: If-None-Match: * (only if absent) and If-Match (only if the ETag is current). */
export async function checkWriteConditions(ctx: S3Context, bucket: string, key: string, conditions: WriteConditions): Promise<void> {
  if (conditions.ifNoneMatch === undefined && conditions.ifMatch === undefined) return;
  const current = await ctx.store.getVersion(bucket, key);
  const exists = current !== undefined && !current.deleteMarker;
  if (conditions.ifNoneMatch !== undefined && exists) throw new S3Error('PreconditionFailed', { fields: { Condition: 'If-None-Match' } });
  if (conditions.ifMatch !== undefined) {
    if (!exists) throw new S3Error('NoSuchKey', { fields: { Key: key } });
    if (!etagMatches(conditions.ifMatch, current.etag ?? '')) throw new S3Error('PreconditionFailed', { fields: { Condition: 'If-Match' } });
  }
}

/** Require a declared body length, as S3 does (chunked uploads declare the decoded length). */
export function requireContentLength(ctx: S3Context): void {
  const declared = ctx.body.declaredLength();
  if (declared === undefined && ctx.request.headers['transfer-encoding'] === undefined) throw new S3Error('MissingContentLength');
}

/**
 * Stream a request body into a new version. The conditions are checked before the upload and
 * again just before the version commits; a verification failure in the body aborts the write.
 */
export async function writeVersion(
  ctx: S3Context,
  target: WriteTarget,
  body: AsyncIterable<Buffer>,
  fields: VersionFields,
  conditions: WriteConditions = {},
  encrypted?: EncryptedBody,
): Promise<ObjectVersion> {
  await checkWriteConditions(ctx, target.bucket, target.key, conditions);
  return ctx.store.writeObject(target, encrypted?.stream ?? body, async (streamed) => {
    if (ctx.body.failure) throw ctx.body.failure;
    await checkWriteConditions(ctx, target.bucket, target.key, conditions);
    const etag = encrypted ? encrypted.etag(streamed.md5Hex) : `"${streamed.md5Hex}"`;
    return { ...fields, etag, lastModifiedMs: Date.now(), checksums: ctx.body.checksums() };
  });
}

/** x-amz-version-id is reported by buckets that have (ever) had versioning configured. */
export function versionIdHeader(bucket: BucketRecord, version: Pick<ObjectVersion, 'versionId'>): Record<string, string> {
  return bucket.versioning !== undefined || version.versionId !== 'null' ? { 'x-amz-version-id': version.versionId } : {};
}

async function putObject(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const key = requireKey(ctx);
  requireContentLength(ctx);
  const fields = versionFieldsFromHeaders(ctx, bucket);
  const conditions = writeConditionsOf(ctx);
  const encryption = encryptionForWrite(ctx, ctx.config.sseMasterKeys, bucket);
  const encrypted = encryption?.encrypt(ctx.body.stream(MAX_OBJECT_BYTES));
  const body = encrypted?.stream ?? ctx.body.chunks(MAX_OBJECT_BYTES);
  const version = await writeVersion(ctx, writeTargetFor(bucket, key), body, withEncryption(fields, encryption), conditions, encrypted);
  void ctx.reply.headers({
    etag: version.etag ?? '',
    ...versionIdHeader(bucket, version),
    ...storedChecksumHeaders(version.checksums),
    ...encryption?.headers,
  });
  sendEmpty(ctx);
}

export const operations: OperationSpec[] = [
  { name: 'PutObject', method: 'PUT', scope: 'object', action: 's3:PutObject', handle: putObject },
];
