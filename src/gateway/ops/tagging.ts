// Object tagging (Put/Get/DeleteObjectTagging, per version) and bucket tagging
// (Put/Get/DeleteBucketTagging). Object tags live in the version record; bucket tags in the bucket record.
import { deleteBucketConfiguration, queryParam, requireBucket, requireKey, type S3Context, sendEmpty, sendXml } from '../context.js';
import { S3Error } from '../errors.js';
import type { OperationSpec } from '../router.js';
import { xmlChild, xmlChildren, xmlText } from '../xml.js';
import { resolveVersion } from './get.js';
import { tagsFromHeader, versionIdHeader } from './put.js';

const MAX_OBJECT_TAGS = 10;
const MAX_BUCKET_TAGS = 50;

/** A `<Tagging><TagSet><Tag>` document, each tag held to the same rules as x-amz-tagging. */
async function tagSetFromBody(ctx: S3Context, maxTags: number): Promise<Record<string, string>> {
  const tagSet = xmlChild(xmlChild(await ctx.body.xml(['Tag']), 'Tagging'), 'TagSet');
  if (!tagSet) throw new S3Error('MalformedXML');
  const tags: Record<string, string> = {};
  for (const tag of xmlChildren(tagSet, 'Tag')) {
    const key = xmlText(tag, 'Key');
    const value = xmlText(tag, 'Value') ?? '';
    if (key === undefined) throw new S3Error('MalformedXML');
    if (key in tags) throw new S3Error('InvalidTag', { message: 'Cannot provide multiple Tags with the same key' });
    Object.assign(tags, tagsFromHeader(new URLSearchParams([[key, value]]).toString()));
  }
  if (Object.keys(tags).length > maxTags) throw new S3Error('InvalidTag', { message: `Tags cannot be greater than ${maxTags}` });
  return tags;
}

function sendTagSet(ctx: S3Context, tags: Record<string, string>): void {
  sendXml(ctx, 'Tagging', { TagSet: { Tag: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) } });
}

async function addressedVersion(ctx: S3Context) {
  const bucket = await requireBucket(ctx);
  const version = await resolveVersion(ctx, bucket, requireKey(ctx), queryParam(ctx, 'versionId'));
  void ctx.reply.headers(versionIdHeader(bucket, version));
  return version;
}

async function putObjectTagging(ctx: S3Context): Promise<void> {
  const version = await addressedVersion(ctx);
  const tags = await tagSetFromBody(ctx, MAX_OBJECT_TAGS);
  await ctx.store.updateVersion({ ...version, tags });
  sendEmpty(ctx);
}

async function getObjectTagging(ctx: S3Context): Promise<void> {
  const version = await addressedVersion(ctx);
  sendTagSet(ctx, version.tags ?? {});
}

async function deleteObjectTagging(ctx: S3Context): Promise<void> {
  const version = await addressedVersion(ctx);
  await ctx.store.updateVersion({ ...version, tags: {} });
  sendEmpty(ctx, 204);
}

async function putBucketTagging(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const tags = await tagSetFromBody(ctx, MAX_BUCKET_TAGS);
  await ctx.buckets.put({ ...bucket, tagging: tags });
  sendEmpty(ctx, 204);
}

async function getBucketTagging(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  if (!bucket.tagging || Object.keys(bucket.tagging).length === 0) throw new S3Error('NoSuchTagSet', { fields: { BucketName: bucket.name } });
  sendTagSet(ctx, bucket.tagging);
}

export const operations: OperationSpec[] = [
  { name: 'PutObjectTagging', method: 'PUT', scope: 'object', subresource: 'tagging', action: 's3:PutObjectTagging', handle: putObjectTagging },
  { name: 'GetObjectTagging', method: 'GET', scope: 'object', subresource: 'tagging', action: 's3:GetObjectTagging', handle: getObjectTagging },
  { name: 'DeleteObjectTagging', method: 'DELETE', scope: 'object', subresource: 'tagging', action: 's3:DeleteObjectTagging', handle: deleteObjectTagging },
  { name: 'PutBucketTagging', method: 'PUT', scope: 'bucket', subresource: 'tagging', action: 's3:PutBucketTagging', handle: putBucketTagging },
  { name: 'GetBucketTagging', method: 'GET', scope: 'bucket', subresource: 'tagging', action: 's3:GetBucketTagging', handle: getBucketTagging },
  { name: 'DeleteBucketTagging', method: 'DELETE', scope: 'bucket', subresource: 'tagging', action: 's3:PutBucketTagging', handle: deleteBucketConfiguration('tagging') },
];
