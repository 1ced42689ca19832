// The null S3 server: the HTTP ceiling of Node on this machine. It speaks enough S3 for every
// bench scenario, discards request bodies, and answers GET from memory by regenerating the bench
// content from the seed the client sent as x-amz-meta-bench-seed (objects written without one
// read back as zeros). It checks only that a SigV4 Authorization header is present: verifying it
// would measure the server, not HTTP.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CHUNK_BYTES, ContentGenerator } from './content.js';
import { escapeXml, unescapeXml } from './xml.js';

interface StoredObject {
  size: number;
  seed?: string;
}

interface Upload {
  seed?: string;
  parts: Map<number, number>;
}

const ZEROS = Buffer.alloc(CHUNK_BYTES);

export interface NullServer {
  port: number;
  close(): Promise<void>;
}

export async function startNullServer(port = 0, host = '127.0.0.1'): Promise<NullServer> {
  const store = new NullStore();
  const server: Server = createServer((req, res) => {
    store.handle(req, res).catch((err: Error) => {
      if (!res.headersSent) reply(res, 500, errorXml('InternalError', err.message));
      else res.destroy(err);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

class NullStore {
  private readonly buckets = new Map<string, Map<string, StoredObject>>();
  private readonly sortedKeys = new Map<string, string[]>();
  private readonly uploads = new Map<string, Upload>();
  private readonly generators = new Map<string, ContentGenerator>();
  private nextUploadId = 1;

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!req.headers.authorization?.startsWith('AWS4-HMAC-SHA256 Credential=')) {
      await drain(req);
      return reply(res, 403, errorXml('AccessDenied', 'missing SigV4 authorization'));
    }
    const url = new URL(req.url ?? '/', 'http://null');
    const [, bucketName = '', ...rest] = url.pathname.split('/');
    const bucket = decodeURIComponent(bucketName);
    const key = decodeURIComponent(rest.join('/'));
    const q = url.searchParams;
    if (!key) return this.bucketRequest(req, res, bucket, q);
    const objects = this.buckets.get(bucket);
    if (!objects) { await drain(req); return reply(res, 404, errorXml('NoSuchBucket', bucket)); }
    switch (req.method) {
      case 'PUT': {
        const size = await drain(req);
        const uploadId = q.get('uploadId');
        if (uploadId) {
          const upload = this.uploads.get(uploadId);
          if (!upload) return reply(res, 404, errorXml('NoSuchUpload', uploadId));
          upload.parts.set(Number(q.get('partNumber')), size);
        } else {
          this.store(bucket, key, { size, seed: seedOf(req) });
        }
        res.setHeader('etag', `"${size.toString(16).padStart(32, '0')}"`);
        return reply(res, 200);
      }
      case 'POST':
        return this.multipartRequest(req, res, bucket, key, q);
      case 'GET':
      case 'HEAD': {
        const object = objects.get(key);
        if (!object) return reply(res, 404, req.method === 'GET' ? errorXml('NoSuchKey', key) : undefined);
        return this.sendObject(req, res, key, object);
      }
      case 'DELETE':
        if (q.has('uploadId')) this.uploads.delete(q.get('uploadId')!);
        else this.remove(bucket, [key]);
        return reply(res, 204);
      default:
        return reply(res, 405, errorXml('MethodNotAllowed', String(req.method)));
    }
  }

  private async bucketRequest(req: IncomingMessage, res: ServerResponse, bucket: string, q: URLSearchParams): Promise<void> {
    const body = await readText(req);
    if (req.method === 'PUT') {
      if (!this.buckets.has(bucket)) this.buckets.set(bucket, new Map());
      return reply(res, 200);
    }
    if (!this.buckets.has(bucket)) return reply(res, 404, errorXml('NoSuchBucket', bucket));
    if (req.method === 'POST' && q.has('delete')) {
      const keys = [...body.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => unescapeXml(m[1]!));
      this.remove(bucket, keys);
      return reply(res, 200, '<?xml version="1.0" encoding="UTF-8"?><DeleteResult></DeleteResult>');
    }
    if (req.method === 'GET') return reply(res, 200, this.listXml(bucket, q));
    if (req.method === 'HEAD' || req.method === 'DELETE') return reply(res, req.method === 'HEAD' ? 200 : 204);
    return reply(res, 405, errorXml('MethodNotAllowed', String(req.method)));
  }

  private async multipartRequest(req: IncomingMessage, res: ServerResponse, bucket: string, key: string, q: URLSearchParams): Promise<void> {
    const body = await readText(req);
    if (q.has('uploads')) {
      const uploadId = String(this.nextUploadId++);
      this.uploads.set(uploadId, { seed: seedOf(req), parts: new Map() });
      return reply(res, 200, `<InitiateMultipartUploadResult><Bucket>${bucket}</Bucket><Key>${escapeXml(key)}</Key><UploadId>${uploadId}</UploadId></InitiateMultipartUploadResult>`);
    }
    const uploadId = q.get('uploadId') ?? '';
    const upload = this.uploads.get(uploadId);
    if (!upload) return reply(res, 404, errorXml('NoSuchUpload', uploadId));
    const partNumbers = [...body.matchAll(/<PartNumber>(\d+)<\/PartNumber>/g)].map((m) => Number(m[1]));
    const size = partNumbers.reduce((sum, n) => sum + (upload.parts.get(n) ?? 0), 0);
    this.uploads.delete(uploadId);
    this.store(bucket, key, { size, seed: upload.seed });
    return reply(res, 200, `<CompleteMultipartUploadResult><Key>${escapeXml(key)}</Key><ETag>"null-${partNumbers.length}"</ETag></CompleteMultipartUploadResult>`);
  }

  private async sendObject(req: IncomingMessage, res: ServerResponse, key: string, object: StoredObject): Promise<void> {
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    const start = range ? Number(range[1]) : 0;
    const end = range ? Math.min(object.size - 1, range[2] ? Number(range[2]) : object.size - 1) : object.size - 1;
    const length = Math.max(0, end - start + 1);
    res.statusCode = range ? 206 : 200;
    res.setHeader('content-length', length);
    res.setHeader('content-type', 'application/octet-stream');
    res.setHeader('etag', '"null"');
    if (range) res.setHeader('content-range', `bytes ${start}-${end}/${object.size}`);
    if (req.method === 'HEAD') return void res.end();
    const chunks = object.seed
      ? this.generator(object.seed).chunks(key, start, length)
      : zeroChunks(length);
    for (const chunk of chunks) {
      if (!res.write(chunk)) await new Promise((resolve) => res.once('drain', resolve));
    }
    res.end();
  }

  private listXml(bucket: string, q: URLSearchParams): string {
    const prefix = q.get('prefix') ?? '';
    const maxKeys = Math.min(1000, Number(q.get('max-keys') ?? 1000));
    const after = q.get('continuation-token') ?? q.get('start-after') ?? '';
    const keys = this.sorted(bucket);
    let index = lowerBound(keys, after > prefix ? after : prefix);
    if (keys[index] === after) index++;
    const page: string[] = [];
    for (; index < keys.length && page.length < maxKeys && keys[index]!.startsWith(prefix); index++) page.push(keys[index]!);
    const truncated = index < keys.length && keys[index]!.startsWith(prefix);
    const objects = this.buckets.get(bucket)!;
    const contents = page.map((k) => `<Contents><Key>${escapeXml(k)}</Key><Size>${objects.get(k)!.size}</Size><StorageClass>STANDARD</StorageClass></Contents>`);
    const next = truncated ? `<NextContinuationToken>${escapeXml(page[page.length - 1]!)}</NextContinuationToken>` : '';
    return `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>${bucket}</Name><Prefix>${escapeXml(prefix)}</Prefix>` +
      `<KeyCount>${page.length}</KeyCount><MaxKeys>${maxKeys}</MaxKeys><IsTruncated>${truncated}</IsTruncated>${next}${contents.join('')}</ListBucketResult>`;
  }

  private store(bucket: string, key: string, object: StoredObject): void {
    const objects = this.buckets.get(bucket)!;
    if (!objects.has(key)) this.sortedKeys.delete(bucket);
    objects.set(key, object);
  }

  private remove(bucket: string, keys: string[]): void {
    const objects = this.buckets.get(bucket)!;
    for (const key of keys) objects.delete(key);
    this.sortedKeys.delete(bucket);
  }

  private sorted(bucket: string): string[] {
    let keys = this.sortedKeys.get(bucket);
    if (!keys) {
      keys = [...this.buckets.get(bucket)!.keys()].sort();
      this.sortedKeys.set(bucket, keys);
    }
    return keys;
  }

  private generator(seed: string): ContentGenerator {
    let generator = this.generators.get(seed);
    if (!generator) this.generators.set(seed, (generator = new ContentGenerator(seed)));
    return generator;
  }
}

function* zeroChunks(length: number): Generator<Buffer> {
  for (let left = length; left > 0; left -= CHUNK_BYTES) yield ZEROS.subarray(0, Math.min(left, CHUNK_BYTES));
}

function seedOf(req: IncomingMessage): string | undefined {
  const seed = req.headers['x-amz-meta-bench-seed'];
  return typeof seed === 'string' ? seed : undefined;
}

function lowerBound(sorted: string[], value: string): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (sorted[mid]! < value) low = mid + 1;
    else high = mid;
  }
  return low;
}

async function drain(req: IncomingMessage): Promise<number> {
  let size = 0;
  for await (const chunk of req) size += (chunk as Buffer).length;
  return size;
}

async function readText(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function reply(res: ServerResponse, status: number, xml?: string): void {
  res.statusCode = status;
  if (xml) res.setHeader('content-type', 'application/xml');
  res.end(xml);
}

function errorXml(code: string, message: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${escapeXml(message)}</Message></Error>`;
}
