// Put/Get/DeleteBucketLifecycleConfiguration. Rules are validated and stored in the bucket record;
// ../lifecycle-worker.ts carries them out in the background.
import { deleteBucketConfiguration, requireBucket, type S3Context, sendEmpty, sendXml } from '../context.js';
import { S3Error } from '../errors.js';
import type { OperationSpec } from '../router.js';
import { type ParsedXml, type XmlObject, xmlChild, xmlChildren, xmlText } from '../xml.js';

export interface LifecycleFilter {
  prefix: string;
  tags: Record<string, string>;
  objectSizeGreaterThan?: number;
  objectSizeLessThan?: number;
}

export interface LifecycleRule {
  id?: string;
  enabled: boolean;
  filter: LifecycleFilter;
  /** Whether the rule used the legacy top-level <Prefix> (echoed back the same way). */
  legacyPrefix?: boolean;
  expiration?: { days?: number; dateMs?: number; expiredObjectDeleteMarker?: boolean };
  noncurrentVersionExpiration?: { noncurrentDays?: number; newerNoncurrentVersions?: number };
  abortIncompleteMultipartUpload?: { daysAfterInitiation: number };
}

const MAX_RULES = 1000;

function positiveInt(value: string | undefined, what: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) <= 0) throw new S3Error('InvalidArgument', { message: `'${what}' must be a positive integer` });
  return Number(value);
}

function tagsOf(nodes: ParsedXml[]): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const tag of nodes) {
    const key = xmlText(tag, 'Key');
    if (key === undefined) throw new S3Error('MalformedXML');
    if (key in tags) throw new S3Error('InvalidRequest', { message: 'Duplicate Tag Keys are not allowed.' });
    tags[key] = xmlText(tag, 'Value') ?? '';
  }
  return tags;
}

function parseFilter(rule: ParsedXml): { filter: LifecycleFilter; legacyPrefix: boolean } {
  const legacy = xmlText(rule, 'Prefix');
  const filter = xmlChild(rule, 'Filter');
  if (legacy !== undefined && filter !== undefined) throw new S3Error('MalformedXML');
  if (filter === undefined) return { filter: { prefix: legacy ?? '', tags: {} }, legacyPrefix: legacy !== undefined };
  const and = xmlChild(filter, 'And');
  const source = and ?? filter;
  const conditions = ['Prefix', 'Tag', 'ObjectSizeGreaterThan', 'ObjectSizeLessThan'].filter((name) => filter[name] !== undefined);
  if (!and && conditions.length > 1) throw new S3Error('MalformedXML');
  const size = (name: string) => {
    const value = xmlText(source, name);
    if (value !== undefined && !/^\d+$/.test(value)) throw new S3Error('InvalidArgument', { message: `${name} must be a non-negative integer` });
    return value === undefined ? undefined : Number(value);
  };
  return {
    filter: { prefix: xmlText(source, 'Prefix') ?? '', tags: tagsOf(xmlChildren(source, 'Tag')), objectSizeGreaterThan: size('ObjectSizeGreaterThan'), objectSizeLessThan: size('ObjectSizeLessThan') },
    legacyPrefix: false,
  };
}

function parseExpiration(node: ParsedXml | undefined): LifecycleRule['expiration'] {
  if (!node) return undefined;
  const days = positiveInt(xmlText(node, 'Days'), 'Days');
  const date = xmlText(node, 'Date');
  const marker = xmlText(node, 'ExpiredObjectDeleteMarker');
  if ([days, date, marker].filter((v) => v !== undefined).length !== 1) throw new S3Error('MalformedXML');
  let dateMs: number | undefined;
  if (date !== undefined) {
    dateMs = Date.parse(date);
    if (Number.isNaN(dateMs) || dateMs % 86_400_000 !== 0) throw new S3Error('InvalidArgument', { message: '\'Date\' must be at midnight GMT' });
  }
  if (marker !== undefined && marker !== 'true' && marker !== 'false') throw new S3Error('MalformedXML');
  return { days, dateMs, expiredObjectDeleteMarker: marker === undefined ? undefined : marker === 'true' };
}

function parseRule(node: ParsedXml): LifecycleRule {
  const status = xmlText(node, 'Status');
  if (status !== 'Enabled' && status !== 'Disabled') throw new S3Error('MalformedXML');
  const id = xmlText(node, 'ID');
  if (id !== undefined && id.length > 255) throw new S3Error('InvalidArgument', { message: 'ID length should not exceed allowed limit of 255' });
  if (node.Transition !== undefined || node.NoncurrentVersionTransition !== undefined) {
    throw new S3Error('NotImplemented', { message: 'Lifecycle transitions between storage classes are not supported' });
  }
  const noncurrent = xmlChild(node, 'NoncurrentVersionExpiration');
  const abort = xmlChild(node, 'AbortIncompleteMultipartUpload');
  const { filter, legacyPrefix } = parseFilter(node);
  const rule: LifecycleRule = {
    id,
    enabled: status === 'Enabled',
    filter,
    legacyPrefix: legacyPrefix || undefined,
    expiration: parseExpiration(xmlChild(node, 'Expiration')),
    noncurrentVersionExpiration: noncurrent && {
      noncurrentDays: positiveInt(xmlText(noncurrent, 'NoncurrentDays'), 'NoncurrentDays'),
      newerNoncurrentVersions: positiveInt(xmlText(noncurrent, 'NewerNoncurrentVersions'), 'NewerNoncurrentVersions'),
    },
    abortIncompleteMultipartUpload: abort && { daysAfterInitiation: positiveInt(xmlText(abort, 'DaysAfterInitiation'), 'DaysAfterInitiation') ?? NaN },
  };
  if (rule.abortIncompleteMultipartUpload && Number.isNaN(rule.abortIncompleteMultipartUpload.daysAfterInitiation)) throw new S3Error('MalformedXML');
  if (!rule.expiration && !rule.noncurrentVersionExpiration && !rule.abortIncompleteMultipartUpload) {
    throw new S3Error('InvalidRequest', { message: 'At least one action needs to be specified in a rule' });
  }
  if (rule.abortIncompleteMultipartUpload && Object.keys(filter.tags).length > 0) {
    throw new S3Error('InvalidRequest', { message: 'AbortIncompleteMultipartUpload cannot be specified with Tags.' });
  }
  return rule;
}

export function lifecycleRulesOf(bucket: { lifecycle?: unknown }): LifecycleRule[] {
  return (bucket.lifecycle as LifecycleRule[] | undefined) ?? [];
}

async function putBucketLifecycle(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const config = xmlChild(await ctx.body.xml(['Rule', 'Tag']), 'LifecycleConfiguration');
  const nodes = xmlChildren(config, 'Rule');
  if (!config || nodes.length === 0 || nodes.length > MAX_RULES) throw new S3Error('MalformedXML');
  const rules = nodes.map(parseRule);
  const ids = rules.map((r) => r.id).filter((id) => id !== undefined);
  if (new Set(ids).size !== ids.length) throw new S3Error('InvalidArgument', { message: 'Rule ID must be unique. Found same ID for more than one rule' });
  await ctx.buckets.put({ ...bucket, lifecycle: rules });
  sendEmpty(ctx);
}

function filterXml(filter: LifecycleFilter): XmlObject {
  const tags = Object.entries(filter.tags).map(([Key, Value]) => ({ Key, Value }));
  const sizes = { ObjectSizeGreaterThan: filter.objectSizeGreaterThan, ObjectSizeLessThan: filter.objectSizeLessThan };
  const count = (filter.prefix ? 1 : 0) + tags.length + Object.values(sizes).filter((v) => v !== undefined).length;
  if (count > 1) return { And: { Prefix: filter.prefix || undefined, Tag: tags, ...sizes } };
  if (tags.length === 1) return { Tag: tags[0]! };
  return { Prefix: filter.prefix, ...sizes };
}

async function getBucketLifecycle(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const rules = lifecycleRulesOf(bucket);
  if (rules.length === 0) throw new S3Error('NoSuchLifecycleConfiguration', { fields: { BucketName: bucket.name } });
  sendXml(ctx, 'LifecycleConfiguration', {
    Rule: rules.map((rule) => ({
      ID: rule.id,
      ...(rule.legacyPrefix ? { Prefix: rule.filter.prefix } : { Filter: filterXml(rule.filter) }),
      Status: rule.enabled ? 'Enabled' : 'Disabled',
      Expiration: rule.expiration && {
        Days: rule.expiration.days,
        Date: rule.expiration.dateMs === undefined ? undefined : new Date(rule.expiration.dateMs),
        ExpiredObjectDeleteMarker: rule.expiration.expiredObjectDeleteMarker,
      },
      NoncurrentVersionExpiration: rule.noncurrentVersionExpiration && {
        NoncurrentDays: rule.noncurrentVersionExpiration.noncurrentDays,
        NewerNoncurrentVersions: rule.noncurrentVersionExpiration.newerNoncurrentVersions,
      },
      AbortIncompleteMultipartUpload: rule.abortIncompleteMultipartUpload && { DaysAfterInitiation: rule.abortIncompleteMultipartUpload.daysAfterInitiation },
    })),
  });
}

export const operations: OperationSpec[] = [
  { name: 'PutBucketLifecycleConfiguration', method: 'PUT', scope: 'bucket', subresource: 'lifecycle', action: 's3:PutLifecycleConfiguration', handle: putBucketLifecycle },
  { name: 'GetBucketLifecycleConfiguration', method: 'GET', scope: 'bucket', subresource: 'lifecycle', action: 's3:GetLifecycleConfiguration', handle: getBucketLifecycle },
  { name: 'DeleteBucketLifecycle', method: 'DELETE', scope: 'bucket', subresource: 'lifecycle', action: 's3:PutLifecycleConfiguration', handle: deleteBucketConfiguration('lifecycle') },
];
