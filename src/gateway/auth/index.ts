// Authentication: who sent this request, and how is its payload protected?
// SigV4 (header or presigned query), SigV2 (header or query), or anonymous.
import type { IncomingMessage } from 'node:http';
import type { PayloadPlan } from '../body.js';
import { header } from '../context.js';
import { S3Error } from '../errors.js';
import type { Address } from '../router.js';
import { ANONYMOUS, type AccessKey, type AccessKeyProvider, type Principal } from './keys.js';
import { parseV2Header, parseV2Query, verifyV2Signature } from './sigv2.js';
import {
  ALGORITHM, parseAmzDate, parseAuthorizationHeader, parsePresignedQuery, type SignatureV4, signingKey,
  verifyRequestSignature,
} from './sigv4.js';

export const MAX_CLOCK_SKEW_MS = 15 * 60_000;

export interface Authentication {
  principal: Principal;
  payload: PayloadPlan;
}

const STREAMING_SIGNED = new Set(['STREAMING-AWS4-HMAC-SHA256-PAYLOAD', 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER']);
const STREAMING_UNSIGNED = 'STREAMING-UNSIGNED-PAYLOAD-TRAILER';

export async function authenticate(
  request: IncomingMessage,
  address: Address,
  keys: AccessKeyProvider,
  now = Date.now(),
): Promise<Authentication> {
  const authorization = header(request, 'authorization');
  if (authorization?.startsWith(`${ALGORITHM} `)) {
    return authenticateV4(request, address, keys, parseAuthorizationHeader(authorization, requestDate(request)), now);
  }
  if (address.query.get('X-Amz-Algorithm') !== null) {
    return authenticateV4(request, address, keys, parsePresignedQuery(address.query), now);
  }
  if (authorization?.startsWith('AWS ')) return authenticateV2(request, address, keys, false, now);
  if (address.query.get('AWSAccessKeyId') !== null) return authenticateV2(request, address, keys, true, now);
  if (authorization !== undefined) {
    throw new S3Error('InvalidArgument', { message: 'Unsupported Authorization Type', fields: { ArgumentName: 'Authorization', ArgumentValue: authorization.split(' ')[0] ?? '' } });
  }
  return { principal: ANONYMOUS, payload: payloadPlanOf(request, undefined) };
}

/** x-amz-date (ISO basic) or Date (RFC 1123), as an amz-date string. */
function requestDate(request: IncomingMessage): string | undefined {
  const amzDate = header(request, 'x-amz-date');
  if (amzDate !== undefined) return amzDate;
  const date = header(request, 'date');
  if (date === undefined) return undefined;
  const ms = Date.parse(date);
  return Number.isNaN(ms) ? undefined : new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

async function lookupKey(keys: AccessKeyProvider, accessKeyId: string): Promise<AccessKey> {
  const key = await keys.lookup(accessKeyId);
  if (!key) throw new S3Error('InvalidAccessKeyId', { fields: { AWSAccessKeyId: accessKeyId } });
  return key;
}

function checkSkew(requestMs: number, now: number): void {
  if (Math.abs(now - requestMs) > MAX_CLOCK_SKEW_MS) {
    throw new S3Error('RequestTimeTooSkewed', {
      fields: { RequestTime: new Date(requestMs).toISOString(), ServerTime: new Date(now).toISOString(), MaxAllowedSkewMilliseconds: MAX_CLOCK_SKEW_MS },
    });
  }
}

async function authenticateV4(
  request: IncomingMessage,
  address: Address,
  keys: AccessKeyProvider,
  sig: SignatureV4,
  now: number,
): Promise<Authentication> {
  const requestMs = parseAmzDate(sig.amzDate);
  if (Number.isNaN(requestMs)) throw new S3Error('AccessDenied', { message: 'X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd\'T\'HHmmss\'Z\'"' });
  if (!sig.amzDate.startsWith(sig.credential.date)) {
    throw new S3Error('SignatureDoesNotMatch', { message: 'The credential scope date does not match the request date.' });
  }
  if (sig.expiresSeconds === undefined) {
    checkSkew(requestMs, now);
  } else {
    if (requestMs - now > MAX_CLOCK_SKEW_MS) throw new S3Error('AccessDenied', { message: 'Request is not valid yet' });
    if (now > requestMs + sig.expiresSeconds * 1000) {
      throw new S3Error('AccessDenied', { message: 'Request has expired', fields: { 'X-Amz-Expires': sig.expiresSeconds, Expires: new Date(requestMs + sig.expiresSeconds * 1000).toISOString(), ServerTime: new Date(now).toISOString() } });
    }
  }
  if (!sig.signedHeaders.includes('host')) throw new S3Error('AccessDenied', { message: 'The host header must be signed.' });

  const key = await lookupKey(keys, sig.credential.accessKeyId);
  const derived = signingKey(key.secretAccessKey, sig.credential);
  const contentSha256 = header(request, 'x-amz-content-sha256');
  const payloadHash = sig.expiresSeconds !== undefined
    ? address.query.get('X-Amz-Content-Sha256') ?? 'UNSIGNED-PAYLOAD'
    : contentSha256;
  if (payloadHash === undefined) {
    throw new S3Error('InvalidRequest', { message: 'Missing required header for this request: x-amz-content-sha256' });
  }
  verifyRequestSignature(request, address.rawPath, address.query, sig, derived, payloadHash);
  const signing = { key: derived, amzDate: sig.amzDate, scope: sig.credential.scope, seedSignature: sig.signature, accessKeyId: key.accessKeyId };
  return { principal: key.principal, payload: payloadPlanOf(request, payloadHash, signing) };
}

/** What x-amz-content-sha256 promises about the body. */
function payloadPlanOf(request: IncomingMessage, payloadHash: string | undefined, signing?: PayloadSigning): PayloadPlan {
  const declared = payloadHash ?? header(request, 'x-amz-content-sha256');
  if (declared === undefined || declared === 'UNSIGNED-PAYLOAD') return { mode: 'unsigned' };
  if (/^[0-9a-fA-F]{64}$/.test(declared)) return { mode: 'sha256', expectedHex: declared };
  if (declared === STREAMING_UNSIGNED) return { mode: 'aws-chunked' };
  if (STREAMING_SIGNED.has(declared)) {
    if (!signing) throw new S3Error('AccessDenied', { message: 'A signed streaming payload requires SigV4 header authentication.' });
    return { mode: 'aws-chunked', signing };
  }
  if (declared.startsWith('STREAMING-AWS4-ECDSA')) throw new S3Error('NotImplemented', { message: 'SigV4a streaming signatures are not supported.' });
  throw new S3Error('InvalidArgument', { message: 'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-* or a SHA-256 hex digest', fields: { ArgumentName: 'x-amz-content-sha256', ArgumentValue: declared } });
}

type PayloadSigning = NonNullable<Extract<PayloadPlan, { mode: 'aws-chunked' }>['signing']>;

async function authenticateV2(
  request: IncomingMessage,
  address: Address,
  keys: AccessKeyProvider,
  presigned: boolean,
  now: number,
): Promise<Authentication> {
  const sig = presigned ? parseV2Query(address.query) : parseV2Header(header(request, 'authorization')!);
  if (sig.expiresEpochSeconds !== undefined) {
    if (now > sig.expiresEpochSeconds * 1000) throw new S3Error('AccessDenied', { message: 'Request has expired' });
  } else {
    const date = header(request, 'x-amz-date') ?? header(request, 'date');
    const requestMs = date === undefined ? NaN : Date.parse(date);
    if (Number.isNaN(requestMs)) throw new S3Error('AccessDenied', { message: 'AWS authentication requires a valid Date or x-amz-date header' });
    checkSkew(requestMs, now);
  }
  const key = await lookupKey(keys, sig.accessKeyId);
  verifyV2Signature(request, address, sig, key.secretAccessKey);
  return { principal: key.principal, payload: payloadPlanOf(request, undefined) };
}
