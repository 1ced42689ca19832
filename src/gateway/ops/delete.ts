// DeleteObject and DeleteObjects. Without a version id: versioned buckets get a delete marker,
// suspended ones a null delete marker, unversioned ones lose the null version. With one: that
// version is removed for good.
import { mapLimited } from '../../common/concurrency.js';
import { isStoreError } from '../../common/errors.js';
import type { BucketRecord } from '../bucket-record.js';
import { header, queryParam, requireBucket, requireKey, type S3Context, sendEmpty, sendXml } from '../context.js';
import { S3Error, toS3Error } from '../errors.js';
import { MAX_KEY_BYTES, type OperationSpec } from '../router.js';
import { xmlChild, xmlChildren, xmlText } from '../xml.js';
import { assertVersionDeletable } from './object-lock.js';
import { checkWriteConditions } from './put.js';

const MAX_KEYS_PER_DELETE = 1000;
const DELETE_CONCURRENCY = 64;

export interface DeleteOutcome {
  /** The version removed (by id) or the delete marker created. */
  versionId?: string;
  deleteMarker: boolean;
}

/**
 * Delete one key (or one version of it) in the way the bucket's versioning state says. `ifMatch`
 * (the If-Match header, or an ETag element in DeleteObjects) makes it conditional on the key's
 * current version: `*` or its ETag, else PreconditionFailed; NoSuchKey when there is none.
 */
export async function deleteObject(
  ctx: S3Context,
  bucket: BucketRecord,
  key: string,
  versionId: string | undefined,
  ifMatch?: string,
): Promise<DeleteOutcome> {
  if (ifMatch !== undefined) await checkWriteConditions(ctx, bucket.name, key, { ifMatch });
  if (versionId !== undefined) {
    const version = await ctx.store.getVersion(bucket.name, key, versionId);
    if (!version) return { versionId, deleteMarker: false }; // deleting what is gone succeeds
    await assertVersionDeletable(ctx, version);
    await ctx.store.deleteVersion(bucket.name, key, versionId);
    return { versionId, deleteMarker: Boolean(version.deleteMarker) };
  }
  if (bucket.versioning === undefined) {
    await ignoreNotFound(ctx.store.deleteVersion(bucket.name, key, 'null'));
    return { deleteMarker: false };
  }
  const marker = await ctx.store.writeDeleteMarker(
    { bucket: bucket.name, key, versionId: bucket.versioning === 'Enabled' ? 'new' : 'null' },
    { lastModifiedMs: Date.now() },
  );
  return { versionId: marker.versionId, deleteMarker: true };
}

async function ignoreNotFound(work: Promise<void>): Promise<void> {
  try {
    await work;
  } catch (err) {
    if (!isStoreError(err, 'NotFound')) throw err;
  }
}

function outcomeHeaders(outcome: DeleteOutcome): Record<string, string> {
  return {
    ...(outcome.versionId !== undefined ? { 'x-amz-version-id': outcome.versionId } : {}),
    ...(outcome.deleteMarker ? { 'x-amz-delete-marker': 'true' } : {}),
  };
}

async function deleteOne(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const outcome = await deleteObject(ctx, bucket, requireKey(ctx), queryParam(ctx, 'versionId'), header(ctx.request, 'if-match'));
  void ctx.reply.headers(outcomeHeaders(outcome));
  sendEmpty(ctx, 204);
}

interface DeleteRequestEntry {
  key: string;
  versionId?: string;
  /** Delete only if the current version has this ETag (conditional delete). */
  etag?: string;
}

async function parseDeleteRequest(ctx: S3Context): Promise<{ quiet: boolean; entries: DeleteRequestEntry[] }> {
  const document = xmlChild(await ctx.body.xml(['Object']), 'Delete');
  if (!document) throw new S3Error('MalformedXML');
  const objects = xmlChildren(document, 'Object');
  if (objects.length === 0 || objects.length > MAX_KEYS_PER_DELETE) throw new S3Error('MalformedXML');
  const entries = objects.map((object) => {
    const key = xmlText(object, 'Key');
    if (key === undefined || key === '') throw new S3Error('MalformedXML');
    return { key, versionId: xmlText(object, 'VersionId'), etag: xmlText(object, 'ETag') };
  });
  return { quiet: xmlText(document, 'Quiet')?.trim().toLowerCase() === 'true', entries };
}

async function deleteMany(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const { quiet, entries } = await parseDeleteRequest(ctx);
  const results = await mapLimited(entries, DELETE_CONCURRENCY, async (entry) => {
    try {
      if (Buffer.byteLength(entry.key) > MAX_KEY_BYTES) throw new S3Error('KeyTooLongError');
      return { entry, outcome: await deleteObject(ctx, bucket, entry.key, entry.versionId, entry.etag) };
    } catch (err) {
      const error = toS3Error(err);
      if (error.status >= 500) ctx.log.error({ err: error.cause ?? error, key: entry.key }, 'DeleteObjects entry failed');
      return { entry, error };
    }
  });
  sendXml(ctx, 'DeleteResult', {
    Deleted: results.filter((r) => r.outcome && !quiet).map(({ entry, outcome }) => ({
      Key: entry.key,
      VersionId: entry.versionId,
      DeleteMarker: outcome!.deleteMarker ? true : undefined,
      DeleteMarkerVersionId: outcome!.deleteMarker ? outcome!.versionId : undefined,
    })),
    Error: results.filter((r) => r.error).map(({ entry, error }) => ({
      Key: entry.key,
      VersionId: entry.versionId,
      Code: error!.code,
      Message: error!.message,
    })),
  });
}

export const operations: OperationSpec[] = [
  { name: 'DeleteObject', method: 'DELETE', scope: 'object', action: 's3:DeleteObject', handle: deleteOne },
  { name: 'DeleteObjects', method: 'POST', scope: 'bucket', subresource: 'delete', action: 's3:DeleteObject', handle: deleteMany },
];
