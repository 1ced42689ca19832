// Bucket features Tessera does not offer, read back as S3 reads them while they are off, so that
// tools which inspect every setting of a bucket (Terraform's aws_s3_bucket, s3cmd info, desktop
// clients) work: no transfer acceleration, the owner pays for requests, no access logging, no
// event notifications, no replication. Setting any of them stays NotImplemented.
import { requireBucket, type S3Context, sendXml } from '../context.js';
import { S3Error } from '../errors.js';
import type { OperationSpec } from '../router.js';
import type { XmlObject } from '../xml.js';

/** A Get operation that checks the bucket exists and answers the feature's "off" document. */
function readsAsOff(root: string, body: XmlObject = {}): (ctx: S3Context) => Promise<void> {
  return async (ctx) => {
    await requireBucket(ctx);
    sendXml(ctx, root, body);
  };
}

async function getBucketReplication(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  throw new S3Error('ReplicationConfigurationNotFoundError', { fields: { BucketName: bucket.name } });
}

export const operations: OperationSpec[] = [
  { name: 'GetBucketAccelerateConfiguration', method: 'GET', scope: 'bucket', subresource: 'accelerate', action: 's3:GetAccelerateConfiguration', handle: readsAsOff('AccelerateConfiguration') },
  { name: 'GetBucketRequestPayment', method: 'GET', scope: 'bucket', subresource: 'requestPayment', action: 's3:GetBucketRequestPayment', handle: readsAsOff('RequestPaymentConfiguration', { Payer: 'BucketOwner' }) },
  { name: 'GetBucketLogging', method: 'GET', scope: 'bucket', subresource: 'logging', action: 's3:GetBucketLogging', handle: readsAsOff('BucketLoggingStatus') },
  { name: 'GetBucketNotificationConfiguration', method: 'GET', scope: 'bucket', subresource: 'notification', action: 's3:GetBucketNotification', handle: readsAsOff('NotificationConfiguration') },
  { name: 'GetBucketReplication', method: 'GET', scope: 'bucket', subresource: 'replication', action: 's3:GetReplicationConfiguration', handle: getBucketReplication },
];
