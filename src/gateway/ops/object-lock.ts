// Object Lock: the bucket's lock configuration (default retention), per-version retention and
// legal hold, the x-amz-object-lock-* headers of new objects, and the rule that a locked version
// cannot be removed before its date. This is what makes backup buckets immutable.
import type { ObjectVersion } from '../../replication/types.js';
import { authorize, resourceOf } from '../auth/authorize.js';
import type { BucketRecord } from '../bucket-record.js';
import { header, queryParam, requireBucket, requireKey, type S3Context, sendEmpty, sendXml } from '../context.js';
import { S3Error } from '../errors.js';
import type { OperationSpec } from '../router.js';
import { type ParsedXml, xmlChild, xmlText } from '../xml.js';
import { attributesOf, type ObjectAttributes, type Retention, type RetentionMode, withAttributes } from './attributes.js';
import { resolveVersion } from './get.js';
import { versionIdHeader } from './put.js';

const DAY_MS = 86_400_000;

/** The bucket's default retention, as stored in BucketRecord.objectLock. */
export interface DefaultRetention {
  mode: RetentionMode;
  days?: number;
  years?: number;
}

function defaultRetentionOf(bucket: BucketRecord): DefaultRetention | undefined {
  return bucket.objectLock as DefaultRetention | undefined;
}

function parseMode(value: string | undefined): RetentionMode {
  if (value !== 'GOVERNANCE' && value !== 'COMPLIANCE') throw new S3Error('MalformedXML');
  return value;
}

function requireLockEnabled(bucket: BucketRecord): void {
  if (!bucket.objectLockEnabled) throw new S3Error('InvalidRequest', { message: 'Bucket is missing Object Lock Configuration' });
}

/** Retention and legal hold of a new object: x-amz-object-lock-* headers, else the bucket default. */
export function lockAttributesForNewObject(ctx: S3Context, bucket: BucketRecord): Pick<ObjectAttributes, 'retention' | 'legalHold'> {
  const mode = header(ctx.request, 'x-amz-object-lock-mode');
  const until = header(ctx.request, 'x-amz-object-lock-retain-until-date');
  const hold = header(ctx.request, 'x-amz-object-lock-legal-hold');
  if (mode === undefined && until === undefined && hold === undefined) {
    const byDefault = bucket.objectLockEnabled ? defaultRetentionOf(bucket) : undefined;
    if (!byDefault) return {};
    const days = byDefault.days ?? (byDefault.years ?? 0) * 365;
    return { retention: { mode: byDefault.mode, untilMs: Date.now() + days * DAY_MS } };
  }
  requireLockEnabled(bucket);
  if ((mode === undefined) !== (until === undefined)) {
    throw new S3Error('InvalidArgument', { message: 'x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied' });
  }
  if (hold !== undefined && hold !== 'ON' && hold !== 'OFF') throw new S3Error('InvalidArgument', { message: 'Legal Hold must be either of \'ON\' or \'OFF\'' });
  const attributes: Pick<ObjectAttributes, 'retention' | 'legalHold'> = hold === 'ON' ? { legalHold: true } : {};
  if (mode !== undefined && until !== undefined) {
    if (mode !== 'GOVERNANCE' && mode !== 'COMPLIANCE') throw new S3Error('InvalidArgument', { message: 'Unknown wormMode directive.' });
    attributes.retention = { mode, untilMs: futureDate(until) };
  }
  return attributes;
}

function futureDate(value: string): number {
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new S3Error('InvalidArgument', { message: 'The retain until date is not a valid date' });
  if (ms <= Date.now()) throw new S3Error('InvalidArgument', { message: 'The retain until date must be in the future!' });
  return ms;
}

/** x-amz-object-lock-* response headers of a version (GET / HEAD). */
export function lockHeaders(version: ObjectVersion): Record<string, string> {
  const { retention, legalHold } = attributesOf(version);
  return {
    ...(retention ? { 'x-amz-object-lock-mode': retention.mode, 'x-amz-object-lock-retain-until-date': new Date(retention.untilMs).toISOString() } : {}),
    ...(legalHold !== undefined ? { 'x-amz-object-lock-legal-hold': legalHold ? 'ON' : 'OFF' } : {}),
  };
}

/** Whether the request may bypass GOVERNANCE retention (header set and the permission held). */
async function bypassesGovernance(ctx: S3Context, version: ObjectVersion): Promise<boolean> {
  if (header(ctx.request, 'x-amz-bypass-governance-retention')?.toLowerCase() !== 'true') return false;
  await authorize(ctx, ctx.principal, 's3:BypassGovernanceRetention', resourceOf(version.bucket, version.key));
  return true;
}

/** A version under legal hold or unexpired retention cannot be removed (S3 answers AccessDenied). */
export async function assertVersionDeletable(ctx: S3Context, version: ObjectVersion, now = Date.now()): Promise<void> {
  if (!isLocked(version, now)) return;
  const { retention, legalHold } = attributesOf(version);
  const governanceOnly = !legalHold && retention?.mode === 'GOVERNANCE';
  if (governanceOnly && await bypassesGovernance(ctx, version)) return;
  throw new S3Error('AccessDenied', { message: 'Access Denied because object protected by object lock.' });
}

/** Whether a version is under legal hold or unexpired retention at `now`. */
export function isLocked(version: ObjectVersion, now = Date.now()): boolean {
  const { retention, legalHold } = attributesOf(version);
  return Boolean(legalHold) || (retention !== undefined && retention.untilMs > now);
}

// ---------------------------------------------------------------- bucket configuration

async function putObjectLockConfiguration(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const config = xmlChild(await ctx.body.xml(), 'ObjectLockConfiguration');
  if (!config || xmlText(config, 'ObjectLockEnabled') !== 'Enabled') throw new S3Error('MalformedXML');
  if (!bucket.objectLockEnabled && bucket.versioning !== 'Enabled') {
    throw new S3Error('InvalidBucketState', { message: 'Versioning must be \'Enabled\' on the bucket to apply a Object Lock configuration' });
  }
  await ctx.buckets.put({ ...bucket, objectLockEnabled: true, versioning: 'Enabled', objectLock: parseDefaultRetention(xmlChild(config, 'Rule')) });
  sendEmpty(ctx);
}

function parseDefaultRetention(rule: ParsedXml | undefined): DefaultRetention | undefined {
  if (!rule) return undefined;
  const retention = xmlChild(rule, 'DefaultRetention');
  if (!retention) throw new S3Error('MalformedXML');
  const mode = parseMode(xmlText(retention, 'Mode'));
  const days = xmlText(retention, 'Days');
  const years = xmlText(retention, 'Years');
  if ((days === undefined) === (years === undefined)) throw new S3Error('MalformedXML');
  const count = Number(days ?? years);
  if (!Number.isInteger(count) || count <= 0) {
    throw new S3Error('InvalidArgument', { message: 'Default retention period must be a positive integer value' });
  }
  return days !== undefined ? { mode, days: count } : { mode, years: count };
}

async function getObjectLockConfiguration(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  if (!bucket.objectLockEnabled) throw new S3Error('ObjectLockConfigurationNotFoundError', { fields: { BucketName: bucket.name } });
  const retention = defaultRetentionOf(bucket);
  sendXml(ctx, 'ObjectLockConfiguration', {
    ObjectLockEnabled: 'Enabled',
    Rule: retention ? { DefaultRetention: { Mode: retention.mode, Days: retention.days, Years: retention.years } } : undefined,
  });
}

// ---------------------------------------------------------------- per-version retention and legal hold

async function lockedVersion(ctx: S3Context): Promise<{ bucket: BucketRecord; version: ObjectVersion }> {
  const bucket = await requireBucket(ctx);
  const version = await resolveVersion(ctx, bucket, requireKey(ctx), queryParam(ctx, 'versionId'));
  requireLockEnabled(bucket);
  return { bucket, version };
}

async function putObjectRetention(ctx: S3Context): Promise<void> {
  const { bucket, version } = await lockedVersion(ctx);
  const document = xmlChild(await ctx.body.xml(), 'Retention');
  if (!document) throw new S3Error('MalformedXML');
  const untilText = xmlText(document, 'RetainUntilDate');
  const next: Retention = { mode: parseMode(xmlText(document, 'Mode')), untilMs: untilText === undefined ? NaN : Date.parse(untilText) };
  if (Number.isNaN(next.untilMs)) throw new S3Error('MalformedXML');
  if (next.untilMs <= Date.now()) throw new S3Error('InvalidArgument', { message: 'The retain until date must be in the future!' });
  await assertRetentionChangeAllowed(ctx, version, next);
  await ctx.store.updateVersion(withAttributes(version, { retention: next }));
  void ctx.reply.headers(versionIdHeader(bucket, version));
  sendEmpty(ctx);
}

/** COMPLIANCE can only be extended; weakening GOVERNANCE needs x-amz-bypass-governance-retention. */
async function assertRetentionChangeAllowed(ctx: S3Context, version: ObjectVersion, next: Retention): Promise<void> {
  const current = attributesOf(version).retention;
  if (!current || current.untilMs <= Date.now()) return;
  const weakens = next.untilMs < current.untilMs || (current.mode === 'COMPLIANCE' && next.mode !== 'COMPLIANCE');
  if (!weakens) return;
  if (current.mode === 'GOVERNANCE' && await bypassesGovernance(ctx, version)) return;
  throw new S3Error('AccessDenied', { message: 'Access Denied because object protected by object lock.' });
}

async function getObjectRetention(ctx: S3Context): Promise<void> {
  const { version } = await lockedVersion(ctx);
  const { retention } = attributesOf(version);
  if (!retention) throw new S3Error('NoSuchObjectLockConfiguration');
  sendXml(ctx, 'Retention', { Mode: retention.mode, RetainUntilDate: new Date(retention.untilMs) });
}

async function putObjectLegalHold(ctx: S3Context): Promise<void> {
  const { bucket, version } = await lockedVersion(ctx);
  const status = xmlText(xmlChild(await ctx.body.xml(), 'LegalHold'), 'Status');
  if (status !== 'ON' && status !== 'OFF') throw new S3Error('MalformedXML');
  await ctx.store.updateVersion(withAttributes(version, { legalHold: status === 'ON' }));
  void ctx.reply.headers(versionIdHeader(bucket, version));
  sendEmpty(ctx);
}

async function getObjectLegalHold(ctx: S3Context): Promise<void> {
  const { version } = await lockedVersion(ctx);
  const { legalHold } = attributesOf(version);
  if (legalHold === undefined) throw new S3Error('NoSuchObjectLockConfiguration');
  sendXml(ctx, 'LegalHold', { Status: legalHold ? 'ON' : 'OFF' });
}

export const operations: OperationSpec[] = [
  { name: 'PutObjectLockConfiguration', method: 'PUT', scope: 'bucket', subresource: 'object-lock', action: 's3:PutBucketObjectLockConfiguration', handle: putObjectLockConfiguration },
  { name: 'GetObjectLockConfiguration', method: 'GET', scope: 'bucket', subresource: 'object-lock', action: 's3:GetBucketObjectLockConfiguration', handle: getObjectLockConfiguration },
  { name: 'PutObjectRetention', method: 'PUT', scope: 'object', subresource: 'retention', action: 's3:PutObjectRetention', handle: putObjectRetention },
  { name: 'GetObjectRetention', method: 'GET', scope: 'object', subresource: 'retention', action: 's3:GetObjectRetention', handle: getObjectRetention },
  { name: 'PutObjectLegalHold', method: 'PUT', scope: 'object', subresource: 'legal-hold', action: 's3:PutObjectLegalHold', handle: putObjectLegalHold },
  { name: 'GetObjectLegalHold', method: 'GET', scope: 'object', subresource: 'legal-hold', action: 's3:GetObjectLegalHold', handle: getObjectLegalHold },
];
