// The backup agent's only way to the store: a handful of S3 calls on one bucket through the AWS
// SDK, so any S3 endpoint works. Endpoint and credentials come the way the AWS tools take them:
// --endpoint or AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, --profile.
import {
  DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { StoreError } from '../common/errors.js';

export interface StoreOptions {
  bucket: string;
  endpoint?: string;
  profile?: string;
  region?: string;
}

export interface ListedObject {
  key: string;
  size: number;
  lastModified: Date;
}

export interface PutOptions {
  /** Object Lock (COMPLIANCE) retention: the object cannot be deleted or overwritten before this. */
  retainUntil?: Date;
}

const DELETE_BATCH = 1000;

interface SdkStream {
  transformToByteArray(): Promise<Uint8Array>;
}

export class ObjectStore {
  constructor(private readonly client: S3Client, readonly bucket: string) {}

  static connect(options: StoreOptions): ObjectStore {
    // The SDK warns on every run that future releases need Node 22; this project targets Node 20.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    const client = new S3Client({
      forcePathStyle: true,
      region: options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      ...(options.profile ? { profile: options.profile } : {}),
      // Checksums only where S3 requires them (DeleteObjects, Object Lock): widest compatibility.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 5,
    });
    return new ObjectStore(client, options.bucket);
  }

  async put(key: string, body: Buffer, options: PutOptions = {}): Promise<void> {
    await this.call(key, () => this.client.send(new PutObjectCommand({
      Bucket: this.bucket,
      Key: key,
      Body: body,
      ContentLength: body.length,
      // S3 requires an integrity header on uploads that set a retention period.
      ...(options.retainUntil ? {
        ObjectLockMode: 'COMPLIANCE',
        ObjectLockRetainUntilDate: options.retainUntil,
        ContentMD5: createHash('md5').update(body).digest('base64'),
      } : {}),
    })));
  }

  async get(key: string, range?: { start: number; end: number }): Promise<Buffer> {
    const response = await this.call(key, () => this.client.send(new GetObjectCommand({
      Bucket: this.bucket,
      Key: key,
      ...(range ? { Range: `bytes=${range.start}-${range.end - 1}` } : {}),
    })));
    return readBody(response.Body as Readable, response.ContentLength);
  }

  /** The last `length` bytes of an object (fewer if it is shorter). */
  async getTail(key: string, length: number): Promise<Buffer> {
    const response = await this.call(key, () => this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: `bytes=-${length}` })));
    return asBuffer(await response.Body!.transformToByteArray());
  }

  async tryGet(key: string): Promise<Buffer | undefined> {
    try {
      return await this.get(key);
    } catch (err) {
      if (err instanceof StoreError && err.kind === 'NotFound') return undefined;
      throw err;
    }
  }

  async *list(prefix: string): AsyncGenerator<ListedObject> {
    let token: string | undefined;
    do {
      const page = await this.call(prefix, () => this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token })));
      for (const item of page.Contents ?? []) {
        yield { key: item.Key!, size: item.Size ?? 0, lastModified: item.LastModified ?? new Date(0) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async listAll(prefix: string): Promise<ListedObject[]> {
    const out: ListedObject[] = [];
    for await (const item of this.list(prefix)) out.push(item);
    return out;
  }

  /** Deletes keys in batches; returns the keys the store refused (e.g. still under Object Lock). */
  async deleteMany(keys: string[]): Promise<string[]> {
    const refused: string[] = [];
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      const response = await this.call(batch[0]!, () => this.client.send(new DeleteObjectsCommand({
        Bucket: this.bucket,
        Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
      })));
      for (const error of response.Errors ?? []) refused.push(error.Key!);
    }
    return refused;
  }

  destroy(): void {
    this.client.destroy();
  }

  private async call<T>(key: string, send: () => Promise<T>): Promise<T> {
    try {
      return await send();
    } catch (err) {
      throw toStoreError(err, `${this.bucket}/${key}`);
    }
  }
}

/** A Buffer view of the bytes (Buffer.from(Uint8Array) would copy them). */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Reads a response body of known length straight into one buffer of its own (no concatenation
 * of the received pieces, and the buffer can be handed to a worker thread without a copy).
 */
async function readBody(body: Readable, length: number | undefined): Promise<Buffer> {
  if (length === undefined) return asBuffer(await (body as unknown as SdkStream).transformToByteArray());
  const out = Buffer.from(new ArrayBuffer(length));
  let filled = 0;
  for await (const piece of body) {
    const bytes = piece as Buffer;
    if (filled + bytes.length > length) throw new StoreError('Unavailable', `response body longer than its Content-Length ${length}`);
    out.set(bytes, filled);
    filled += bytes.length;
  }
  if (filled !== length) throw new StoreError('Unavailable', `response body ended after ${filled} of ${length} bytes`);
  return out;
}

function toStoreError(err: unknown, what: string): StoreError {
  if (err instanceof StoreError) return err;
  if (err instanceof S3ServiceException) {
    const status = err.$metadata.httpStatusCode;
    if (err.name === 'NoSuchBucket') return new StoreError('InvalidArgument', `bucket ${what.split('/')[0]} does not exist`);
    if (err.name === 'NoSuchKey' || err.name === 'NotFound' || status === 404) return new StoreError('NotFound', `${what}: not found`);
    if (status === 403) return new StoreError('Unauthenticated', `${what}: access denied (${err.name})`);
    return new StoreError('Unavailable', `${what}: ${err.name}: ${err.message}`);
  }
  return new StoreError('Unavailable', `${what}: ${err instanceof Error ? err.message : String(err)}`);
}
