// A lean AWS Signature Version 4 signer for S3 requests (the backup agent's store client and the
// bench's load generator). The AWS SDK spends 1-3 ms of CPU per request; this one does two HMACs
// and one SHA-256 per request by caching the derived signing key per (day, region) and sending
// bodies as UNSIGNED-PAYLOAD.
import { createHash, createHmac } from 'node:crypto';

export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface SignableRequest {
  method: string;
  /** The path as sent on the wire: already URI-encoded (see encodePath). */
  path: string;
  /** Query parameters, unencoded; a parameter without a value is ''. */
  query?: ReadonlyArray<readonly [string, string]>;
  /** Header names in lower case. `host` must be present. */
  headers: Record<string, string>;
  /** Hex SHA-256 of the body, or UNSIGNED-PAYLOAD (the default). */
  payloadHash?: string;
}

/** RFC 3986 encoding as SigV4 wants it: everything but A-Z a-z 0-9 - _ . ~ is %XX. */
export function uriEncode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Encodes an S3 path (`/bucket/key`) segment by segment, keeping the slashes. */
export function encodePath(path: string): string {
  return path.split('/').map(uriEncode).join('/');
}

/** The canonical (sorted, encoded) query string; also what goes on the wire. */
export function canonicalQuery(query: ReadonlyArray<readonly [string, string]> = []): string {
  if (query.length === 0) return '';
  return query
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

/** `20260102T030405Z` */
export function amzDate(now: Date): string {
  return now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

const hmac = (key: Buffer | string, data: string): Buffer => createHmac('sha256', key).update(data).digest();

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** kSigning: the HMAC chain over the day (yyyymmdd), region and service. */
export function deriveSigningKey(secret: string, day: string, region: string, service: string): Buffer {
  return hmac(hmac(hmac(hmac(`AWS4${secret}`, day), region), service), 'aws4_request');
}

export class SigV4Signer {
  private cachedScopeDay = '';
  private cachedKey: Buffer = Buffer.alloc(0);

  constructor(
    private readonly credentials: Credentials,
    private readonly region = 'us-east-1',
    private readonly service = 's3',
  ) {}

  /** Returns the headers to send: the request's own plus x-amz-date, x-amz-content-sha256, authorization. */
  sign(request: SignableRequest, now: Date = new Date()): Record<string, string> {
    const date = amzDate(now);
    const day = date.slice(0, 8);
    const payloadHash = request.payloadHash ?? UNSIGNED_PAYLOAD;
    const headers: Record<string, string> = {
      ...request.headers,
      'x-amz-date': date,
      'x-amz-content-sha256': payloadHash,
    };
    const names = Object.keys(headers).sort();
    const canonicalHeaders = names.map((n) => `${n}:${String(headers[n]).trim().replace(/\s+/g, ' ')}\n`).join('');
    const signedHeaders = names.join(';');
    const canonicalRequest = [
      request.method, request.path, canonicalQuery(request.query), canonicalHeaders, signedHeaders, payloadHash,
    ].join('\n');
    const scope = `${day}/${this.region}/${this.service}/aws4_request`;
    const stringToSign = `AWS4-HMAC-SHA256\n${date}\n${scope}\n${sha256Hex(canonicalRequest)}`;
    const signature = createHmac('sha256', this.signingKey(day)).update(stringToSign).digest('hex');
    headers['authorization'] =
      `AWS4-HMAC-SHA256 Credential=${this.credentials.accessKeyId}/${scope}, ` +
      `SignedHeaders=${signedHeaders}, Signature=${signature}`;
    return headers;
  }

  private signingKey(day: string): Buffer {
    if (day !== this.cachedScopeDay) {
      this.cachedKey = deriveSigningKey(this.credentials.secretAccessKey, day, this.region, this.service);
      this.cachedScopeDay = day;
    }
    return this.cachedKey;
  }
}
