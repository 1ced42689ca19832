// PutBucketVersioning / GetBucketVersioning. Enabled mints a version id per write; Suspended
// writes (and delete-marks) the null version again; both keep every version already stored.
import { requireBucket, type S3Context, sendEmpty, sendXml } from '../context.js';
import { S3Error } from '../errors.js';
import type { OperationSpec } from '../router.js';
import { xmlChild, xmlText } from '../xml.js';

async function putBucketVersioning(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const config = xmlChild(await ctx.body.xml(), 'VersioningConfiguration');
  if (!config) throw new S3Error('MalformedXML');
  const status = xmlText(config, 'Status');
  if (xmlText(config, 'MfaDelete') === 'Enabled') {
    throw new S3Error('NotImplemented', { message: 'MFA Delete is not supported' });
  }
  if (status === undefined) { // a document without Status changes nothing
    sendEmpty(ctx);
    return;
  }
  if (status !== 'Enabled' && status !== 'Suspended') throw new S3Error('IllegalVersioningConfigurationException');
  if (status === 'Suspended' && bucket.objectLockEnabled) {
    throw new S3Error('InvalidBucketState', { message: 'An Object Lock configuration is present on this bucket, so the versioning state cannot be changed.' });
  }
  await ctx.buckets.put({ ...bucket, versioning: status });
  sendEmpty(ctx);
}

async function getBucketVersioning(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  sendXml(ctx, 'VersioningConfiguration', { Status: bucket.versioning });
}

export const operations: OperationSpec[] = [
  { name: 'PutBucketVersioning', method: 'PUT', scope: 'bucket', subresource: 'versioning', action: 's3:PutBucketVersioning', handle: putBucketVersioning },
  { name: 'GetBucketVersioning', method: 'GET', scope: 'bucket', subresource: 'versioning', action: 's3:GetBucketVersioning', handle: getBucketVersioning },
];
