// GetObject, HeadObject and GetObjectAttributes: version resolution (delete markers), conditional requests,
// byte ranges and part numbers, response-* overrides, and the object's response headers.
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { returnLent } from '../../common/buffer-pool.js';
import type { ByteRange, ObjectVersion } from '../../replication/types.js';
import type { BucketRecord } from '../bucket-record.js';
import { parseChecksumAlgorithm } from '../checksums.js';
import { header, queryParam, requireBucket, requireKey, type S3Context, sendXml } from '../context.js';
import { S3Error } from '../errors.js';
import type { OperationSpec } from '../router.js';
import { decryptionFor } from '../sse.js';
import type { XmlObject } from '../xml.js';
import { lockHeaders } from './object-lock.js';
import { STORED_HEADERS, storedChecksumHeaders, versionIdHeader } from './put.js';

/**
 * The version a request addresses (`versionId` or the newest), following S3 for delete markers:
 * the newest being a delete marker is NoSuchKey; asking for a delete marker by id is
 * MethodNotAllowed (both with x-amz-delete-marker: true).
 */
export async function resolveVersion(ctx: S3Context, bucket: BucketRecord, key: string, versionId: string | undefined): Promise<ObjectVersion> {
  // A bucket never versioned holds only null versions (as deleteObject assumes too): asking for
  // that one by id is a point lookup on the nodes instead of a scan for the newest version.
  const version = await ctx.store.getVersion(bucket.name, key, versionId ?? (bucket.versioning === undefined ? 'null' : undefined));
  if (!version) {
    if (versionId !== undefined) throw new S3Error('NoSuchVersion', { fields: { Key: key, VersionId: versionId } });
    throw new S3Error('NoSuchKey', { fields: { Key: key } });
  }
  if (version.deleteMarker) {
    const headers = { 'x-amz-delete-marker': 'true', ...versionIdHeader(bucket, version) };
    if (versionId !== undefined) throw new S3Error('MethodNotAllowed', { headers, fields: { Method: ctx.method, ResourceType: 'DeleteMarker' } });
    throw new S3Error('NoSuchKey', { headers, fields: { Key: key } });
  }
  return version;
}

/** Response headers describing a version (GET, HEAD, and the like). */
export function objectHeaders(bucket: BucketRecord, version: ObjectVersion): Record<string, string> {
  const headers: Record<string, string> = {
    etag: version.etag ?? '',
    'last-modified': new Date(Number(version.lastModifiedMs ?? 0)).toUTCString(),
    'content-type': version.contentType || 'binary/octet-stream',
    'accept-ranges': 'bytes',
    ...versionIdHeader(bucket, version),
  };
  for (const name of STORED_HEADERS) {
    const value = version.headers?.[name];
    if (value !== undefined) headers[name] = value;
  }
  for (const [name, value] of Object.entries(version.userMetadata ?? {})) headers[`x-amz-meta-${name}`] = value;
  if (version.storageClass && version.storageClass !== 'STANDARD') headers['x-amz-storage-class'] = version.storageClass;
  Object.assign(headers, lockHeaders(version));
  const tagCount = Object.keys(version.tags ?? {}).length;
  if (tagCount > 0) headers['x-amz-tagging-count'] = String(tagCount);
  return headers;
}

/** `"etag"` against an If-Match / If-None-Match list (`*`, `W/` prefixes, quotes optional). */
export function etagMatches(condition: string, etag: string): boolean {
  const bare = etag.replace(/^W\//, '').replace(/"/g, '');
  return condition.split(',').some((candidate) => {
    const c = candidate.trim().replace(/^W\//, '').replace(/"/g, '');
    return c === '*' || c === bare;
  });
}

/** Whole seconds, as HTTP dates carry them. */
function seconds(ms: number): number {
  return Math.floor(ms / 1000);
}

function httpDate(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * S3's precedence: If-Match (412) overrides If-Unmodified-Since; If-None-Match (304) overrides
 * If-Modified-Since; failures that give 412 are checked before those that give 304.
 */
export function evaluateConditions(headerOf: (name: string) => string | undefined, version: Pick<ObjectVersion, 'etag' | 'lastModifiedMs'>): 'ok' | 'not-modified' | 'failed' {
  const etag = version.etag ?? '';
  const modified = seconds(Number(version.lastModifiedMs ?? 0));
  const ifMatch = headerOf('if-match');
  const ifUnmodifiedSince = httpDate(headerOf('if-unmodified-since'));
  const ifNoneMatch = headerOf('if-none-match');
  const ifModifiedSince = httpDate(headerOf('if-modified-since'));
  if (ifMatch !== undefined) {
    if (!etagMatches(ifMatch, etag)) return 'failed';
  } else if (ifUnmodifiedSince !== undefined && modified > seconds(ifUnmodifiedSince)) {
    return 'failed';
  }
  if (ifNoneMatch !== undefined) {
    if (etagMatches(ifNoneMatch, etag)) return 'not-modified';
  } else if (ifModifiedSince !== undefined && modified <= seconds(ifModifiedSince)) {
    return 'not-modified';
  }
  return 'ok';
}

/**
 * The byte range a `Range` header asks for within `size` bytes: undefined for the whole object
 * (no header, or one S3 ignores: not bytes=, several ranges, start > end); InvalidRange when
 * nothing of the object is in it.
 */
export function parseRange(value: string | undefined, size: number): ByteRange | undefined {
  if (value === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(value.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  const unsatisfiable = () => new S3Error('InvalidRange', { headers: { 'content-range': `bytes */${size}` }, fields: { RangeRequested: value, ActualObjectSize: size } });
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) throw unsatisfiable();
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? Infinity : Number(m[2]);
  if (end < start) return undefined;
  if (start >= size) throw unsatisfiable();
  return { start, end: Math.min(end, size - 1) };
}

/** The byte range of part `partNumber` (1-based) and the object's part count. */
export function partRange(version: ObjectVersion, partNumber: number): { range: ByteRange; partsCount: number } {
  const segments = version.segments ?? [];
  const size = Number(version.size ?? 0);
  const multipart = segments.length > 1 || /-\d+"?$/.test(version.etag ?? '');
  if (!multipart) {
    if (partNumber !== 1) throw new S3Error('InvalidPartNumber');
    return { range: { start: 0, end: size - 1 }, partsCount: 1 };
  }
  if (partNumber > segments.length) throw new S3Error('InvalidPartNumber');
  let start = 0;
  for (const segment of segments.slice(0, partNumber - 1)) start += Number(segment.size ?? 0);
  return { range: { start, end: start + Number(segments[partNumber - 1]!.size ?? 0) - 1 }, partsCount: segments.length };
}

const RESPONSE_OVERRIDES: Record<string, string> = {
  'response-content-type': 'content-type',
  'response-content-language': 'content-language',
  'response-expires': 'expires',
  'response-cache-control': 'cache-control',
  'response-content-disposition': 'content-disposition',
  'response-content-encoding': 'content-encoding',
};

function responseOverrides(ctx: S3Context): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [param, name] of Object.entries(RESPONSE_OVERRIDES)) {
    const value = queryParam(ctx, param);
    if (value === undefined) continue;
    if (ctx.principal.accessKeyId === undefined) throw new S3Error('InvalidRequest', { message: 'Request specific response headers cannot be used for anonymous GET requests.' });
    headers[name] = value;
  }
  return headers;
}

function partNumberParam(ctx: S3Context): number | undefined {
  const raw = queryParam(ctx, 'partNumber');
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < 1 || n > 10_000) throw new S3Error('InvalidArgument', { message: 'Part number must be an integer between 1 and 10000, inclusive', fields: { ArgumentName: 'partNumber', ArgumentValue: raw } });
  return n;
}

async function getOrHeadObject(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const version = await resolveVersion(ctx, bucket, requireKey(ctx), queryParam(ctx, 'versionId'));
  await sendVersion(ctx, bucket, version);
}

/** GetObject's or HeadObject's answer for a resolved version: conditions, ranges, part numbers, decryption. */
export async function sendVersion(ctx: S3Context, bucket: BucketRecord, version: ObjectVersion): Promise<void> {
  const decryption = decryptionFor(ctx, ctx.config.sseMasterKeys, version);
  const headers = { ...objectHeaders(bucket, version), ...decryption.headers };
  const condition = evaluateConditions((name) => header(ctx.request, name), version);
  if (condition === 'failed') throw new S3Error('PreconditionFailed', { fields: { Condition: 'If-Match' } });
  if (condition === 'not-modified') {
    void ctx.reply.code(304).headers({ etag: headers.etag!, 'last-modified': headers['last-modified']!, ...versionIdHeader(bucket, version) }).send();
    return;
  }

  const size = Number(version.size ?? 0);
  const rangeHeader = header(ctx.request, 'range');
  const partNumber = partNumberParam(ctx);
  if (partNumber !== undefined && rangeHeader !== undefined) throw new S3Error('InvalidRequest', { message: 'Cannot specify both Range header and partNumber query parameter' });
  let range: ByteRange | undefined;
  if (partNumber !== undefined) {
    const part = partRange(version, partNumber);
    range = part.range;
    headers['x-amz-mp-parts-count'] = String(part.partsCount);
  } else {
    range = parseRange(rangeHeader, size);
  }
  if (header(ctx.request, 'x-amz-checksum-mode')?.toUpperCase() === 'ENABLED' && range === undefined) {
    Object.assign(headers, storedChecksumHeaders(version.checksums));
    const composite = Object.values(version.checksums ?? {}).some((v) => v.includes('-'));
    if (Object.keys(version.checksums ?? {}).length > 0) headers['x-amz-checksum-type'] = composite ? 'COMPOSITE' : 'FULL_OBJECT';
  }
  Object.assign(headers, responseOverrides(ctx));

  const partial = range !== undefined && !(partNumber !== undefined && range.start === 0 && range.end === size - 1 && headers['x-amz-mp-parts-count'] === '1');
  const length = range ? Math.max(0, range.end - range.start + 1) : size;
  headers['content-length'] = String(length);
  if (range && partial) headers['content-range'] = `bytes ${range.start}-${range.end}/${size}`;
  void ctx.reply.code(partial ? 206 : 200).headers(headers);
  if (ctx.method === 'HEAD' || length === 0) {
    void ctx.reply.send();
    return;
  }
  await sendBody(ctx, decryption.decrypt(ctx.store.readObject(version, range), range));
}

/** The whole of `version` as the response, with `status` (the website endpoint's error documents). */
export async function sendWholeObject(ctx: S3Context, bucket: BucketRecord, version: ObjectVersion, status: number): Promise<void> {
  const decryption = decryptionFor(ctx, ctx.config.sseMasterKeys, version);
  const size = Number(version.size ?? 0);
  void ctx.reply.code(status).headers({ ...objectHeaders(bucket, version), ...decryption.headers, 'content-length': String(size) });
  if (ctx.method === 'HEAD' || size === 0) {
    void ctx.reply.send();
    return;
  }
  await sendBody(ctx, decryption.decrypt(ctx.store.readObject(version)));
}

/**
 * Writes the object's bytes to the response and returns each chunk to its pool once the socket
 * has written it (returnLent: the reader's stripes), which a pipe cannot do, as it never learns
 * when a write is done. A failure before the first byte is answered as an S3 error; a later one
 * can only cut the connection.
 */
async function sendBody(ctx: S3Context, body: Readable): Promise<void> {
  const chunks = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const response = ctx.reply.raw;
  try {
    let next = await chunks.next();
    ctx.reply.hijack();
    response.writeHead(ctx.reply.statusCode, ctx.reply.getHeaders() as OutgoingHttpHeaders);
    for (; !next.done; next = await chunks.next()) {
      const chunk = next.value;
      if (!response.write(chunk, (err) => { if (!err) returnLent(chunk); })) await drainedOrClosed(response);
      if (response.destroyed) return;
    }
    response.end();
  } finally {
    body.destroy();
  }
}

function drainedOrClosed(response: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => { response.off('drain', done); response.off('close', done); resolve(); };
    response.on('drain', done);
    response.on('close', done);
  });
}

const OBJECT_ATTRIBUTES = new Set(['ETag', 'Checksum', 'ObjectParts', 'StorageClass', 'ObjectSize']);

/** Checksum elements (`ChecksumCRC32`, ...) for stored checksums. */
function checksumElements(checksums: Record<string, string> | null | undefined): XmlObject {
  const out: XmlObject = {};
  for (const [name, value] of Object.entries(checksums ?? {})) {
    if (parseChecksumAlgorithm(name)) out[`Checksum${name.toUpperCase()}`] = value;
  }
  return out;
}

/** The parts of a multipart object, paged by x-amz-part-number-marker / x-amz-max-parts. */
function objectParts(ctx: S3Context, version: ObjectVersion): XmlObject | undefined {
  const segments = version.segments ?? [];
  if (segments.length < 2) return undefined;
  const marker = Number(header(ctx.request, 'x-amz-part-number-marker') ?? 0);
  const maxParts = Math.min(Number(header(ctx.request, 'x-amz-max-parts') ?? 1000), 1000);
  if (!Number.isInteger(marker) || marker < 0 || !Number.isInteger(maxParts) || maxParts < 0) {
    throw new S3Error('InvalidArgument', { message: 'x-amz-part-number-marker and x-amz-max-parts must be non-negative integers' });
  }
  const numbered = segments.map((segment, i) => ({ number: segment.partNumber || i + 1, segment }));
  const after = numbered.filter((p) => p.number > marker);
  const page = after.slice(0, maxParts);
  const truncated = after.length > page.length;
  return {
    TotalPartsCount: segments.length,
    PartNumberMarker: marker,
    NextPartNumberMarker: truncated ? page[page.length - 1]!.number : undefined,
    MaxParts: maxParts,
    IsTruncated: truncated,
    Part: page.map(({ number, segment }) => ({ PartNumber: number, Size: Number(segment.size ?? 0), ...checksumElements(segment.checksums) })),
  };
}

async function getObjectAttributes(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const version = await resolveVersion(ctx, bucket, requireKey(ctx), queryParam(ctx, 'versionId'));
  const wanted = new Set((header(ctx.request, 'x-amz-object-attributes') ?? '').split(',').map((a) => a.trim()).filter((a) => a !== ''));
  const unknown = [...wanted].find((a) => !OBJECT_ATTRIBUTES.has(a));
  if (wanted.size === 0 || unknown !== undefined) {
    throw new S3Error('InvalidArgument', { message: 'Invalid attribute name specified.', fields: { ArgumentName: 'x-amz-object-attributes', ArgumentValue: unknown ?? '' } });
  }
  void ctx.reply.headers({ 'last-modified': new Date(Number(version.lastModifiedMs ?? 0)).toUTCString(), ...versionIdHeader(bucket, version) });
  const checksum = checksumElements(version.checksums);
  sendXml(ctx, 'GetObjectAttributesResponse', {
    ETag: wanted.has('ETag') ? (version.etag ?? '').replace(/"/g, '') : undefined,
    Checksum: wanted.has('Checksum') && Object.keys(checksum).length > 0 ? checksum : undefined,
    ObjectParts: wanted.has('ObjectParts') ? objectParts(ctx, version) : undefined,
    StorageClass: wanted.has('StorageClass') ? version.storageClass || 'STANDARD' : undefined,
    ObjectSize: wanted.has('ObjectSize') ? Number(version.size ?? 0) : undefined,
  });
}

export const operations: OperationSpec[] = [
  { name: 'GetObjectAttributes', method: 'GET', scope: 'object', subresource: 'attributes', action: 's3:GetObjectAttributes', handle: getObjectAttributes },
  { name: 'GetObject', method: 'GET', scope: 'object', action: 's3:GetObject', handle: getOrHeadObject },
  { name: 'HeadObject', method: 'HEAD', scope: 'object', action: 's3:GetObject', handle: getOrHeadObject },
];
