// Multipart uploads: Create, UploadPart, UploadPartCopy, Complete, Abort, ListMultipartUploads
// and ListParts. Each part is erasure-coded and placed like an object; completing stitches the
// chosen parts' segments into one version (no data copy), with S3's `"<md5 of part md5s>-N"` ETag.
import { createHash, randomBytes } from 'node:crypto';
import { isStoreError } from '../../common/errors.js';
import type { DataSegment, ObjectVersion, UploadRecord, VersionFields } from '../../replication/types.js';
import { type BucketRecord, writeTargetFor } from '../bucket-record.js';
import { createChecksum, parseChecksumAlgorithm } from '../checksums.js';
import { header, intParam, queryParam, requireBucket, requireKey, type S3Context, sendEmpty, sendXml } from '../context.js';
import { S3Error } from '../errors.js';
import type { OperationSpec } from '../router.js';
import { decryptionFor, encryptionForPart, encryptionForWrite } from '../sse.js';
import { type ParsedXml, type XmlObject, xmlChild, xmlChildren, xmlText } from '../xml.js';
import { attributesOf, withAttributes } from './attributes.js';
import { checksumElementsOf, copySource, copySourceHeaders } from './copy.js';
import { parseRange } from './get.js';
import { requireContentLength, storedChecksumHeaders, versionFieldsFromHeaders, versionIdHeader } from './put.js';

export const MAX_PARTS = 10_000;
export const MIN_PART_BYTES = 5 * 1024 ** 2;
export const MAX_PART_BYTES = 5 * 1024 ** 3;
export const MAX_MULTIPART_OBJECT_BYTES = 5 * 1024 ** 4;

type Upload = UploadRecord & { bucket: string; key: string; uploadId: string };

function uploadIdParam(ctx: S3Context): string {
  const uploadId = queryParam(ctx, 'uploadId');
  if (!uploadId) throw new S3Error('NoSuchUpload', { fields: { UploadId: uploadId ?? '' } });
  return uploadId;
}

async function requireUpload(ctx: S3Context, bucket: BucketRecord, key: string): Promise<Upload> {
  const uploadId = uploadIdParam(ctx);
  const upload = await ctx.store.getUpload(bucket.name, key, uploadId);
  if (!upload) throw new S3Error('NoSuchUpload', { fields: { UploadId: uploadId } });
  return { ...upload, bucket: bucket.name, key, uploadId };
}

function partNumberParam(ctx: S3Context): number {
  const raw = queryParam(ctx, 'partNumber') ?? '';
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < 1 || n > MAX_PARTS) {
    throw new S3Error('InvalidArgument', { message: `Part number must be an integer between 1 and ${MAX_PARTS}, inclusive`, fields: { ArgumentName: 'partNumber', ArgumentValue: raw } });
  }
  return n;
}

/** The person who started an upload, kept in the upload's template (ListParts / ListMultipartUploads). */
function initiatorOf(upload: UploadRecord): XmlObject {
  const { initiator } = attributesOf(upload.template ?? {});
  return { ID: initiator?.id ?? '', DisplayName: initiator?.displayName ?? '' };
}

// ---------------------------------------------------------------- create

async function createMultipartUpload(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const key = requireKey(ctx);
  const algorithmHeader = header(ctx.request, 'x-amz-checksum-algorithm');
  const algorithm = algorithmHeader === undefined ? undefined : parseChecksumAlgorithm(algorithmHeader);
  if (algorithmHeader !== undefined && algorithm === undefined) {
    throw new S3Error('InvalidRequest', { message: 'Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]' });
  }
  const encryption = encryptionForWrite(ctx, ctx.config.sseMasterKeys, bucket);
  const fields = withAttributes(versionFieldsFromHeaders(ctx, bucket), {
    checksumAlgorithm: algorithm,
    initiator: { id: ctx.principal.userId, displayName: ctx.principal.displayName },
    encryption: encryption?.stored,
  });
  const uploadId = randomBytes(24).toString('base64url');
  await ctx.store.createUpload({ bucket: bucket.name, key, uploadId, initiatedMs: Date.now(), template: { ...fields, bucket: bucket.name, key } });
  if (algorithm) void ctx.reply.header('x-amz-checksum-algorithm', algorithm);
  void ctx.reply.headers({ ...encryption?.headers });
  sendXml(ctx, 'InitiateMultipartUploadResult', { Bucket: bucket.name, Key: key, UploadId: uploadId });
}

// ---------------------------------------------------------------- parts

async function uploadPart(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const key = requireKey(ctx);
  const partNumber = partNumberParam(ctx);
  const upload = await requireUpload(ctx, bucket, key);
  requireContentLength(ctx);
  const encryption = encryptionForPart(ctx, ctx.config.sseMasterKeys, upload.template ?? {});
  const body = encryption?.encrypt(ctx.body.stream(MAX_PART_BYTES), partNumber).stream ?? ctx.body.chunks(MAX_PART_BYTES);
  const part = await ctx.store.writePart(upload, partNumber, body, () => {
    if (ctx.body.failure) throw ctx.body.failure;
    return { checksums: ctx.body.checksums() };
  });
  void ctx.reply.headers({ etag: part.etag ?? '', ...storedChecksumHeaders(part.checksums), ...encryption?.headers });
  sendEmpty(ctx);
}

/** x-amz-copy-source-range: `bytes=first-last`, both inside the source. */
function copySourceRange(ctx: S3Context, size: number) {
  const value = header(ctx.request, 'x-amz-copy-source-range');
  if (value === undefined) return undefined;
  const invalid = () => new S3Error('InvalidArgument', { message: `Range specified is not valid for source object of size: ${size}`, fields: { ArgumentName: 'x-amz-copy-source-range', ArgumentValue: value } });
  if (!/^bytes=\d+-\d+$/.test(value.trim())) throw invalid();
  let range;
  try {
    range = parseRange(value, size);
  } catch {
    throw invalid();
  }
  if (!range || range.end !== Number(value.trim().split('-')[1])) throw invalid();
  return range;
}

async function uploadPartCopy(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const key = requireKey(ctx);
  const partNumber = partNumberParam(ctx);
  const upload = await requireUpload(ctx, bucket, key);
  const source = await copySource(ctx);
  const range = copySourceRange(ctx, Number(source.version.size ?? 0));
  const length = range ? range.end - range.start + 1 : Number(source.version.size ?? 0);
  if (length > MAX_PART_BYTES) throw new S3Error('EntityTooLarge', { fields: { ProposedSize: length, MaxSizeAllowed: MAX_PART_BYTES } });
  const encryption = encryptionForPart(ctx, ctx.config.sseMasterKeys, upload.template ?? {});
  const plaintext = decryptionFor(ctx, ctx.config.sseMasterKeys, source.version, { copySource: true }).decrypt(ctx.store.readObject(source.version, range), range);
  const part = await ctx.store.writePart(upload, partNumber, encryption?.encrypt(plaintext, partNumber).stream ?? plaintext, () => ({ checksums: {} }));
  void ctx.reply.headers({ ...copySourceHeaders(source), ...encryption?.headers });
  sendXml(ctx, 'CopyPartResult', { ETag: part.etag ?? '', LastModified: new Date() });
}

// ---------------------------------------------------------------- complete / abort

interface RequestedPart {
  partNumber: number;
  etag: string;
  checksums: Record<string, string>;
}

function parseCompleteRequest(document: ParsedXml): RequestedPart[] {
  const root = xmlChild(document, 'CompleteMultipartUpload');
  const parts = xmlChildren(root, 'Part');
  if (!root || parts.length === 0) throw new S3Error('MalformedXML');
  return parts.map((part) => {
    const number = Number(xmlText(part, 'PartNumber'));
    const etag = xmlText(part, 'ETag');
    if (!Number.isInteger(number) || etag === undefined) throw new S3Error('MalformedXML');
    const checksums: Record<string, string> = {};
    for (const [name, value] of Object.entries(part)) {
      const algorithm = name.startsWith('Checksum') ? parseChecksumAlgorithm(name.slice('Checksum'.length)) : undefined;
      if (algorithm && typeof value === 'string') checksums[algorithm] = value;
    }
    return { partNumber: number, etag, checksums };
  });
}

const bareEtag = (etag: string) => etag.replace(/"/g, '').trim();

/** The stored parts the request names, in its order, after S3's checks on order, identity and size. */
function chooseParts(upload: Upload, requested: RequestedPart[]): DataSegment[] {
  if (requested.some((want, i) => i > 0 && want.partNumber <= requested[i - 1]!.partNumber)) throw new S3Error('InvalidPartOrder');
  const stored = new Map((upload.parts ?? []).map((p) => [p.partNumber!, p]));
  return requested.map((want, i) => {
    const part = stored.get(want.partNumber);
    const checksumsMatch = Object.entries(want.checksums).every(([algorithm, value]) => part?.checksums?.[algorithm] === value);
    if (!part || bareEtag(part.etag ?? '') !== bareEtag(want.etag) || !checksumsMatch) {
      throw new S3Error('InvalidPart', { fields: { UploadId: upload.uploadId, PartNumber: want.partNumber, ETag: want.etag } });
    }
    const size = Number(part.size ?? 0);
    if (i < requested.length - 1 && size < MIN_PART_BYTES) {
      throw new S3Error('EntityTooSmall', { fields: { ProposedSize: size, MinSizeAllowed: MIN_PART_BYTES, PartNumber: want.partNumber, ETag: want.etag } });
    }
    return part;
  });
}

/** `"<md5 of the concatenated binary part MD5s>-N"`. */
export function multipartEtag(parts: Pick<DataSegment, 'etag'>[]): string {
  const md5 = createHash('md5');
  for (const part of parts) md5.update(Buffer.from(bareEtag(part.etag ?? ''), 'hex'));
  return `"${md5.digest('hex')}-${parts.length}"`;
}

/** COMPOSITE checksums: the algorithm over the concatenated binary part checksums, `-N`. */
function compositeChecksums(algorithm: string | undefined, parts: DataSegment[]): Record<string, string> {
  const parsed = algorithm === undefined ? undefined : parseChecksumAlgorithm(algorithm);
  if (!parsed || !parts.every((p) => p.checksums?.[parsed])) return {};
  const checksum = createChecksum(parsed);
  for (const part of parts) checksum.update(Buffer.from(part.checksums![parsed]!, 'base64'));
  return { [parsed]: `${checksum.digest()}-${parts.length}` };
}

function completedFields(upload: Upload, parts: DataSegment[]): VersionFields {
  const { bucket: _b, key: _k, versionId: _v, hlc: _h, segments: _s, size: _z, ...template } = (upload.template ?? {}) as ObjectVersion;
  const { checksumAlgorithm } = attributesOf(template);
  return {
    ...withAttributes(template, { checksumAlgorithm: undefined, initiator: undefined }),
    etag: multipartEtag(parts),
    lastModifiedMs: Date.now(),
    checksums: compositeChecksums(checksumAlgorithm, parts),
  };
}

async function completeMultipartUpload(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const key = requireKey(ctx);
  const upload = await requireUpload(ctx, bucket, key);
  const parts = chooseParts(upload, parseCompleteRequest(await ctx.body.xml(['Part'])));
  const total = parts.reduce((sum, p) => sum + Number(p.size ?? 0), 0);
  if (total > MAX_MULTIPART_OBJECT_BYTES) throw new S3Error('EntityTooLarge', { fields: { ProposedSize: total, MaxSizeAllowed: MAX_MULTIPART_OBJECT_BYTES } });
  const version = await ctx.store.completeUpload(upload, parts, writeTargetFor(bucket, key), completedFields(upload, parts));
  const checksumHeaders = storedChecksumHeaders(version.checksums);
  void ctx.reply.headers({ ...versionIdHeader(bucket, version), ...checksumHeaders });
  const host = header(ctx.request, 'host') ?? 'localhost';
  sendXml(ctx, 'CompleteMultipartUploadResult', {
    Location: `http://${host}/${encodeURIComponent(bucket.name)}/${key.split('/').map(encodeURIComponent).join('/')}`,
    Bucket: bucket.name,
    Key: key,
    ETag: version.etag ?? '',
    ...checksumElementsOf(checksumHeaders),
  });
}

async function abortMultipartUpload(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const uploadId = uploadIdParam(ctx);
  try {
    await ctx.store.abortUpload(bucket.name, requireKey(ctx), uploadId);
  } catch (err) {
    if (isStoreError(err, 'NotFound')) throw new S3Error('NoSuchUpload', { fields: { UploadId: uploadId } });
    throw err;
  }
  sendEmpty(ctx, 204);
}

// ---------------------------------------------------------------- listings

async function listParts(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const upload = await requireUpload(ctx, bucket, requireKey(ctx));
  const marker = intParam(ctx, 'part-number-marker', 0, 0, MAX_PARTS);
  const maxParts = intParam(ctx, 'max-parts', 1000, 0, 1000);
  const after = (upload.parts ?? []).filter((p) => p.partNumber! > marker);
  const page = after.slice(0, maxParts);
  const truncated = after.length > page.length;
  const algorithm = attributesOf(upload.template ?? {}).checksumAlgorithm;
  sendXml(ctx, 'ListPartsResult', {
    Bucket: bucket.name,
    Key: upload.key,
    UploadId: upload.uploadId,
    Initiator: initiatorOf(upload),
    Owner: { ID: bucket.owner.id, DisplayName: bucket.owner.displayName },
    StorageClass: upload.template?.storageClass || 'STANDARD',
    PartNumberMarker: marker,
    NextPartNumberMarker: page.length > 0 ? page[page.length - 1]!.partNumber! : undefined,
    MaxParts: maxParts,
    IsTruncated: truncated,
    ChecksumAlgorithm: algorithm,
    Part: page.map((p) => ({
      PartNumber: p.partNumber!,
      LastModified: new Date(Number(upload.initiatedMs ?? 0)),
      ETag: p.etag ?? '',
      Size: Number(p.size ?? 0),
      ...checksumElementsOf(storedChecksumHeaders(p.checksums)),
    })),
  });
}

interface UploadListing {
  entries: Array<{ upload?: UploadRecord; commonPrefix?: string }>;
  truncated: boolean;
}

/** Uploads after the markers, with keys holding the delimiter past the prefix rolled up. */
async function collectUploads(ctx: S3Context, bucket: string, options: { prefix: string; delimiter?: string; keyMarker?: string; uploadIdMarker?: string; max: number }): Promise<UploadListing> {
  const entries: UploadListing['entries'] = [];
  const rollUp = (key: string) => {
    if (!options.delimiter) return undefined;
    const at = key.indexOf(options.delimiter, options.prefix.length);
    return at < 0 ? undefined : key.slice(0, at + options.delimiter.length);
  };
  let lastPrefix = options.keyMarker !== undefined ? rollUp(options.keyMarker) : undefined;
  let position = { keyMarker: options.keyMarker, uploadIdMarker: options.keyMarker !== undefined ? options.uploadIdMarker : undefined };
  for (;;) {
    const limit = options.max - entries.length;
    const page = limit > 0 ? await ctx.store.listUploads(bucket, { prefix: options.prefix, ...position, limit }) : [];
    for (const upload of page) {
      const commonPrefix = rollUp(upload.key!);
      if (commonPrefix !== undefined && commonPrefix === lastPrefix) continue;
      if (entries.length >= options.max) return { entries, truncated: true };
      entries.push(commonPrefix !== undefined ? { commonPrefix } : { upload });
      lastPrefix = commonPrefix;
    }
    const last = page[page.length - 1];
    if (page.length <= limit || !last) return { entries, truncated: false };
    position = { keyMarker: last.key!, uploadIdMarker: last.uploadId! };
  }
}

async function listMultipartUploads(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const prefix = queryParam(ctx, 'prefix') ?? '';
  const delimiter = queryParam(ctx, 'delimiter') || undefined;
  const keyMarker = queryParam(ctx, 'key-marker') || undefined;
  const uploadIdMarker = queryParam(ctx, 'upload-id-marker') || undefined;
  const max = intParam(ctx, 'max-uploads', 1000, 0, 1000);
  const { entries, truncated } = await collectUploads(ctx, bucket.name, { prefix, delimiter, keyMarker, uploadIdMarker, max });
  const last = entries[entries.length - 1];
  sendXml(ctx, 'ListMultipartUploadsResult', {
    Bucket: bucket.name,
    KeyMarker: keyMarker ?? '',
    UploadIdMarker: uploadIdMarker ?? '',
    NextKeyMarker: truncated && last ? last.upload?.key ?? last.commonPrefix : undefined,
    NextUploadIdMarker: truncated && last?.upload ? last.upload.uploadId : undefined,
    Prefix: prefix,
    Delimiter: delimiter,
    MaxUploads: max,
    IsTruncated: truncated,
    Upload: entries.filter((e) => e.upload).map(({ upload }) => ({
      Key: upload!.key!,
      UploadId: upload!.uploadId!,
      Initiator: initiatorOf(upload!),
      Owner: { ID: bucket.owner.id, DisplayName: bucket.owner.displayName },
      StorageClass: upload!.template?.storageClass || 'STANDARD',
      Initiated: new Date(Number(upload!.initiatedMs ?? 0)),
      ChecksumAlgorithm: attributesOf(upload!.template ?? {}).checksumAlgorithm,
    })),
    CommonPrefixes: entries.filter((e) => e.commonPrefix !== undefined).map((e) => ({ Prefix: e.commonPrefix! })),
  });
}

const copiesSource = (_address: unknown, headerOf: (name: string) => string | undefined) => headerOf('x-amz-copy-source') !== undefined;

export const operations: OperationSpec[] = [
  { name: 'CreateMultipartUpload', method: 'POST', scope: 'object', subresource: 'uploads', action: 's3:PutObject', handle: createMultipartUpload },
  { name: 'UploadPart', method: 'PUT', scope: 'object', subresource: 'uploadId', action: 's3:PutObject', handle: uploadPart },
  { name: 'UploadPartCopy', method: 'PUT', scope: 'object', subresource: 'uploadId', when: copiesSource, action: 's3:PutObject', handle: uploadPartCopy },
  { name: 'CompleteMultipartUpload', method: 'POST', scope: 'object', subresource: 'uploadId', action: 's3:PutObject', handle: completeMultipartUpload },
  { name: 'AbortMultipartUpload', method: 'DELETE', scope: 'object', subresource: 'uploadId', action: 's3:AbortMultipartUpload', handle: abortMultipartUpload },
  { name: 'ListParts', method: 'GET', scope: 'object', subresource: 'uploadId', action: 's3:ListMultipartUploadParts', handle: listParts },
  { name: 'ListMultipartUploads', method: 'GET', scope: 'bucket', subresource: 'uploads', action: 's3:ListBucketMultipartUploads', handle: listMultipartUploads },
];
