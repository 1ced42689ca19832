// Bucket lifecycle: CreateBucket, HeadBucket, DeleteBucket, ListBuckets, GetBucketLocation.
import { aclFromHeaders } from '../acl.js';
import { type BucketRecord, bucketNameProblem } from '../bucket-record.js';
import { header, intParam, queryParam, requireBucket, requireBucketName, type S3Context, sendEmpty, sendXml } from '../context.js';
import { S3Error } from '../errors.js';
import type { OperationSpec } from '../router.js';
import { xmlChild, xmlText } from '../xml.js';
import { decodeToken, encodeToken } from './list.js';
import { checkOwnershipAgainstAcl, parseObjectOwnership } from './ownership-controls.js';

async function createBucket(ctx: S3Context): Promise<void> {
  const name = requireBucketName(ctx);
  const problem = bucketNameProblem(name);
  if (problem) throw new S3Error('InvalidBucketName', { message: problem, fields: { BucketName: name } });
  await checkLocationConstraint(ctx);

  const existing = await ctx.buckets.get(name);
  if (existing) {
    const code = existing.owner.id === ctx.principal.userId ? 'BucketAlreadyOwnedByYou' : 'BucketAlreadyExists';
    throw new S3Error(code, { fields: { BucketName: name } });
  }
  const objectLockEnabled = header(ctx.request, 'x-amz-bucket-object-lock-enabled')?.toLowerCase() === 'true';
  const ownership = header(ctx.request, 'x-amz-object-ownership');
  const owner = { id: ctx.principal.userId, displayName: ctx.principal.displayName };
  const record: BucketRecord = {
    name,
    owner,
    createdMs: Date.now(),
    region: ctx.config.region,
    ...(objectLockEnabled ? { objectLockEnabled: true, versioning: 'Enabled' as const } : {}),
    acl: aclFromHeaders(ctx, owner),
    ...(ownership !== undefined ? { objectOwnership: parseObjectOwnership(ownership) } : {}),
  };
  checkOwnershipAgainstAcl(record);
  await ctx.buckets.put(record);
  void ctx.reply.header('location', `/${name}`);
  sendEmpty(ctx);
}

/** An optional CreateBucketConfiguration body; its LocationConstraint must name our region. */
async function checkLocationConstraint(ctx: S3Context): Promise<void> {
  const document = await ctx.body.optionalXml();
  const constraint = xmlText(xmlChild(document, 'CreateBucketConfiguration'), 'LocationConstraint');
  if (constraint !== undefined && constraint !== '' && constraint !== ctx.config.region) {
    throw new S3Error('InvalidLocationConstraint', { message: `The specified location-constraint is not valid: this endpoint serves ${ctx.config.region}`, fields: { LocationConstraint: constraint } });
  }
}

async function headBucket(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  void ctx.reply.header('x-amz-bucket-region', bucket.region);
  sendEmpty(ctx);
}

async function deleteBucket(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const { items } = await ctx.store.list(bucket.name, { allVersions: true, includeDeleteMarkers: true, limit: 1 });
  if (items.length > 0) throw new S3Error('BucketNotEmpty', { fields: { BucketName: bucket.name } });
  await ctx.buckets.delete(bucket.name);
  sendEmpty(ctx, 204);
}

async function listBuckets(ctx: S3Context): Promise<void> {
  const maxBuckets = intParam(ctx, 'max-buckets', 10_000, 1, 10_000);
  const prefix = queryParam(ctx, 'prefix') ?? '';
  const token = queryParam(ctx, 'continuation-token');
  const after = token === undefined ? undefined : decodeToken(token);
  const region = queryParam(ctx, 'bucket-region');
  const visible = (await ctx.buckets.list(prefix)).filter((b) => (ctx.principal.isRoot || b.owner.id === ctx.principal.userId)
    && (after === undefined || b.name > after) && (region === undefined || b.region === region));
  const page = visible.slice(0, maxBuckets);
  const truncated = visible.length > page.length;
  sendXml(ctx, 'ListAllMyBucketsResult', {
    Owner: { ID: ctx.principal.userId, DisplayName: ctx.principal.displayName },
    Buckets: { Bucket: page.map((b) => ({ Name: b.name, CreationDate: new Date(b.createdMs), BucketRegion: b.region })) },
    ContinuationToken: truncated ? encodeToken(page[page.length - 1]!.name) : undefined,
    Prefix: queryParam(ctx, 'prefix'),
  });
}

async function getBucketLocation(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  // us-east-1 is reported as an empty LocationConstraint, as S3 does.
  sendXml(ctx, 'LocationConstraint', { '#text': bucket.region === 'us-east-1' ? '' : bucket.region });
}

export const operations: OperationSpec[] = [
  { name: 'ListBuckets', method: 'GET', scope: 'service', action: 's3:ListAllMyBuckets', handle: listBuckets },
  { name: 'CreateBucket', method: 'PUT', scope: 'bucket', action: 's3:CreateBucket', handle: createBucket },
  { name: 'HeadBucket', method: 'HEAD', scope: 'bucket', action: 's3:ListBucket', handle: headBucket },
  { name: 'DeleteBucket', method: 'DELETE', scope: 'bucket', action: 's3:DeleteBucket', handle: deleteBucket },
  { name: 'GetBucketLocation', method: 'GET', scope: 'bucket', subresource: 'location', action: 's3:GetBucketLocation', handle: getBucketLocation },
];
