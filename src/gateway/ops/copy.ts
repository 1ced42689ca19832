// CopyObject, and the copy source every server-side copy shares (UploadPartCopy reuses
// `copySource`): x-amz-copy-source with an optional versionId, read permission on the source,
// and the x-amz-copy-source-if-* preconditions.
import type { ObjectVersion, VersionFields } from '../../replication/types.js';
import { authorize, resourceOf } from '../auth/authorize.js';
import { type BucketRecord, writeTargetFor } from '../bucket-record.js';
import { assertExpectedOwner, header, requireBucket, requireKey, type S3Context, sendXml } from '../context.js';
import { S3Error } from '../errors.js';
import type { OperationSpec } from '../router.js';
import { decryptionFor, encryptionForWrite, withEncryption } from '../sse.js';
import { evaluateConditions, resolveVersion } from './get.js';
import { MAX_OBJECT_BYTES, storedChecksumHeaders, tagsFromHeader, versionFieldsFromHeaders, versionIdHeader, writeVersion } from './put.js';

export interface CopySource {
  bucket: BucketRecord;
  version: ObjectVersion;
  /** Whether the request named a version (x-amz-copy-source-version-id is then echoed). */
  byVersionId: boolean;
}

/** `/bucket/key?versionId=v` or `bucket/key`, percent-encoded. */
export function parseCopySource(value: string): { bucket: string; key: string; versionId?: string } {
  const queryStart = value.indexOf('?');
  const path = queryStart < 0 ? value : value.slice(0, queryStart);
  const query = new URLSearchParams(queryStart < 0 ? '' : value.slice(queryStart + 1));
  let decoded: string;
  try {
    decoded = decodeURIComponent(path.startsWith('/') ? path.slice(1) : path);
  } catch {
    throw new S3Error('InvalidArgument', { message: 'Invalid copy source encoding', fields: { ArgumentName: 'x-amz-copy-source' } });
  }
  const slash = decoded.indexOf('/');
  if (slash <= 0 || slash === decoded.length - 1) {
    throw new S3Error('InvalidArgument', { message: 'Copy Source must mention the source bucket and key: sourcebucket/sourcekey', fields: { ArgumentName: 'x-amz-copy-source', ArgumentValue: value } });
  }
  return { bucket: decoded.slice(0, slash), key: decoded.slice(slash + 1), versionId: query.get('versionId') ?? undefined };
}

/** The version a copy reads, after checking permission and the copy-source preconditions. */
export async function copySource(ctx: S3Context): Promise<CopySource> {
  const source = parseCopySource(header(ctx.request, 'x-amz-copy-source') ?? '');
  await authorize(ctx, ctx.principal, source.versionId ? 's3:GetObjectVersion' : 's3:GetObject', resourceOf(source.bucket, source.key));
  const bucket = await ctx.buckets.get(source.bucket);
  if (!bucket) throw new S3Error('NoSuchBucket', { fields: { BucketName: source.bucket } });
  assertExpectedOwner(ctx, bucket, 'x-amz-source-expected-bucket-owner');
  const version = await resolveVersion(ctx, bucket, source.key, source.versionId);
  const condition = evaluateConditions((name) => header(ctx.request, `x-amz-copy-source-${name}`), version);
  if (condition !== 'ok') throw new S3Error('PreconditionFailed', { fields: { Condition: 'x-amz-copy-source-If-*' } });
  return { bucket, version, byVersionId: source.versionId !== undefined };
}

/** Response headers naming the source version. */
export function copySourceHeaders(source: CopySource): Record<string, string> {
  return source.version.versionId !== 'null' || source.byVersionId ? { 'x-amz-copy-source-version-id': source.version.versionId } : {};
}

function directive(ctx: S3Context, name: string): 'COPY' | 'REPLACE' {
  const value = (header(ctx.request, name) ?? 'COPY').toUpperCase();
  if (value !== 'COPY' && value !== 'REPLACE') throw new S3Error('InvalidArgument', { message: `Unknown ${name}`, fields: { ArgumentName: name, ArgumentValue: value } });
  return value;
}

/** The new version's fields: metadata and tags from the source or the request, per the directives. */
function copiedFields(ctx: S3Context, bucket: BucketRecord, source: ObjectVersion): VersionFields {
  const fromRequest = versionFieldsFromHeaders(ctx, bucket);
  const metadata = directive(ctx, 'x-amz-metadata-directive') === 'REPLACE'
    ? fromRequest
    : { ...fromRequest, contentType: source.contentType, headers: source.headers, userMetadata: source.userMetadata };
  const tags = directive(ctx, 'x-amz-tagging-directive') === 'REPLACE' ? tagsFromHeader(header(ctx.request, 'x-amz-tagging')) : source.tags;
  // Retention and ACL belong to the new object (request or bucket defaults), never to the source.
  return { ...metadata, tags, storageClass: header(ctx.request, 'x-amz-storage-class') ?? source.storageClass ?? 'STANDARD' };
}

function isSameObject(ctx: S3Context, bucket: BucketRecord, key: string, source: CopySource): boolean {
  return source.bucket.name === bucket.name && source.version.key === key && !source.byVersionId;
}

async function copyObject(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const key = requireKey(ctx);
  const source = await copySource(ctx);
  const size = Number(source.version.size ?? 0);
  if (size > MAX_OBJECT_BYTES) {
    throw new S3Error('InvalidRequest', { message: `The specified copy source is larger than the maximum allowable size for a copy source: ${MAX_OBJECT_BYTES}` });
  }
  const sourceDecryption = decryptionFor(ctx, ctx.config.sseMasterKeys, source.version, { copySource: true });
  const encryption = encryptionForWrite(ctx, ctx.config.sseMasterKeys, bucket);
  const changesSomething = encryption !== undefined || directive(ctx, 'x-amz-metadata-directive') === 'REPLACE'
    || header(ctx.request, 'x-amz-storage-class') !== undefined || header(ctx.request, 'x-amz-website-redirect-location') !== undefined;
  if (isSameObject(ctx, bucket, key, source) && !changesSomething) {
    throw new S3Error('InvalidRequest', { message: 'This copy request is illegal because it is trying to copy an object to itself without changing the object\'s metadata, storage class, website redirect location or encryption attributes.' });
  }
  const fields = copiedFields(ctx, bucket, source.version);
  const plaintext = sourceDecryption.decrypt(ctx.store.readObject(source.version));
  const version = await writeVersion(ctx, writeTargetFor(bucket, key), plaintext, withEncryption(fields, encryption), {}, encryption?.encrypt(plaintext));
  void ctx.reply.headers({ ...versionIdHeader(bucket, version), ...copySourceHeaders(source), ...encryption?.headers });
  sendXml(ctx, 'CopyObjectResult', {
    ETag: version.etag ?? '',
    LastModified: new Date(Number(version.lastModifiedMs ?? 0)),
    ...checksumElementsOf(storedChecksumHeaders(version.checksums)),
  });
}

/** `x-amz-checksum-crc32` headers as `ChecksumCRC32` elements. */
export function checksumElementsOf(headers: Record<string, string>): Record<string, string> {
  const elements: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) elements[`Checksum${name.slice('x-amz-checksum-'.length).toUpperCase()}`] = value;
  return elements;
}

export const operations: OperationSpec[] = [
  {
    name: 'CopyObject', method: 'PUT', scope: 'object', action: 's3:PutObject', handle: copyObject,
    when: (_address, headerOf) => headerOf('x-amz-copy-source') !== undefined,
  },
];

