// What an operation module sees of a request, and the helpers it answers with.
import type { IncomingMessage } from 'node:http';
import type { FastifyBaseLogger, FastifyReply } from 'fastify';
import type { ObjectStore } from '../replication/types.js';
import type { AccessKeyProvider, Principal } from './auth/keys.js';
import type { RequestBody } from './body.js';
import type { BucketRecord, BucketRegistry } from './bucket-record.js';
import { S3Error } from './errors.js';
import type { Address, OperationSpec } from './router.js';
import type { MasterKeys } from './sse.js';
import { buildXml, type XmlObject } from './xml.js';

export interface GatewayConfig {
  region: string;
  baseDomain?: string;
  /** `<bucket>.<websiteDomain>` requests go to the static-website endpoint (website.ts). */
  websiteDomain?: string;
  /** Identifies this gateway in x-amz-id-2 / HostId. */
  hostId: string;
  /** SSE-S3 master keys; undefined: SSE-S3 requests are refused (SSE-C still works). */
  sseMasterKeys?: MasterKeys;
}

export interface S3Context {
  readonly requestId: string;
  readonly method: string;
  readonly request: IncomingMessage;
  readonly reply: FastifyReply;
  readonly log: FastifyBaseLogger;
  readonly store: ObjectStore;
  readonly config: GatewayConfig;
  readonly buckets: BucketRegistry;
  readonly address: Address;
  readonly operation: OperationSpec;
  readonly principal: Principal;
  /** Access keys, for operations that authenticate inside the body (POST Object forms). */
  readonly keys: AccessKeyProvider;
  readonly body: RequestBody;
}

/**
 * A request header as sent. Node decodes header bytes as latin1, so this string holds the exact
 * bytes a client put on the wire; repeated headers are joined with ','.
 */
export function header(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

export function requireBucketName(ctx: S3Context): string {
  if (ctx.address.bucket === undefined) throw new S3Error('InvalidRequest', { message: 'A bucket name is required.' });
  return ctx.address.bucket;
}

export function requireKey(ctx: S3Context): string {
  if (ctx.address.key === undefined) throw new S3Error('InvalidRequest', { message: 'An object key is required.' });
  return ctx.address.key;
}

/** The addressed bucket's record; NoSuchBucket when it does not exist. */
export async function requireBucket(ctx: S3Context): Promise<BucketRecord> {
  const name = requireBucketName(ctx);
  const record = await ctx.buckets.get(name);
  if (!record) throw new S3Error('NoSuchBucket', { fields: { BucketName: name } });
  assertExpectedOwner(ctx, record, 'x-amz-expected-bucket-owner');
  return record;
}

/**
 * x-amz-expected-bucket-owner (x-amz-source-expected-bucket-owner for a copy's source): the
 * client's guard against using a bucket that someone else owns, compared with the owner's id.
 */
export function assertExpectedOwner(ctx: S3Context, bucket: BucketRecord, headerName: string): void {
  const expected = header(ctx.request, headerName);
  if (expected !== undefined && expected !== bucket.owner.id) throw new S3Error('AccessDenied');
}

/** Bucket configurations a Delete<Configuration> operation removes, each one field of the record. */
export type BucketConfigurationField = 'cors' | 'encryption' | 'lifecycle' | 'objectOwnership' | 'policy' | 'publicAccessBlock' | 'tagging' | 'website';

/** The handler of a Delete<Configuration> operation: drops that field from the bucket record (204). */
export function deleteBucketConfiguration(field: BucketConfigurationField): (ctx: S3Context) => Promise<void> {
  return async (ctx) => {
    const bucket = await requireBucket(ctx);
    await ctx.buckets.put({ ...bucket, [field]: undefined });
    sendEmpty(ctx, 204);
  };
}

export function sendXml(ctx: S3Context, root: string, body: XmlObject, status = 200): void {
  void ctx.reply.code(status).header('content-type', 'application/xml').send(buildXml(root, body));
}

export function sendEmpty(ctx: S3Context, status = 200): void {
  void ctx.reply.code(status).send();
}

/** The query parameter's value; absent is undefined, `?acl` (no value) is ''. */
export function queryParam(ctx: S3Context, name: string): string | undefined {
  return ctx.address.query.get(name) ?? undefined;
}

/** An integer query parameter within [min, max], with S3's InvalidArgument on bad input. */
export function intParam(ctx: S3Context, name: string, fallback: number, min: number, max: number): number {
  const raw = queryParam(ctx, name);
  if (raw === undefined) return fallback;
  if (!/^-?\d+$/.test(raw)) throw new S3Error('InvalidArgument', { message: `Provided ${name} not an integer or within integer range`, fields: { ArgumentName: name, ArgumentValue: raw } });
  const value = Number(raw);
  if (value < min) throw new S3Error('InvalidArgument', { message: `Argument ${name} must be an integer between ${min} and ${max}`, fields: { ArgumentName: name, ArgumentValue: raw } });
  return Math.min(value, max);
}
