// AWS Signature Version 2 (HMAC-SHA1): still produced by some SDK configurations, notably
// boto3 presigned URLs with signature_version='s3'. Header form `Authorization: AWS id:sig`,
// query form `?AWSAccessKeyId=&Expires=&Signature=`.
// https://docs.aws.amazon.com/AmazonS3/latest/userguide/RESTAuthentication.html
import { createHmac } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { header } from '../context.js';
import { S3Error } from '../errors.js';
import type { Address } from '../router.js';
import { signaturesEqual } from './sigv4.js';

/** Query parameters that are part of the signed resource. */
const SIGNED_SUBRESOURCES = new Set([
  'acl', 'accelerate', 'analytics', 'cors', 'delete', 'inventory', 'legal-hold', 'lifecycle', 'location', 'logging',
  'metrics', 'notification', 'object-lock', 'partNumber', 'policy', 'replication', 'requestPayment', 'response-cache-control',
  'response-content-disposition', 'response-content-encoding', 'response-content-language', 'response-content-type',
  'response-expires', 'restore', 'retention', 'select', 'select-type', 'tagging', 'torrent', 'uploadId', 'uploads',
  'versionId', 'versioning', 'versions', 'website', 'attributes',
]);

export interface SignatureV2 {
  accessKeyId: string;
  signature: string;
  /** Query form only: epoch seconds after which the URL is void. */
  expiresEpochSeconds?: number;
}

export function parseV2Header(value: string): SignatureV2 {
  const m = /^AWS ([^:]+):(.+)$/.exec(value.trim());
  if (!m) throw new S3Error('AuthorizationHeaderMalformed');
  return { accessKeyId: m[1]!, signature: m[2]! };
}

export function parseV2Query(query: URLSearchParams): SignatureV2 {
  const accessKeyId = query.get('AWSAccessKeyId');
  const signature = query.get('Signature');
  const expires = query.get('Expires');
  if (!accessKeyId || !signature || !expires || !/^\d+$/.test(expires)) {
    throw new S3Error('AccessDenied', { message: 'Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters' });
  }
  return { accessKeyId, signature, expiresEpochSeconds: Number(expires) };
}

function canonicalAmzHeaders(request: IncomingMessage): string {
  const values = new Map<string, string[]>();
  const raw = request.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (!name.startsWith('x-amz-')) continue;
    values.set(name, [...(values.get(name) ?? []), raw[i + 1]!.trim().replace(/\s*\r?\n\s*/g, ' ')]);
  }
  return [...values.keys()].sort().map((name) => `${name}:${values.get(name)!.join(',')}\n`).join('');
}

function canonicalResource(address: Address): string {
  const path = address.virtualHosted ? `/${address.bucket}${address.rawPath}` : address.rawPath;
  const subresources = [...address.query]
    .filter(([name]) => SIGNED_SUBRESOURCES.has(name))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]) => (value === '' ? name : `${name}=${value}`));
  return subresources.length ? `${path}?${subresources.join('&')}` : path;
}

export function stringToSignV2(request: IncomingMessage, address: Address, sig: SignatureV2): string {
  const dateLine = sig.expiresEpochSeconds !== undefined
    ? String(sig.expiresEpochSeconds)
    : header(request, 'x-amz-date') !== undefined ? '' : header(request, 'date') ?? '';
  return [
    request.method ?? 'GET',
    header(request, 'content-md5') ?? '',
    header(request, 'content-type') ?? '',
    dateLine,
    `${canonicalAmzHeaders(request)}${canonicalResource(address)}`,
  ].join('\n');
}

export function verifyV2Signature(request: IncomingMessage, address: Address, sig: SignatureV2, secret: string): void {
  const expected = createHmac('sha1', secret).update(Buffer.from(stringToSignV2(request, address, sig), 'utf8')).digest('base64');
  if (!signaturesEqual(expected, sig.signature)) {
    throw new S3Error('SignatureDoesNotMatch', { fields: { AWSAccessKeyId: sig.accessKeyId } });
  }
}
