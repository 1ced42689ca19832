// Test helper: hand-made S3 requests signed by the AWS SDK's own SigV4 signer (@smithy/signature-v4),
// for what high-level clients will not send (wrong digests, odd headers, raw XML bodies).
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { SignatureV4 } from '@smithy/signature-v4';
import type { Hash as SmithyHash, SourceData } from '@smithy/types';

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

class NodeSha256 implements SmithyHash {
  private readonly hash: Hash | Hmac;
  constructor(secret?: SourceData) {
    this.hash = secret ? createHmac('sha256', toBuffer(secret)) : createHash('sha256');
  }
  update(data: SourceData): void { this.hash.update(toBuffer(data)); }
  async digest(): Promise<Uint8Array> { return new Uint8Array(this.hash.digest()); }
  reset(): void { /* one digest per instance */ }
}

function toBuffer(data: SourceData): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

export const sha256Hex = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export function send(endpoint: string, options: { method: string; path: string; headers: Record<string, string>; body?: Buffer | string }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const setHost = !Object.keys(options.headers).some((h) => h.toLowerCase() === 'host');
    const requester = endpoint.startsWith('https:') ? httpsRequest : httpRequest;
    // The path goes separately: a URL string would have its dot segments resolved.
    const req = requester(endpoint, { path: options.path, method: options.method, headers: options.headers, setHost, rejectUnauthorized: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString() }));
    });
    req.on('error', reject);
    // Always bytes: with a string first chunk, node writes the header block in that string's
    // encoding (UTF-8), which would re-encode raw header bytes.
    req.end(typeof options.body === 'string' ? Buffer.from(options.body) : options.body);
  });
}

export const errorCode = (reply: Reply) => /<Code>([^<]+)<\/Code>/.exec(reply.body)?.[1];

export function signer(credentials: Credentials) {
  return new SignatureV4({
    service: 's3', region: 'us-east-1', sha256: NodeSha256, uriEscapePath: false,
    credentials: { accessKeyId: credentials.accessKeyId, secretAccessKey: credentials.secretAccessKey },
  });
}

/** Sign `path` (already percent-encoded, with its query) as the SDK would; returns headers to send. */
export async function signedRequest(
  endpoint: string,
  credentials: Credentials,
  options: { method: string; path: string; body?: string | Buffer; payloadHash?: string; signingDate?: Date; headers?: Record<string, string> },
) {
  const url = new URL(endpoint);
  const queryStart = options.path.indexOf('?');
  const query: Record<string, string> = {};
  new URLSearchParams(queryStart < 0 ? '' : options.path.slice(queryStart + 1)).forEach((v, k) => { query[k] = v; });
  const signed = await signer(credentials).sign({
    method: options.method, protocol: url.protocol, hostname: url.hostname, port: Number(url.port),
    path: queryStart < 0 ? options.path : options.path.slice(0, queryStart), query,
    headers: { host: url.host, 'x-amz-content-sha256': options.payloadHash ?? sha256Hex(options.body ?? ''), ...options.headers },
  }, { signingDate: options.signingDate });
  return { headers: signed.headers as Record<string, string>, path: options.path };
}

/** Sign and send in one step. */
export async function signedSend(
  endpoint: string,
  credentials: Credentials,
  options: { method: string; path: string; body?: string | Buffer; payloadHash?: string; headers?: Record<string, string> },
): Promise<Reply> {
  const signed = await signedRequest(endpoint, credentials, options);
  return send(endpoint, { method: options.method, path: signed.path, headers: signed.headers, body: options.body });
}
