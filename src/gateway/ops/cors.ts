// Bucket CORS: Put/Get/DeleteBucketCors, the OPTIONS preflight, and the Access-Control-* headers
// of actual cross-origin requests (`corsHeadersFor`, applied by the server to every request
// that carries an Origin header).
import type { BucketRecord } from '../bucket-record.js';
import { deleteBucketConfiguration, header, requireBucket, type S3Context, sendEmpty, sendXml } from '../context.js';
import { S3Error } from '../errors.js';
import type { OperationSpec } from '../router.js';
import { type ParsedXml, xmlChild, xmlChildren, xmlText } from '../xml.js';
import { wildcardMatch } from '../policy.js';

export interface CorsRule {
  id?: string;
  allowedOrigins: string[];
  allowedMethods: string[];
  allowedHeaders: string[];
  exposeHeaders: string[];
  maxAgeSeconds?: number;
}

const CORS_METHODS = new Set(['GET', 'PUT', 'HEAD', 'POST', 'DELETE']);
const MAX_RULES = 100;

function texts(node: ParsedXml, name: string): string[] {
  const value = node[name];
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).map((v) => (typeof v === 'string' ? v : ''));
}

function parseRule(node: ParsedXml): CorsRule {
  const allowedOrigins = texts(node, 'AllowedOrigin');
  const allowedMethods = texts(node, 'AllowedMethod');
  if (allowedOrigins.length === 0 || allowedMethods.length === 0) throw new S3Error('MalformedXML');
  const unsupported = allowedMethods.find((m) => !CORS_METHODS.has(m));
  if (unsupported !== undefined) throw new S3Error('InvalidRequest', { message: `Found unsupported HTTP method in CORS config. Unsupported method is ${unsupported}` });
  for (const origin of allowedOrigins) {
    if (origin.split('*').length > 2) throw new S3Error('InvalidRequest', { message: `AllowedOrigin "${origin}" can not have more than one wildcard.` });
  }
  const maxAge = xmlText(node, 'MaxAgeSeconds');
  if (maxAge !== undefined && !/^\d+$/.test(maxAge)) throw new S3Error('MalformedXML');
  return {
    id: xmlText(node, 'ID'),
    allowedOrigins,
    allowedMethods,
    allowedHeaders: texts(node, 'AllowedHeader'),
    exposeHeaders: texts(node, 'ExposeHeader'),
    maxAgeSeconds: maxAge === undefined ? undefined : Number(maxAge),
  };
}

function corsRulesOf(bucket: BucketRecord): CorsRule[] | undefined {
  return bucket.cors as CorsRule[] | undefined;
}

/** The first rule allowing this origin, method and every requested header (S3 uses the first match). */
export function matchCorsRule(rules: CorsRule[], origin: string, method: string, requestHeaders: string[]): CorsRule | undefined {
  return rules.find((rule) => rule.allowedOrigins.some((o) => wildcardMatch(o, origin))
    && rule.allowedMethods.includes(method)
    && requestHeaders.every((h) => rule.allowedHeaders.some((allowed) => wildcardMatch(allowed, h, true))));
}

function responseHeaders(rule: CorsRule, origin: string): Record<string, string> {
  const anyOrigin = rule.allowedOrigins.includes('*');
  return {
    'access-control-allow-origin': anyOrigin ? '*' : origin,
    'access-control-allow-methods': rule.allowedMethods.join(', '),
    ...(anyOrigin ? {} : { 'access-control-allow-credentials': 'true' }),
    ...(rule.exposeHeaders.length > 0 ? { 'access-control-expose-headers': rule.exposeHeaders.join(', ') } : {}),
    ...(rule.maxAgeSeconds !== undefined ? { 'access-control-max-age': String(rule.maxAgeSeconds) } : {}),
    vary: 'Origin, Access-Control-Request-Headers, Access-Control-Request-Method',
  };
}

/** Access-Control-* headers for an actual (non-preflight) request, when a rule allows it. */
export function corsHeadersFor(bucket: BucketRecord | undefined, origin: string, method: string): Record<string, string> {
  const rules = bucket && corsRulesOf(bucket);
  const rule = rules && matchCorsRule(rules, origin, method, []);
  return rule ? responseHeaders(rule, origin) : {};
}

async function preflight(ctx: S3Context): Promise<void> {
  const origin = header(ctx.request, 'origin');
  const method = header(ctx.request, 'access-control-request-method');
  if (origin === undefined) throw new S3Error('BadRequest', { message: 'Insufficient information. Origin request header needed.' });
  if (method === undefined) throw new S3Error('BadRequest', { message: 'Invalid Access-Control-Request-Method: null' });
  const bucket = await requireBucket(ctx);
  const requested = (header(ctx.request, 'access-control-request-headers') ?? '').split(',').map((h) => h.trim().toLowerCase()).filter((h) => h !== '');
  const rules = corsRulesOf(bucket);
  const rule = rules && matchCorsRule(rules, origin, method, requested);
  if (!rule) throw new S3Error('AccessForbidden', { fields: { Method: method, ResourceType: ctx.address.key === undefined ? 'BUCKET' : 'OBJECT' } });
  void ctx.reply.headers({
    ...responseHeaders(rule, origin),
    ...(requested.length > 0 ? { 'access-control-allow-headers': requested.join(', ') } : {}),
  });
  sendEmpty(ctx);
}

async function putBucketCors(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const config = xmlChild(await ctx.body.xml(['CORSRule']), 'CORSConfiguration');
  const rules = xmlChildren(config, 'CORSRule');
  if (!config || rules.length === 0 || rules.length > MAX_RULES) throw new S3Error('MalformedXML');
  await ctx.buckets.put({ ...bucket, cors: rules.map(parseRule) });
  sendEmpty(ctx);
}

async function getBucketCors(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const rules = corsRulesOf(bucket);
  if (!rules) throw new S3Error('NoSuchCORSConfiguration', { fields: { BucketName: bucket.name } });
  sendXml(ctx, 'CORSConfiguration', {
    CORSRule: rules.map((rule) => ({
      ID: rule.id,
      AllowedHeader: rule.allowedHeaders,
      AllowedMethod: rule.allowedMethods,
      AllowedOrigin: rule.allowedOrigins,
      ExposeHeader: rule.exposeHeaders,
      MaxAgeSeconds: rule.maxAgeSeconds,
    })),
  });
}

export const operations: OperationSpec[] = [
  { name: 'PutBucketCors', method: 'PUT', scope: 'bucket', subresource: 'cors', action: 's3:PutBucketCORS', handle: putBucketCors },
  { name: 'GetBucketCors', method: 'GET', scope: 'bucket', subresource: 'cors', action: 's3:GetBucketCORS', handle: getBucketCors },
  { name: 'DeleteBucketCors', method: 'DELETE', scope: 'bucket', subresource: 'cors', action: 's3:PutBucketCORS', handle: deleteBucketConfiguration('cors') },
  // Preflights are unauthenticated by design: the browser sends no credentials.
  { name: 'PreflightBucket', method: 'OPTIONS', scope: 'bucket', action: undefined, handle: preflight },
  { name: 'PreflightObject', method: 'OPTIONS', scope: 'object', action: undefined, handle: preflight },
];
