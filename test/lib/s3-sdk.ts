// Test helper: @aws-sdk/client-s3 clients for a test cluster, and the S3 error a failing call reports.
import { S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import type { Test } from 'tap';
import type { Credentials } from './s3-request.js';

/** A path-style client without retries, destroyed when `t` ends. */
export function s3Client(t: Pick<Test, 'teardown'>, endpoint: string, credentials: Credentials): S3Client {
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, maxAttempts: 1, credentials });
  t.teardown(() => client.destroy());
  return client;
}

/** The S3 error code (SDK error name) and HTTP status of a call that must fail. */
export async function s3Failure(promise: Promise<unknown>): Promise<{ code: string; status: number }> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof S3ServiceException) return { code: err.name, status: err.$metadata.httpStatusCode ?? 0 };
    throw err;
  }
  throw new Error('expected the call to fail');
}
