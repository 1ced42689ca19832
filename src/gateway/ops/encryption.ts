// PutBucketEncryption / GetBucketEncryption / DeleteBucketEncryption: a bucket's default
// server-side encryption, applied (../sse.ts encryptionForWrite) to writes that ask for none.
import { deleteBucketConfiguration, requireBucket, type S3Context, sendEmpty, sendXml } from '../context.js';
import { S3Error } from '../errors.js';
import type { OperationSpec } from '../router.js';
import { SSE_ALGORITHM } from '../sse.js';
import { xmlChild, xmlChildren, xmlText } from '../xml.js';

async function putBucketEncryption(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const rules = xmlChildren(xmlChild(await ctx.body.xml(['Rule']), 'ServerSideEncryptionConfiguration'), 'Rule');
  if (rules.length !== 1) throw new S3Error('MalformedXML');
  const algorithm = xmlText(xmlChild(rules[0], 'ApplyServerSideEncryptionByDefault'), 'SSEAlgorithm');
  if (algorithm === undefined) throw new S3Error('MalformedXML');
  if (algorithm.startsWith('aws:kms')) throw new S3Error('NotImplemented', { message: 'SSE-KMS is not supported; use AES256.' });
  if (algorithm !== SSE_ALGORITHM) throw new S3Error('MalformedXML');
  // Refuse now rather than fail every later write.
  if (!ctx.config.sseMasterKeys) throw new S3Error('NotImplemented', { message: 'Server-side encryption (SSE-S3) is not configured on this gateway.' });
  await ctx.buckets.put({ ...bucket, encryption: SSE_ALGORITHM });
  sendEmpty(ctx);
}

async function getBucketEncryption(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  if (!bucket.encryption) throw new S3Error('ServerSideEncryptionConfigurationNotFoundError', { fields: { BucketName: bucket.name } });
  sendXml(ctx, 'ServerSideEncryptionConfiguration', {
    Rule: { ApplyServerSideEncryptionByDefault: { SSEAlgorithm: bucket.encryption }, BucketKeyEnabled: false },
  });
}

export const operations: OperationSpec[] = [
  { name: 'PutBucketEncryption', method: 'PUT', scope: 'bucket', subresource: 'encryption', action: 's3:PutEncryptionConfiguration', handle: putBucketEncryption },
  { name: 'GetBucketEncryption', method: 'GET', scope: 'bucket', subresource: 'encryption', action: 's3:GetEncryptionConfiguration', handle: getBucketEncryption },
  { name: 'DeleteBucketEncryption', method: 'DELETE', scope: 'bucket', subresource: 'encryption', action: 's3:PutEncryptionConfiguration', handle: deleteBucketConfiguration('encryption') },
];
