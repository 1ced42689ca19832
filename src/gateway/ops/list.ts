// ListObjectsV2, ListObjects (v1) and ListObjectVersions. The store returns keys (or versions)
// in byte order with delimiter roll-up; this module pages over it, skips past a common prefix
// when resuming after one, and shapes the three S3 responses.
import type { ListItem, ListOptions, ObjectVersion } from '../../replication/types.js';
import type { BucketRecord } from '../bucket-record.js';
import { intParam, queryParam, requireBucket, type S3Context, sendXml } from '../context.js';
import { S3Error } from '../errors.js';
import type { OperationSpec } from '../router.js';
import type { XmlObject } from '../xml.js';

const MAX_KEYS = 1000;

/** Continuation tokens are opaque to clients: base64url of where the next page starts after. */
export function encodeToken(position: string): string {
  return Buffer.from(position, 'utf8').toString('base64url');
}

export function decodeToken(token: string): string {
  if (!/^[A-Za-z0-9_-]*$/.test(token)) throw new S3Error('InvalidArgument', { message: 'The continuation token provided is incorrect', fields: { ArgumentName: 'continuation-token' } });
  return Buffer.from(token, 'base64url').toString('utf8');
}

interface Page {
  items: ListItem[];
  truncated: boolean;
}

interface Cursor {
  key?: string;
  versionId?: string;
}

function itemName(item: ListItem): string {
  return item.commonPrefix ?? item.version!.key;
}

/**
 * Up to `limit` entries after `cursor`. A cursor that is a common prefix (ends with the
 * delimiter and was rolled up) must skip every key under it, which the store's exclusive
 * start-after alone does not do; those are filtered and the store asked again.
 */
async function collectPage(ctx: S3Context, bucket: string, base: Omit<ListOptions, 'limit' | 'startAfter' | 'startAfterVersion'>, cursor: Cursor, limit: number): Promise<Page> {
  if (limit === 0) return { items: [], truncated: false };
  const items: ListItem[] = [];
  const delimiter = base.delimiter;
  let skipPrefix = delimiter && cursor.key?.endsWith(delimiter) && cursor.key.startsWith(base.prefix ?? '') ? cursor.key : undefined;
  let position = cursor;
  for (;;) {
    const page = await ctx.store.list(bucket, { ...base, startAfter: position.key, startAfterVersion: position.versionId, limit: limit - items.length });
    for (const item of page.items) {
      if (skipPrefix !== undefined && itemName(item).startsWith(skipPrefix)) continue;
      items.push(item);
    }
    const last = page.items[page.items.length - 1];
    if (!page.truncated || !last) return { items: items.slice(0, limit), truncated: page.truncated && items.length >= limit };
    if (items.length >= limit) return { items: items.slice(0, limit), truncated: true };
    position = { key: itemName(last), versionId: last.version && base.allVersions ? last.version.versionId : undefined };
    skipPrefix = last.commonPrefix;
  }
}

/** encoding-type=url: keys may hold bytes XML cannot carry; S3 form-encodes them (space as '+'). */
function encoderFor(ctx: S3Context): (value: string | undefined) => string | undefined {
  const encodingType = queryParam(ctx, 'encoding-type');
  if (encodingType === undefined) return (v) => v;
  if (encodingType !== 'url') throw new S3Error('InvalidArgument', { message: 'Invalid Encoding Method specified in Request', fields: { ArgumentName: 'encoding-type', ArgumentValue: encodingType } });
  return (v) => (v === undefined ? undefined : encodeURIComponent(v).replace(/%2F/g, '/').replace(/%20/g, '+'));
}

function listParams(ctx: S3Context) {
  const delimiter = queryParam(ctx, 'delimiter');
  return {
    prefix: queryParam(ctx, 'prefix') ?? '',
    delimiter: delimiter === '' ? undefined : delimiter,
    maxKeys: intParam(ctx, 'max-keys', MAX_KEYS, 0, MAX_KEYS),
    encode: encoderFor(ctx),
  };
}

function owner(bucket: BucketRecord): XmlObject {
  return { ID: bucket.owner.id, DisplayName: bucket.owner.displayName };
}

function lastModified(version: ObjectVersion): Date {
  return new Date(Number(version.lastModifiedMs ?? 0));
}

function contentsEntry(version: ObjectVersion, encode: (v: string) => string | undefined, withOwner: XmlObject | undefined): XmlObject {
  const algorithms = Object.keys(version.checksums ?? {});
  return {
    Key: encode(version.key),
    LastModified: lastModified(version),
    ETag: version.etag ?? '',
    ChecksumAlgorithm: algorithms.length ? algorithms : undefined,
    Size: Number(version.size ?? 0),
    StorageClass: version.storageClass || 'STANDARD',
    Owner: withOwner,
  };
}

function splitPage(page: Page): { versions: ObjectVersion[]; prefixes: string[] } {
  return {
    versions: page.items.flatMap((i) => (i.version ? [i.version] : [])),
    prefixes: page.items.flatMap((i) => (i.commonPrefix !== undefined ? [i.commonPrefix] : [])),
  };
}

async function listObjectsV2(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const { prefix, delimiter, maxKeys, encode } = listParams(ctx);
  const continuationToken = queryParam(ctx, 'continuation-token');
  const startAfter = queryParam(ctx, 'start-after');
  const resumeAt = continuationToken !== undefined ? decodeToken(continuationToken) : startAfter;
  const page = await collectPage(ctx, bucket.name, { prefix, delimiter }, { key: resumeAt || undefined }, maxKeys);
  const { versions, prefixes } = splitPage(page);
  const withOwner = queryParam(ctx, 'fetch-owner') === 'true' ? owner(bucket) : undefined;
  const last = page.items[page.items.length - 1];
  sendXml(ctx, 'ListBucketResult', {
    Name: bucket.name,
    Prefix: encode(prefix),
    Delimiter: encode(delimiter),
    MaxKeys: maxKeys,
    EncodingType: queryParam(ctx, 'encoding-type'),
    KeyCount: page.items.length,
    IsTruncated: page.truncated,
    ContinuationToken: continuationToken,
    NextContinuationToken: page.truncated && last ? encodeToken(itemName(last)) : undefined,
    StartAfter: encode(startAfter),
    Contents: versions.map((v) => contentsEntry(v, encode, withOwner)),
    CommonPrefixes: prefixes.map((p) => ({ Prefix: encode(p) })),
  });
}

async function listObjectsV1(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const { prefix, delimiter, maxKeys, encode } = listParams(ctx);
  const marker = queryParam(ctx, 'marker');
  const page = await collectPage(ctx, bucket.name, { prefix, delimiter }, { key: marker || undefined }, maxKeys);
  const { versions, prefixes } = splitPage(page);
  const last = page.items[page.items.length - 1];
  sendXml(ctx, 'ListBucketResult', {
    Name: bucket.name,
    Prefix: encode(prefix),
    Marker: encode(marker ?? ''),
    // S3 sends NextMarker only with a delimiter; without one, clients resume from the last Key.
    NextMarker: page.truncated && delimiter !== undefined && last ? encode(itemName(last)) : undefined,
    MaxKeys: maxKeys,
    Delimiter: encode(delimiter),
    EncodingType: queryParam(ctx, 'encoding-type'),
    IsTruncated: page.truncated,
    Contents: versions.map((v) => contentsEntry(v, encode, owner(bucket))),
    CommonPrefixes: prefixes.map((p) => ({ Prefix: encode(p) })),
  });
}

async function listObjectVersions(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const { prefix, delimiter, maxKeys, encode } = listParams(ctx);
  const keyMarker = queryParam(ctx, 'key-marker') || undefined;
  const versionIdMarker = keyMarker === undefined ? undefined : queryParam(ctx, 'version-id-marker') || undefined;
  const page = await collectPage(ctx, bucket.name, { prefix, delimiter, allVersions: true, includeDeleteMarkers: true },
    { key: keyMarker, versionId: versionIdMarker }, maxKeys);

  const versions: XmlObject[] = [];
  const deleteMarkers: XmlObject[] = [];
  const prefixes: XmlObject[] = [];
  // The store lists each key's versions newest first: the first one seen is the latest, unless
  // this page resumes in the middle of the marker key's versions.
  let previousKey = versionIdMarker !== undefined ? keyMarker : undefined;
  for (const item of page.items) {
    if (item.commonPrefix !== undefined) {
      prefixes.push({ Prefix: encode(item.commonPrefix) });
      continue;
    }
    const version = item.version!;
    const common = {
      Key: encode(version.key),
      VersionId: version.versionId,
      IsLatest: version.key !== previousKey,
      LastModified: lastModified(version),
    };
    previousKey = version.key;
    if (version.deleteMarker) {
      deleteMarkers.push({ ...common, Owner: owner(bucket) });
    } else {
      versions.push({ ...common, ETag: version.etag ?? '', Size: Number(version.size ?? 0), StorageClass: version.storageClass || 'STANDARD', Owner: owner(bucket) });
    }
  }
  const last = page.items[page.items.length - 1];
  sendXml(ctx, 'ListVersionsResult', {
    Name: bucket.name,
    Prefix: encode(prefix),
    KeyMarker: encode(keyMarker ?? ''),
    VersionIdMarker: versionIdMarker ?? '',
    NextKeyMarker: page.truncated && last ? encode(itemName(last)) : undefined,
    NextVersionIdMarker: page.truncated && last?.version ? last.version.versionId : undefined,
    MaxKeys: maxKeys,
    Delimiter: encode(delimiter),
    EncodingType: queryParam(ctx, 'encoding-type'),
    IsTruncated: page.truncated,
    Version: versions,
    DeleteMarker: deleteMarkers,
    CommonPrefixes: prefixes,
  });
}

const isV2 = (address: { query: URLSearchParams }) => address.query.get('list-type') === '2';

export const operations: OperationSpec[] = [
  { name: 'ListObjectsV2', method: 'GET', scope: 'bucket', when: isV2, action: 's3:ListBucket', handle: listObjectsV2 },
  { name: 'ListObjects', method: 'GET', scope: 'bucket', action: 's3:ListBucket', handle: listObjectsV1 },
  { name: 'ListObjectVersions', method: 'GET', scope: 'bucket', subresource: 'versions', action: 's3:ListBucketVersions', handle: listObjectVersions },
];
