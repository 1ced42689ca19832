// Put/Get/DeleteBucketPolicy and GetBucketPolicyStatus. Evaluation lives in ../policy.ts.
import { deleteBucketConfiguration, requireBucket, type S3Context, sendEmpty, sendXml } from '../context.js';
import { S3Error } from '../errors.js';
import { parsePolicy, policyIsPublic } from '../policy.js';
import type { OperationSpec } from '../router.js';

const MAX_POLICY_BYTES = 20 * 1024;

async function putBucketPolicy(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const text = (await ctx.body.collect(MAX_POLICY_BYTES)).toString('utf8');
  parsePolicy(text, bucket.name);
  if (bucket.publicAccessBlock?.blockPublicPolicy && policyIsPublic(text, bucket.name)) {
    throw new S3Error('AccessDenied', { message: 'Public policies are blocked by the bucket\'s public access block' });
  }
  await ctx.buckets.put({ ...bucket, policy: text });
  sendEmpty(ctx, 204);
}

async function getBucketPolicy(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  if (!bucket.policy) throw new S3Error('NoSuchBucketPolicy', { fields: { BucketName: bucket.name } });
  void ctx.reply.code(200).header('content-type', 'application/json').send(bucket.policy);
}

async function getBucketPolicyStatus(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  if (!bucket.policy) throw new S3Error('NoSuchBucketPolicy', { fields: { BucketName: bucket.name } });
  sendXml(ctx, 'PolicyStatus', { IsPublic: policyIsPublic(bucket.policy, bucket.name) });
}

export const operations: OperationSpec[] = [
  { name: 'PutBucketPolicy', method: 'PUT', scope: 'bucket', subresource: 'policy', action: 's3:PutBucketPolicy', handle: putBucketPolicy },
  { name: 'GetBucketPolicy', method: 'GET', scope: 'bucket', subresource: 'policy', action: 's3:GetBucketPolicy', handle: getBucketPolicy },
  { name: 'DeleteBucketPolicy', method: 'DELETE', scope: 'bucket', subresource: 'policy', action: 's3:DeleteBucketPolicy', handle: deleteBucketConfiguration('policy') },
  { name: 'GetBucketPolicyStatus', method: 'GET', scope: 'bucket', subresource: 'policyStatus', action: 's3:GetBucketPolicyStatus', handle: getBucketPolicyStatus },
];
