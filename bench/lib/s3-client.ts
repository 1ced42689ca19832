// A lean S3 client over an undici connection pool: path-style requests signed by the lean SigV4
// signer, bodies streamed from the content generator, GET bodies checked as they arrive.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import { CHUNK_BYTES, ContentGenerator } from './content.js';
import { escapeXml, unescapeXml } from './xml.js';
import { canonicalQuery, encodePath, SigV4Signer, type Credentials } from './sigv4.js';

export interface S3Target {
  endpoint: string;
  bucket: string;
  credentials: Credentials;
  region: string;
}

/** A failed request, named the way the report groups errors: `503 SlowDown`, `ECONNRESET`, `Integrity`. */
export class S3RequestError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

type OnBytes = (bytes: number) => void;
const ignoreBytes: OnBytes = () => undefined;

type Query = ReadonlyArray<readonly [string, string]>;

interface RequestOptions {
  query?: Query;
  headers?: Record<string, string>;
  body?: Buffer | Readable;
  length?: number;
}

export interface ListPage {
  keys: number;
  nextToken?: string;
}

export class LeanS3Client {
  private readonly pool: Pool;
  private readonly signer: SigV4Signer;
  private readonly host: string;

  constructor(private readonly target: S3Target, connections: number) {
    const url = new URL(target.endpoint);
    this.host = url.host;
    this.pool = new Pool(url.origin, { connections, keepAliveTimeout: 30_000 });
    this.signer = new SigV4Signer(target.credentials, target.region);
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  async createBucket(): Promise<void> {
    const res = await this.send('PUT', undefined, {});
    const body = await res.body.text();
    if (res.statusCode === 200 || /BucketAlready(OwnedByYou|Exists)/.test(body)) return;
    throw errorFrom(res.statusCode, body);
  }

  /** `onBytes` hears of body bytes as they go out or come in, for per-second throughput. */
  async putObject(key: string, size: number, content: ContentGenerator, onBytes: OnBytes = ignoreBytes): Promise<void> {
    const headers = { 'content-type': 'application/octet-stream', 'x-amz-meta-bench-seed': content.seed };
    await this.expectOk(await this.send('PUT', key, { headers, ...bodyOf(content, key, 0, size, onBytes) }));
  }

  /** GETs the whole object, or `range` of it, and checks size and every byte. */
  async getObject(key: string, size: number, content: ContentGenerator, range?: { offset: number; length: number }, onBytes: OnBytes = ignoreBytes): Promise<number> {
    const headers: Record<string, string> = {};
    if (range) headers['range'] = `bytes=${range.offset}-${range.offset + range.length - 1}`;
    const res = await this.send('GET', key, { headers });
    if (res.statusCode !== 200 && res.statusCode !== 206) throw errorFrom(res.statusCode, await res.body.text());
    const verifier = content.verifier(key, range?.offset ?? 0, range?.length ?? size);
    for await (const chunk of res.body) {
      verifier.update(chunk as Buffer);
      onBytes((chunk as Buffer).length);
    }
    const problem = verifier.problem();
    if (problem) throw new S3RequestError('Integrity', `GET ${key}: ${problem}`);
    return range?.length ?? size;
  }

  async headObject(key: string, size: number): Promise<void> {
    const res = await this.send('HEAD', key, {});
    await res.body.dump();
    if (res.statusCode !== 200) throw errorFrom(res.statusCode, '');
    const length = Number(res.headers['content-length']);
    if (length !== size) throw new S3RequestError('Integrity', `HEAD ${key}: size ${length}, expected ${size}`);
  }

  async deleteObject(key: string): Promise<void> {
    const res = await this.send('DELETE', key, {});
    const body = await res.body.text();
    if (res.statusCode !== 204 && res.statusCode !== 200) throw errorFrom(res.statusCode, body);
  }

  /** DeleteObjects (POST ?delete) of up to 1,000 keys; fails if any key reports an error. */
  async deleteObjects(keys: readonly string[]): Promise<void> {
    const xml = `<Delete><Quiet>true</Quiet>${keys.map((k) => `<Object><Key>${escapeXml(k)}</Key></Object>`).join('')}</Delete>`;
    const body = Buffer.from(xml);
    const headers = { 'content-md5': createHash('md5').update(body).digest('base64'), 'content-type': 'application/xml' };
    const res = await this.send('POST', undefined, { query: [['delete', '']], headers, body, length: body.length });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw errorFrom(res.statusCode, text);
    const failed = text.match(/<Error>/g)?.length ?? 0;
    if (failed > 0) throw new S3RequestError('DeleteObjectsPartial', `${failed} of ${keys.length} keys not deleted`);
  }

  async listPage(prefix: string, maxKeys: number, token?: string): Promise<ListPage> {
    const query: Array<[string, string]> = [['list-type', '2'], ['prefix', prefix], ['max-keys', String(maxKeys)]];
    if (token) query.push(['continuation-token', token]);
    const res = await this.send('GET', undefined, { query });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw errorFrom(res.statusCode, text);
    const next = /<NextContinuationToken>([^<]*)<\/NextContinuationToken>/.exec(text)?.[1];
    const truncated = /<IsTruncated>true<\/IsTruncated>/.test(text);
    return { keys: text.match(/<Key>/g)?.length ?? 0, nextToken: truncated && next ? unescapeXml(next) : undefined };
  }

  /** Create, upload parts (`partConcurrency` at a time), complete. */
  async multipartUpload(key: string, size: number, partSize: number, partConcurrency: number, content: ContentGenerator, onBytes: OnBytes = ignoreBytes): Promise<void> {
    const created = await this.send('POST', key, { query: [['uploads', '']], headers: { 'x-amz-meta-bench-seed': content.seed } });
    const createdXml = await created.body.text();
    if (created.statusCode !== 200) throw errorFrom(created.statusCode, createdXml);
    const uploadId = unescapeXml(/<UploadId>([^<]+)<\/UploadId>/.exec(createdXml)?.[1] ?? '');
    const partCount = Math.max(1, Math.ceil(size / partSize));
    const etags: string[] = new Array(partCount);
    let nextPart = 0;
    const uploadParts = async (): Promise<void> => {
      for (let part = nextPart++; part < partCount; part = nextPart++) {
        const offset = part * partSize;
        const query: Query = [['partNumber', String(part + 1)], ['uploadId', uploadId]];
        const res = await this.send('PUT', key, { query, ...bodyOf(content, key, offset, Math.min(partSize, size - offset), onBytes) });
        await this.expectOk(res);
        etags[part] = String(res.headers['etag']);
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(partConcurrency, partCount) }, uploadParts));
    } catch (err) {
      await this.send('DELETE', key, { query: [['uploadId', uploadId]] }).then((r) => r.body.dump(), () => undefined);
      throw err;
    }
    const parts = etags.map((etag, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${escapeXml(etag)}</ETag></Part>`);
    const body = Buffer.from(`<CompleteMultipartUpload>${parts.join('')}</CompleteMultipartUpload>`);
    const res = await this.send('POST', key, { query: [['uploadId', uploadId]], body, length: body.length, headers: { 'content-type': 'application/xml' } });
    const text = await res.body.text();
    // S3 may answer 200 and still carry an error in the body.
    if (res.statusCode !== 200 || text.includes('<Error>')) throw errorFrom(res.statusCode === 200 ? 500 : res.statusCode, text);
  }

  private async send(method: string, key: string | undefined, options: RequestOptions): Promise<Dispatcher.ResponseData> {
    const path = encodePath(key === undefined ? `/${this.target.bucket}` : `/${this.target.bucket}/${key}`);
    const headers: Record<string, string> = { host: this.host, ...options.headers };
    if (options.length !== undefined) headers['content-length'] = String(options.length);
    const signed = this.signer.sign({ method, path, query: options.query, headers });
    const query = canonicalQuery(options.query);
    try {
      // reset: false keeps the connection alive after HEAD, which undici otherwise closes.
      return await this.pool.request({
        method: method as Dispatcher.HttpMethod, path: query ? `${path}?${query}` : path, headers: signed, body: options.body ?? null, reset: false,
      });
    } catch (err) {
      throw new S3RequestError((err as { code?: string }).code ?? (err as Error).name, `${method} ${path}: ${(err as Error).message}`);
    }
  }

  private async expectOk(res: Dispatcher.ResponseData): Promise<void> {
    const body = await res.body.text();
    if (res.statusCode !== 200) throw errorFrom(res.statusCode, body);
  }
}

function bodyOf(content: ContentGenerator, key: string, offset: number, length: number, onBytes: OnBytes): { body: Buffer | Readable; length: number } {
  if (length <= CHUNK_BYTES) {
    onBytes(length);
    return { body: content.bytes(key, offset, length), length };
  }
  return { body: Readable.from(counted(content.chunks(key, offset, length), onBytes), { objectMode: false }), length };
}

function* counted(chunks: Iterable<Buffer>, onBytes: OnBytes): Generator<Buffer> {
  for (const chunk of chunks) {
    onBytes(chunk.length);
    yield chunk;
  }
}

function errorFrom(status: number, body: string): S3RequestError {
  const code = /<Code>([^<]+)<\/Code>/.exec(body)?.[1];
  const message = /<Message>([^<]*)<\/Message>/.exec(body)?.[1];
  return new S3RequestError(code ? `${status} ${code}` : String(status), message ?? `HTTP ${status}`);
}
