// The fault workload's S3 client: raw requests over an undici pool, signed by the bench's lean
// SigV4 signer, answering with status and body bytes instead of throwing on errors — a checker
// needs to see exactly what a client saw (503s, cut-off bodies, wrong bytes), not a retried success.
import { Pool, type Dispatcher } from 'undici';
import { canonicalQuery, encodePath, SigV4Signer, type Credentials } from '../../../bench/lib/sigv4.js';
import { escapeXml, unescapeXml } from '../../../bench/lib/xml.js';

export interface S3Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

type Query = ReadonlyArray<readonly [string, string]>;

/** A request that got no complete answer: connection refused or reset, timeout, cut-off body. */
export class TransportError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

export interface ListedObject {
  key: string;
  size: number;
  etag: string;
}

export class FaultS3Client {
  private readonly pool: Pool;
  private readonly signer: SigV4Signer;
  private readonly host: string;

  constructor(endpoint: string, credentials: Credentials, region: string, private readonly timeoutMs = 30_000, connections = 16) {
    const url = new URL(endpoint);
    this.host = url.host;
    this.pool = new Pool(url.origin, { connections, keepAliveTimeout: 10_000 });
    this.signer = new SigV4Signer(credentials, region);
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }

  async send(method: string, path: string, options: { query?: Query; body?: Buffer; headers?: Record<string, string> } = {}): Promise<S3Reply> {
    const encoded = encodePath(path);
    const headers: Record<string, string> = { host: this.host, ...options.headers };
    if (options.body) headers['content-length'] = String(options.body.length);
    const signed = this.signer.sign({ method, path: encoded, query: options.query, headers });
    const query = canonicalQuery(options.query);
    try {
      const res = await this.pool.request({
        method: method as Dispatcher.HttpMethod,
        path: query ? `${encoded}?${query}` : encoded,
        headers: signed,
        body: options.body ?? null,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
      const body = Buffer.from(await res.body.arrayBuffer());
      const length = res.headers['content-length'];
      if (method !== 'HEAD' && length !== undefined && Number(length) !== body.length) {
        throw new TransportError('Truncated', `${method} ${path}: ${body.length} of ${length} bytes`);
      }
      return { status: res.statusCode, headers: res.headers, body };
    } catch (err) {
      if (err instanceof TransportError) throw err;
      const code = (err as { code?: string }).code ?? (err as Error).name;
      throw new TransportError(code, `${method} ${path}: ${(err as Error).message}`);
    }
  }

  createBucket(bucket: string): Promise<S3Reply> {
    return this.send('PUT', `/${bucket}`);
  }

  putObject(bucket: string, key: string, body: Buffer): Promise<S3Reply> {
    return this.send('PUT', `/${bucket}/${key}`, { body, headers: { 'content-type': 'application/octet-stream' } });
  }

  getObject(bucket: string, key: string): Promise<S3Reply> {
    return this.send('GET', `/${bucket}/${key}`);
  }

  deleteObject(bucket: string, key: string): Promise<S3Reply> {
    return this.send('DELETE', `/${bucket}/${key}`);
  }

  /** Every object under `prefix`, page by page; throws on any non-200 page. */
  async listObjects(bucket: string, prefix = ''): Promise<ListedObject[]> {
    const objects: ListedObject[] = [];
    let token: string | undefined;
    do {
      const query: Array<[string, string]> = [['list-type', '2'], ['prefix', prefix], ['max-keys', '200']];
      if (token) query.push(['continuation-token', token]);
      const reply = await this.send('GET', `/${bucket}`, { query });
      const xml = reply.body.toString();
      if (reply.status !== 200) throw new TransportError(`HTTP ${reply.status}`, `list ${bucket}: ${xml.slice(0, 200)}`);
      for (const match of xml.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)) {
        const part = match[1]!;
        objects.push({
          key: unescapeXml(/<Key>([^<]*)<\/Key>/.exec(part)?.[1] ?? ''),
          size: Number(/<Size>(\d+)<\/Size>/.exec(part)?.[1]),
          etag: unescapeXml(/<ETag>([^<]*)<\/ETag>/.exec(part)?.[1] ?? ''),
        });
      }
      token = /<IsTruncated>true<\/IsTruncated>/.test(xml)
        ? unescapeXml(/<NextContinuationToken>([^<]*)<\/NextContinuationToken>/.exec(xml)?.[1] ?? '') : undefined;
    } while (token);
    return objects;
  }

  /** CreateMultipartUpload; the upload id, or the failed reply. */
  async createUpload(bucket: string, key: string): Promise<string | S3Reply> {
    const reply = await this.send('POST', `/${bucket}/${key}`, { query: [['uploads', '']] });
    const id = /<UploadId>([^<]+)<\/UploadId>/.exec(reply.body.toString())?.[1];
    return reply.status === 200 && id ? unescapeXml(id) : reply;
  }

  uploadPart(bucket: string, key: string, uploadId: string, partNumber: number, body: Buffer): Promise<S3Reply> {
    return this.send('PUT', `/${bucket}/${key}`, { query: [['partNumber', String(partNumber)], ['uploadId', uploadId]], body });
  }

  completeUpload(bucket: string, key: string, uploadId: string, etags: string[]): Promise<S3Reply> {
    const parts = etags.map((etag, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${escapeXml(etag)}</ETag></Part>`);
    const body = Buffer.from(`<CompleteMultipartUpload>${parts.join('')}</CompleteMultipartUpload>`);
    return this.send('POST', `/${bucket}/${key}`, { query: [['uploadId', uploadId]], body, headers: { 'content-type': 'application/xml' } });
  }

  abortUpload(bucket: string, key: string, uploadId: string): Promise<S3Reply> {
    return this.send('DELETE', `/${bucket}/${key}`, { query: [['uploadId', uploadId]] });
  }

  /** The first page (up to 1,000) of uploads in progress. */
  async listUploads(bucket: string): Promise<Array<{ key: string; uploadId: string }>> {
    const reply = await this.send('GET', `/${bucket}`, { query: [['uploads', '']] });
    const xml = reply.body.toString();
    if (reply.status !== 200) throw new TransportError(`HTTP ${reply.status}`, `list uploads ${bucket}: ${xml.slice(0, 200)}`);
    return [...xml.matchAll(/<Upload>([\s\S]*?)<\/Upload>/g)].map((m) => ({
      key: unescapeXml(/<Key>([^<]*)<\/Key>/.exec(m[1]!)?.[1] ?? ''),
      uploadId: unescapeXml(/<UploadId>([^<]*)<\/UploadId>/.exec(m[1]!)?.[1] ?? ''),
    }));
  }
}

/** A CompleteMultipartUpload answer may be 200 with an error document inside. */
export function completedOk(reply: S3Reply): boolean {
  return reply.status === 200 && !reply.body.includes('<Error>');
}

