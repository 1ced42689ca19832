// Put/Get/DeleteBucketOwnershipControls and CreateBucket's x-amz-object-ownership. Objects here
// always belong to the bucket owner, so the setting that changes behaviour is BucketOwnerEnforced:
// ACLs are disabled — they grant nothing, read back as the owner's full control, and a request
// that sets any other ACL fails with AccessControlListNotSupported (../acl.ts grantsFor).
import { aclGrantsOnlyOwner } from '../acl.js';
import { type BucketRecord, OBJECT_OWNERSHIP_SETTINGS, type ObjectOwnership } from '../bucket-record.js';
import { deleteBucketConfiguration, requireBucket, type S3Context, sendEmpty, sendXml } from '../context.js';
import { S3Error } from '../errors.js';
import type { OperationSpec } from '../router.js';
import { xmlChild, xmlText } from '../xml.js';

export function parseObjectOwnership(value: string | undefined): ObjectOwnership {
  const setting = OBJECT_OWNERSHIP_SETTINGS.find((s) => s === value?.trim());
  if (!setting) throw new S3Error('InvalidArgument', { message: `Invalid ObjectOwnership: ${value}`, fields: { ArgumentName: 'ObjectOwnership', ArgumentValue: value ?? '' } });
  return setting;
}

/** BucketOwnerEnforced needs a bucket ACL that grants only its owner (S3 refuses it otherwise). */
export function checkOwnershipAgainstAcl(bucket: Pick<BucketRecord, 'owner' | 'acl' | 'objectOwnership'>): void {
  if (bucket.objectOwnership === 'BucketOwnerEnforced' && !aclGrantsOnlyOwner(bucket.owner, bucket.acl)) {
    throw new S3Error('InvalidBucketAclWithObjectOwnership');
  }
}

async function putOwnershipControls(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const rule = xmlChild(xmlChild(await ctx.body.xml(), 'OwnershipControls'), 'Rule');
  if (!rule) throw new S3Error('MalformedXML');
  const updated = { ...bucket, objectOwnership: parseObjectOwnership(xmlText(rule, 'ObjectOwnership')) };
  checkOwnershipAgainstAcl(updated);
  await ctx.buckets.put(updated);
  sendEmpty(ctx);
}

async function getOwnershipControls(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  if (!bucket.objectOwnership) throw new S3Error('OwnershipControlsNotFoundError', { fields: { BucketName: bucket.name } });
  sendXml(ctx, 'OwnershipControls', { Rule: { ObjectOwnership: bucket.objectOwnership } });
}

export const operations: OperationSpec[] = [
  { name: 'PutBucketOwnershipControls', method: 'PUT', scope: 'bucket', subresource: 'ownershipControls', action: 's3:PutBucketOwnershipControls', handle: putOwnershipControls },
  { name: 'GetBucketOwnershipControls', method: 'GET', scope: 'bucket', subresource: 'ownershipControls', action: 's3:GetBucketOwnershipControls', handle: getOwnershipControls },
  { name: 'DeleteBucketOwnershipControls', method: 'DELETE', scope: 'bucket', subresource: 'ownershipControls', action: 's3:PutBucketOwnershipControls', handle: deleteBucketConfiguration('objectOwnership') },
];
