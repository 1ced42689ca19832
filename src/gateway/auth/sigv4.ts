// AWS Signature Version 4 as S3 uses it: the Authorization header and presigned query forms,
// and the per-chunk / trailer signatures of aws-chunked bodies.
// https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-authenticating-requests.html
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { canonicalQuery as canonicalQueryOf, deriveSigningKey, encodePath, sha256Hex } from '../../common/sigv4-signer.js';
import { S3Error } from '../errors.js';

export const ALGORITHM = 'AWS4-HMAC-SHA256';
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

export interface Credential {
  accessKeyId: string;
  date: string;    // YYYYMMDD
  region: string;
  service: string;
  /** date/region/service/aws4_request */
  scope: string;
}

/** The signature parts of a SigV4 request, from the header or the query string. */
export interface SignatureV4 {
  credential: Credential;
  signedHeaders: string[];
  signature: string;
  /** ISO 8601 basic: 20130524T000000Z */
  amzDate: string;
  /** Presigned URLs only: validity in seconds from amzDate. */
  expiresSeconds?: number;
}

export { sha256Hex };

const signingKeys = new Map<string, Buffer>();

/** kSigning = HMAC chain over date, region, service; cached since it changes once a day per key. */
export function signingKey(secret: string, credential: Credential): Buffer {
  const cacheKey = `${secret}\n${credential.scope}`;
  let key = signingKeys.get(cacheKey);
  if (!key) {
    key = deriveSigningKey(secret, credential.date, credential.region, credential.service);
    if (signingKeys.size > 1000) signingKeys.clear();
    signingKeys.set(cacheKey, key);
  }
  return key;
}

function parseCredential(value: string, malformed: () => S3Error): Credential {
  const parts = value.split('/');
  if (parts.length !== 5 || parts[4] !== 'aws4_request' || !/^\d{8}$/.test(parts[1]!)) throw malformed();
  const [accessKeyId, date, region, service] = parts as [string, string, string, string];
  if (service !== 's3') throw malformed();
  return { accessKeyId, date, region, service, scope: parts.slice(1).join('/') };
}

/** `AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=hex` */
export function parseAuthorizationHeader(value: string, amzDate: string | undefined): SignatureV4 {
  const malformed = () => new S3Error('AuthorizationHeaderMalformed');
  const fields = new Map<string, string>();
  for (const part of value.slice(ALGORITHM.length).split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const credential = fields.get('Credential');
  const signedHeaders = fields.get('SignedHeaders');
  const signature = fields.get('Signature');
  if (!credential || !signedHeaders || !signature) throw malformed();
  if (!amzDate) throw new S3Error('AccessDenied', { message: 'AWS authentication requires a valid Date or x-amz-date header' });
  return { credential: parseCredential(credential, malformed), signedHeaders: signedHeaders.split(';'), signature, amzDate };
}

export function parsePresignedQuery(query: URLSearchParams): SignatureV4 {
  const malformed = () => new S3Error('AuthorizationQueryParametersError');
  const credential = query.get('X-Amz-Credential');
  const signedHeaders = query.get('X-Amz-SignedHeaders');
  const signature = query.get('X-Amz-Signature');
  const amzDate = query.get('X-Amz-Date');
  const expires = query.get('X-Amz-Expires');
  if (query.get('X-Amz-Algorithm') !== ALGORITHM || !credential || !signedHeaders || !signature || !amzDate || !expires) throw malformed();
  const expiresSeconds = Number(expires);
  if (!/^\d+$/.test(expires) || expiresSeconds < 1 || expiresSeconds > 604800) {
    throw new S3Error('AuthorizationQueryParametersError', { message: 'X-Amz-Expires must be between 1 and 604800 seconds' });
  }
  return { credential: parseCredential(credential, malformed), signedHeaders: signedHeaders.split(';'), signature, amzDate, expiresSeconds };
}

/** 20130524T000000Z -> epoch ms; NaN when malformed. */
export function parseAmzDate(value: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!m) return NaN;
  return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
}

export function canonicalQuery(query: URLSearchParams, omit?: string): string {
  return canonicalQueryOf([...query].filter(([name]) => name !== omit));
}

/** Signed headers as `name:value\n` lines: values trimmed, inner runs of spaces folded, repeats joined by ','. */
export function canonicalHeaders(request: IncomingMessage, signedHeaders: readonly string[]): string {
  const values = new Map<string, string[]>();
  const raw = request.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const list = values.get(name) ?? [];
    list.push(raw[i + 1]!.trim().replace(/\s+/g, ' '));
    values.set(name, list);
  }
  return signedHeaders.map((name) => `${name}:${(values.get(name) ?? []).join(',')}\n`).join('');
}

/** Candidate canonical URIs: S3 encodes each path byte once; some clients sign the path as sent. */
export function canonicalUris(rawPath: string): string[] {
  let decoded: string;
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    return [rawPath];
  }
  const encoded = encodePath(decoded);
  return encoded === rawPath ? [encoded] : [encoded, rawPath];
}

export function stringToSign(amzDate: string, scope: string, canonicalRequestHash: string): string {
  return `${ALGORITHM}\n${amzDate}\n${scope}\n${canonicalRequestHash}`;
}

export function signHex(key: Buffer, data: string): string {
  return createHmac('sha256', key).update(data).digest('hex');
}

export function signaturesEqual(expectedHex: string, givenHex: string): boolean {
  const expected = Buffer.from(expectedHex, 'latin1');
  const given = Buffer.from(givenHex, 'latin1');
  return expected.length === given.length && timingSafeEqual(expected, given);
}

/**
 * Verify a SigV4 request signature; throws SignatureDoesNotMatch. Header values are raw bytes
 * (latin1 strings). Clients hash the canonical request as UTF-8 of the string they meant, so
 * that is tried first, then the raw bytes (clients that send UTF-8 header bytes).
 */
export function verifyRequestSignature(
  request: IncomingMessage,
  rawPath: string,
  query: URLSearchParams,
  sig: SignatureV4,
  key: Buffer,
  payloadHash: string,
): void {
  const presigned = sig.expiresSeconds !== undefined;
  const queryPart = canonicalQuery(query, presigned ? 'X-Amz-Signature' : undefined);
  const headersPart = canonicalHeaders(request, sig.signedHeaders);
  const tail = `${queryPart}\n${headersPart}\n${sig.signedHeaders.join(';')}\n${payloadHash}`;
  const method = request.method ?? 'GET';
  const encodings: BufferEncoding[] = /[^\x00-\x7f]/.test(headersPart) ? ['utf8', 'latin1'] : ['utf8'];
  for (const uri of canonicalUris(rawPath)) {
    const canonicalRequest = `${method}\n${uri}\n${tail}`;
    for (const encoding of encodings) {
      const hash = sha256Hex(Buffer.from(canonicalRequest, encoding));
      if (signaturesEqual(signHex(key, stringToSign(sig.amzDate, sig.credential.scope, hash)), sig.signature)) return;
    }
  }
  throw new S3Error('SignatureDoesNotMatch', { fields: { AWSAccessKeyId: sig.credential.accessKeyId } });
}

/** The string each aws-chunked data chunk signs (chained through the previous signature). */
export function chunkStringToSign(amzDate: string, scope: string, previousSignature: string, chunkHashHex: string): string {
  return `AWS4-HMAC-SHA256-PAYLOAD\n${amzDate}\n${scope}\n${previousSignature}\n${EMPTY_SHA256}\n${chunkHashHex}`;
}

/** The string the trailing headers of an aws-chunked body sign. */
export function trailerStringToSign(amzDate: string, scope: string, previousSignature: string, trailerHashHex: string): string {
  return `AWS4-HMAC-SHA256-TRAILER\n${amzDate}\n${scope}\n${previousSignature}\n${trailerHashHex}`;
}
