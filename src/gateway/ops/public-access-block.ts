// Put/Get/DeletePublicAccessBlock: a bucket's guard against public access, enforced where public
// access arises — ACL grants to AllUsers / AuthenticatedUsers (../acl.ts) and bucket policies that
// allow everyone (../policy.ts):
//   BlockPublicAcls        refuse requests that set a public ACL (bucket, object, or with a write)
//   IgnorePublicAcls       public ACL grants give no access
//   BlockPublicPolicy      refuse a public bucket policy
//   RestrictPublicBuckets  a public policy gives anonymous requests no access
import type { PublicAccessBlock } from '../bucket-record.js';
import { deleteBucketConfiguration, requireBucket, type S3Context, sendEmpty, sendXml } from '../context.js';
import { S3Error } from '../errors.js';
import type { OperationSpec } from '../router.js';
import { type ParsedXml, xmlChild, xmlText } from '../xml.js';

const SETTINGS: ReadonlyArray<[keyof PublicAccessBlock, string]> = [
  ['blockPublicAcls', 'BlockPublicAcls'],
  ['ignorePublicAcls', 'IgnorePublicAcls'],
  ['blockPublicPolicy', 'BlockPublicPolicy'],
  ['restrictPublicBuckets', 'RestrictPublicBuckets'],
];

/** A `<PublicAccessBlockConfiguration>`; an element left out is false, as in S3. */
export function parsePublicAccessBlock(document: ParsedXml): PublicAccessBlock {
  const configuration = xmlChild(document, 'PublicAccessBlockConfiguration');
  if (!configuration) throw new S3Error('MalformedXML');
  const setting = (element: string): boolean => {
    const value = xmlText(configuration, element)?.trim().toLowerCase();
    if (value !== undefined && value !== 'true' && value !== 'false') throw new S3Error('MalformedXML');
    return value === 'true';
  };
  return Object.fromEntries(SETTINGS.map(([field, element]) => [field, setting(element)])) as unknown as PublicAccessBlock;
}

async function putPublicAccessBlock(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  await ctx.buckets.put({ ...bucket, publicAccessBlock: parsePublicAccessBlock(await ctx.body.xml()) });
  sendEmpty(ctx);
}

async function getPublicAccessBlock(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const block = bucket.publicAccessBlock;
  if (!block) throw new S3Error('NoSuchPublicAccessBlockConfiguration', { fields: { BucketName: bucket.name } });
  sendXml(ctx, 'PublicAccessBlockConfiguration', Object.fromEntries(SETTINGS.map(([field, element]) => [element, block[field]])));
}

export const operations: OperationSpec[] = [
  { name: 'PutPublicAccessBlock', method: 'PUT', scope: 'bucket', subresource: 'publicAccessBlock', action: 's3:PutBucketPublicAccessBlock', handle: putPublicAccessBlock },
  { name: 'GetPublicAccessBlock', method: 'GET', scope: 'bucket', subresource: 'publicAccessBlock', action: 's3:GetBucketPublicAccessBlock', handle: getPublicAccessBlock },
  { name: 'DeletePublicAccessBlock', method: 'DELETE', scope: 'bucket', subresource: 'publicAccessBlock', action: 's3:PutBucketPublicAccessBlock', handle: deleteBucketConfiguration('publicAccessBlock') },
];
