// Put/GetBucketAcl and Put/GetObjectAcl: canned ACLs (x-amz-acl), x-amz-grant-* headers or an
// AccessControlPolicy document. Grants are evaluated in ../acl.ts.
import { aclFromHeaders, aclFromXml, aclXml, type Grant, grantsFor, shownGrants } from '../acl.js';
import type { BucketRecord } from '../bucket-record.js';
import { queryParam, requireBucket, requireKey, type S3Context, sendEmpty, sendXml } from '../context.js';
import { S3Error } from '../errors.js';
import type { OperationSpec } from '../router.js';
import { attributesOf, withAttributes } from './attributes.js';
import { resolveVersion } from './get.js';
import { versionIdHeader } from './put.js';

/** The grants a Put*Acl request sets (from headers or from the body, not both), as grantsFor stores them. */
async function requestedGrants(ctx: S3Context, bucket: BucketRecord): Promise<Grant[] | undefined> {
  const fromHeaders = aclFromHeaders(ctx, bucket.owner);
  const document = await ctx.body.optionalXml(['Grant']);
  if (fromHeaders && document) throw new S3Error('UnexpectedContent', { message: 'This request does not support content when ACL headers are given' });
  if (fromHeaders) return grantsFor(bucket, fromHeaders);
  if (!document) throw new S3Error('MissingSecurityHeader', { message: 'Your request was missing a required header', fields: { MissingHeaderName: 'x-amz-acl' } });
  return grantsFor(bucket, aclFromXml(document));
}

async function putBucketAcl(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  await ctx.buckets.put({ ...bucket, acl: await requestedGrants(ctx, bucket) });
  sendEmpty(ctx);
}

async function getBucketAcl(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  sendXml(ctx, 'AccessControlPolicy', aclXml(bucket.owner, shownGrants(bucket, bucket.acl as Grant[] | undefined)));
}

async function putObjectAcl(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const version = await resolveVersion(ctx, bucket, requireKey(ctx), queryParam(ctx, 'versionId'));
  await ctx.store.updateVersion(withAttributes(version, { acl: await requestedGrants(ctx, bucket) }));
  void ctx.reply.headers(versionIdHeader(bucket, version));
  sendEmpty(ctx);
}

async function getObjectAcl(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const version = await resolveVersion(ctx, bucket, requireKey(ctx), queryParam(ctx, 'versionId'));
  void ctx.reply.headers(versionIdHeader(bucket, version));
  sendXml(ctx, 'AccessControlPolicy', aclXml(bucket.owner, shownGrants(bucket, attributesOf(version).acl)));
}

export const operations: OperationSpec[] = [
  { name: 'PutBucketAcl', method: 'PUT', scope: 'bucket', subresource: 'acl', action: 's3:PutBucketAcl', handle: putBucketAcl },
  { name: 'GetBucketAcl', method: 'GET', scope: 'bucket', subresource: 'acl', action: 's3:GetBucketAcl', handle: getBucketAcl },
  { name: 'PutObjectAcl', method: 'PUT', scope: 'object', subresource: 'acl', action: 's3:PutObjectAcl', handle: putObjectAcl },
  { name: 'GetObjectAcl', method: 'GET', scope: 'object', subresource: 'acl', action: 's3:GetObjectAcl', handle: getObjectAcl },
];
