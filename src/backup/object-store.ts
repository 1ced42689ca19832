// The backup agent's only way to the store: a handful of S3 calls on one bucket (path-style), so
// any S3 endpoint works. A lean client over node:http(s) with the lean SigV4 signer: the AWS SDK
// took ~0.2 CPU-s to load and set up, which dominated a small incremental. Endpoint and
// credentials come the way the AWS tools take them: --endpoint or AWS_ENDPOINT_URL,
// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN); with --profile, or without
// keys in the environment, the SDK's own credential chain (profiles, SSO, roles, instance
// metadata) is loaded to find them.
import { createHash } from 'node:crypto';
import { Agent as HttpAgent, type IncomingMessage, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { StoreError } from '../common/errors.js';
import { BodyIntoClient, ChunkedBodyError } from './body-into.js';
import { canonicalQuery, encodePath, SigV4Signer, type Credentials } from '../common/sigv4-signer.js';

export interface StoreOptions {
  bucket: string;
  endpoint?: string;
  profile?: string;
  region?: string;
  /** A connection on which the store says nothing this long is dropped and the request retried. */
  idleTimeoutMs?: number;
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

interface SessionCredentials extends Credentials {
  sessionToken?: string;
}

/** Credentials for each request: fixed, or from the SDK's chain (which caches and refreshes them). */
type CredentialSource = () => Promise<SessionCredentials>;

type Query = Array<[string, string]>;

interface S3Request {
  method: 'GET' | 'PUT' | 'POST';
  key?: string;
  query?: Query;
  headers?: Record<string, string>;
  /** The body, or its parts back to back (sent without joining them). */
  body?: Buffer | Buffer[];
}

interface S3Response {
  status: number;
  headers: IncomingMessage['headers'];
  message: IncomingMessage;
}

const DELETE_BATCH = 1000;
const MAX_ATTEMPTS = 5;
/** As the AWS SDKs' socket timeouts: a store silent this long is taken for a lost connection. */
const IDLE_TIMEOUT_MS = 60_000;
const RETRY_BASE_MS = 100;
const CONNECTIONS = 16;

export class ObjectStore {
  private readonly agent: HttpAgent;
  private readonly send: typeof httpRequest;
  /** Plain-HTTP endpoints: GETs into a given buffer read their bodies straight into it. */
  private bodyInto: BodyIntoClient | undefined;
  private readonly signers = new Map<string, SigV4Signer>();

  private constructor(private readonly endpoint: URL, private readonly region: string, private readonly credentials: CredentialSource, readonly bucket: string,
    private readonly idleTimeoutMs: number) {
    const secure = endpoint.protocol === 'https:';
    this.agent = secure ? new HttpsAgent({ keepAlive: true, maxSockets: CONNECTIONS }) : new HttpAgent({ keepAlive: true, maxSockets: CONNECTIONS });
    this.send = secure ? httpsRequest : httpRequest;
    this.bodyInto = secure ? undefined : new BodyIntoClient(endpoint.hostname.replace(/^\[(.*)\]$/, '$1'), Number(endpoint.port || 80), idleTimeoutMs);
  }

  static connect(options: StoreOptions): ObjectStore {
    const region = options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1';
    const endpoint = new URL(options.endpoint ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL ?? `https://s3.${region}.amazonaws.com`);
    return new ObjectStore(endpoint, region, credentialSource(options.profile, region), options.bucket, options.idleTimeoutMs ?? IDLE_TIMEOUT_MS);
  }

  /** Stores `body`, or its parts back to back (a pack's blobs are sent without joining them). */
  async put(key: string, body: Buffer | Buffer[], options: PutOptions = {}): Promise<void> {
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (options.retainUntil) {
      headers['x-amz-object-lock-mode'] = 'COMPLIANCE';
      headers['x-amz-object-lock-retain-until-date'] = options.retainUntil.toISOString();
      // S3 requires an integrity header on uploads that set a retention period.
      const md5 = createHash('md5');
      for (const part of [body].flat()) md5.update(part);
      headers['content-md5'] = md5.digest('base64');
    }
    const response = await this.request({ method: 'PUT', key, headers, body });
    await expectOk(response, key, this.bucket);
    response.message.resume();
  }

  /** The object, or `range` of it; read into the start of `into` if given and large enough. */
  async get(key: string, range?: { start: number; end: number }, into?: Buffer): Promise<Buffer> {
    return this.getBytes(key, range ? `bytes=${range.start}-${range.end - 1}` : undefined, into);
  }

  /** The last `length` bytes of an object (fewer if it is shorter). */
  async getTail(key: string, length: number): Promise<Buffer> {
    return this.getBytes(key, `bytes=-${length}`);
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
      const query: Query = [['list-type', '2'], ['prefix', prefix]];
      if (token) query.push(['continuation-token', token]);
      const response = await this.request({ method: 'GET', query });
      await expectOk(response, prefix, this.bucket);
      const xml = (await readAll(response.message)).toString('utf8');
      for (const item of xmlElements(xml, 'Contents')) {
        yield { key: xmlText(item, 'Key') ?? '', size: Number(xmlText(item, 'Size') ?? 0), lastModified: new Date(xmlText(item, 'LastModified') ?? 0) };
      }
      token = xmlText(xml, 'IsTruncated') === 'true' ? xmlText(xml, 'NextContinuationToken') : undefined;
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
      const body = Buffer.from(`<Delete><Quiet>true</Quiet>${batch.map((k) => `<Object><Key>${escapeXml(k)}</Key></Object>`).join('')}</Delete>`);
      const headers = { 'content-type': 'application/xml', 'content-md5': createHash('md5').update(body).digest('base64') };
      const response = await this.request({ method: 'POST', query: [['delete', '']], headers, body });
      await expectOk(response, batch[0]!, this.bucket);
      const xml = (await readAll(response.message)).toString('utf8');
      for (const error of xmlElements(xml, 'Error')) refused.push(xmlText(error, 'Key') ?? '');
    }
    return refused;
  }

  destroy(): void {
    this.agent.destroy();
    this.bodyInto?.destroy();
  }

  private async getBytes(key: string, range: string | undefined, into?: Buffer): Promise<Buffer> {
    if (into && this.bodyInto) {
      try {
        return await this.getInto(key, range, into, this.bodyInto);
      } catch (err) {
        if (!(err instanceof ChunkedBodyError)) throw err;
        // A store that streams its answers chunked: node:http from now on.
        this.bodyInto = undefined;
      }
    }
    const response = await this.request({ method: 'GET', key, headers: range ? { range } : {} });
    await expectOk(response, key, this.bucket);
    if (range && response.status !== 206) throw new StoreError('Unavailable', `${this.bucket}/${key}: the store ignored the Range header`);
    const length = response.headers['content-length'];
    return length === undefined ? readAll(response.message) : readBody(response.message, Number(length), into);
  }

  /** A GET whose body is read straight into `into` (see body-into.ts), retried like request(). */
  private async getInto(key: string, range: string | undefined, into: Buffer, client: BodyIntoClient): Promise<Buffer> {
    const response = await this.withRetries({ method: 'GET', key }, async () => {
      const { path, headers } = await this.signed({ method: 'GET', key, headers: range ? { range } : {} });
      return client.get(path, headers, into);
    }, () => undefined);
    if (response.status < 200 || response.status >= 300) throw errorOf(response.status, response.body.toString('utf8'), key, this.bucket);
    if (range && response.status !== 206) throw new StoreError('Unavailable', `${this.bucket}/${key}: the store ignored the Range header`);
    return response.body;
  }

  /** Sends a signed request, retrying network failures and 5xx/throttling answers with backoff. */
  private request(call: S3Request): Promise<S3Response> {
    return this.withRetries(call, () => this.attempt(call), (response) => response.message.resume());
  }

  /** Runs `attempt` until it answers with a status not worth retrying; `discard` drops a retried answer. */
  private async withRetries<R extends { status: number }>(call: S3Request, attempt: () => Promise<R>, discard: (response: R) => void): Promise<R> {
    for (let n = 1; ; n++) {
      try {
        const response = await attempt();
        if (!retryable(response.status) || n === MAX_ATTEMPTS) return response;
        discard(response); // drained, so the connection is reused
      } catch (err) {
        if (err instanceof StoreError || err instanceof ChunkedBodyError || n === MAX_ATTEMPTS) throw err instanceof ChunkedBodyError ? err : toStoreError(err, `${this.bucket}/${call.key ?? ''}`);
      }
      await new Promise((resolve) => setTimeout(resolve, RETRY_BASE_MS * 2 ** (n - 1) * (0.5 + Math.random())));
    }
  }

  /** The request's path (with its query) and its signed headers. */
  private async signed(call: S3Request): Promise<{ path: string; headers: Record<string, string> }> {
    const credentials = await this.credentials();
    const path = encodePath(`${this.endpoint.pathname.replace(/\/$/, '')}/${this.bucket}${call.key === undefined ? '' : `/${call.key}`}`);
    const parts = call.body === undefined ? [] : [call.body].flat();
    const headers: Record<string, string> = { ...call.headers, host: this.endpoint.host, 'content-length': String(parts.reduce((sum, p) => sum + p.length, 0)) };
    if (credentials.sessionToken) headers['x-amz-security-token'] = credentials.sessionToken;
    const signed = this.signer(credentials).sign({ method: call.method, path, query: call.query, headers });
    const query = canonicalQuery(call.query);
    return { path: query ? `${path}?${query}` : path, headers: signed };
  }

  private async attempt(call: S3Request): Promise<S3Response> {
    const { path, headers } = await this.signed(call);
    const parts = call.body === undefined ? [] : [call.body].flat();
    return new Promise((resolve, reject) => {
      const req = this.send({
        agent: this.agent, method: call.method, host: this.endpoint.hostname, port: this.endpoint.port || undefined, path, headers,
      }, (message) => resolve({ status: message.statusCode ?? 0, headers: message.headers, message }));
      req.on('error', reject);
      // The socket's timeout, so it also covers reading the answer's body.
      req.setTimeout(this.idleTimeoutMs, () => req.destroy(new Error(`the store sent nothing for ${this.idleTimeoutMs / 1000} s`)));
      // Corked, the parts leave in one writev.
      req.cork();
      for (const part of parts) req.write(part);
      req.end();
    });
  }

  private signer(credentials: Credentials): SigV4Signer {
    const key = `${credentials.accessKeyId}\n${credentials.secretAccessKey}`;
    let signer = this.signers.get(key);
    if (!signer) {
      signer = new SigV4Signer(credentials, this.region);
      this.signers.set(key, signer);
    }
    return signer;
  }
}

/** Keys from the environment when given there (no SDK loaded), else the SDK's credential chain. */
function credentialSource(profile: string | undefined, region: string): CredentialSource {
  const { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey, AWS_SESSION_TOKEN: sessionToken } = process.env;
  if (!profile && accessKeyId && secretAccessKey) {
    const fixed = Promise.resolve({ accessKeyId, secretAccessKey, sessionToken });
    return () => fixed;
  }
  let chain: Promise<() => Promise<SessionCredentials>> | undefined;
  return async () => {
    chain ??= import('@aws-sdk/client-s3').then(({ S3Client }) => {
      const client = new S3Client({ region, ...(profile ? { profile } : {}) });
      return client.config.credentials as () => Promise<SessionCredentials>;
    });
    try {
      return await (await chain)();
    } catch (err) {
      throw new StoreError('Unauthenticated', `no AWS credentials${profile ? ` in profile ${profile}` : ''}: ${(err as Error).message}`);
    }
  };
}

function toStoreError(err: unknown, what: string): StoreError {
  return err instanceof StoreError ? err : new StoreError('Unavailable', `${what}: ${err instanceof Error ? err.message : String(err)}`);
}

function retryable(status: number): boolean {
  return status === 500 || status === 502 || status === 503 || status === 504 || status === 429;
}

async function expectOk(response: S3Response, key: string, bucket: string): Promise<void> {
  if (response.status >= 200 && response.status < 300) return;
  throw errorOf(response.status, (await readAll(response.message)).toString('utf8'), key, bucket);
}

/** The store's answer as a StoreError (the body's S3 error code decides, else the status). */
function errorOf(status: number, xml: string, key: string, bucket: string): StoreError {
  const code = xmlText(xml, 'Code') ?? `HTTP ${status}`;
  const what = `${bucket}/${key}`;
  if (code === 'NoSuchBucket') return new StoreError('InvalidArgument', `bucket ${bucket} does not exist`);
  if (code === 'NoSuchKey' || status === 404) return new StoreError('NotFound', `${what}: not found`);
  if (status === 403) return new StoreError('Unauthenticated', `${what}: access denied (${code})`);
  return new StoreError('Unavailable', `${what}: ${code}: ${xmlText(xml, 'Message') ?? ''}`);
}

async function readAll(message: IncomingMessage): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for await (const piece of message) pieces.push(piece as Buffer);
  return Buffer.concat(pieces);
}

/**
 * Reads a response body of known length straight into one buffer (`into` when it is large
 * enough, else one of its own that can be handed to a worker thread without a copy).
 */
async function readBody(message: IncomingMessage, length: number, into?: Buffer): Promise<Buffer> {
  const out = into && into.length >= length ? into.subarray(0, length) : Buffer.from(new ArrayBuffer(length));
  let filled = 0;
  for await (const piece of message) {
    const bytes = piece as Buffer;
    if (filled + bytes.length > length) throw new StoreError('Unavailable', `response body longer than its Content-Length ${length}`);
    // Buffer.copy is a memcpy; TypedArray.set into shared memory copied at a third of its speed.
    filled += bytes.copy(out, filled);
  }
  if (filled !== length) throw new StoreError('Unavailable', `response body ended after ${filled} of ${length} bytes`);
  return out;
}

// ------------------------------------------------------------------ the little XML S3 answers hold

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function unescapeXml(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (_, name: string) =>
    name.startsWith('#x') ? String.fromCodePoint(parseInt(name.slice(2), 16)) : name.startsWith('#') ? String.fromCodePoint(Number(name.slice(1))) : ENTITIES[name]!);
}

function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&${Object.keys(ENTITIES).find((name) => ENTITIES[name] === c)};`);
}

/** The bodies of every `<tag>…</tag>` in `xml`. */
function xmlElements(xml: string, tag: string): string[] {
  return [...xml.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))].map((m) => m[1]!);
}

/** The text of the first `<tag>` in `xml`, unescaped. */
function xmlText(xml: string, tag: string): string | undefined {
  const match = new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(xml);
  return match ? unescapeXml(match[1]!) : undefined;
}
