// Bucket policies: validation of the JSON document and its evaluation as an authorizer.
// A statement applies when its Principal, Action, Resource and Condition all match; a matching
// Deny beats any Allow (authorize.ts), a matching Allow grants what ownership would not.
import { isIP } from 'node:net';
import { type Resource, registerAuthorizer } from './auth/authorize.js';
import type { Principal } from './auth/keys.js';
import { header, type S3Context } from './context.js';
import { S3Error } from './errors.js';

export interface PolicyStatement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Principal?: '*' | { AWS?: string | string[]; CanonicalUser?: string | string[] };
  NotPrincipal?: PolicyStatement['Principal'];
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: string | string[];
  NotResource?: string | string[];
  Condition?: Record<string, Record<string, string | string[] | boolean | number>>;
}

export interface BucketPolicy {
  Version?: string;
  Id?: string;
  Statement: PolicyStatement[];
}

const list = <T>(value: T | T[] | undefined): T[] => (value === undefined ? [] : Array.isArray(value) ? value : [value]);

function malformed(message: string): S3Error {
  return new S3Error('MalformedPolicy', { message });
}

/** Parse and check a PutBucketPolicy document; every resource must lie in `bucket`. */
export function parsePolicy(text: string, bucket: string): BucketPolicy {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    throw malformed('Policies must be valid JSON and the first byte must be \'{\'');
  }
  if (document === null || typeof document !== 'object' || Array.isArray(document)) throw malformed('Policies must be valid JSON and the first byte must be \'{\'');
  const policy = document as { Version?: unknown; Statement?: unknown };
  if (policy.Version !== undefined && policy.Version !== '2012-10-17' && policy.Version !== '2008-10-17') throw malformed('Invalid policy version');
  const statements = list(policy.Statement as PolicyStatement | PolicyStatement[] | undefined);
  if (statements.length === 0) throw malformed('Missing required field Statement');
  for (const statement of statements) checkStatement(statement, bucket);
  return { ...(document as BucketPolicy), Statement: statements };
}

function checkStatement(statement: PolicyStatement, bucket: string): void {
  if (statement === null || typeof statement !== 'object') throw malformed('Invalid statement');
  if (statement.Effect !== 'Allow' && statement.Effect !== 'Deny') throw malformed('Invalid effect');
  if (statement.Principal === undefined && statement.NotPrincipal === undefined) throw malformed('Missing required field Principal');
  if (statement.Action === undefined && statement.NotAction === undefined) throw malformed('Missing required field Action');
  const actions = [...list(statement.Action), ...list(statement.NotAction)];
  if (actions.some((a) => typeof a !== 'string' || (a !== '*' && !/^s3:[A-Za-z*?]+$/i.test(a)))) throw malformed('Policy has invalid action');
  const resources = [...list(statement.Resource), ...list(statement.NotResource)];
  if (resources.length === 0) throw malformed('Missing required field Resource');
  const inBucket = (r: string) => r === `arn:aws:s3:::${bucket}` || r.startsWith(`arn:aws:s3:::${bucket}/`) || wildcardMatch(r, `arn:aws:s3:::${bucket}`);
  if (resources.some((r) => typeof r !== 'string' || !inBucket(r))) throw malformed('Policy has invalid resource');
  for (const [operator, entries] of Object.entries(statement.Condition ?? {})) {
    const base = baseOperator(operator);
    if (!CONDITION_OPERATORS[base] && base !== PRESENCE_OPERATOR) throw malformed(`Invalid Condition type : ${operator}`);
    if (entries === null || typeof entries !== 'object') throw malformed('Invalid Condition block');
  }
}

/** `*` matches any run of characters, `?` any one character. */
export function wildcardMatch(pattern: string, value: string, ignoreCase = false): boolean {
  const source = pattern.split('').map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&'))).join('');
  return new RegExp(`^${source}$`, ignoreCase ? 'is' : 's').test(value);
}

function principalMatches(spec: PolicyStatement['Principal'], principal: Principal): boolean {
  if (spec === undefined) return false;
  if (spec === '*') return true;
  const names = [...list(spec.AWS), ...list(spec.CanonicalUser)];
  if (names.includes('*')) return true;
  if (principal.accessKeyId === undefined) return false;
  return names.some((name) => name === principal.userId || name === principal.accessKeyId
    || name.endsWith(`:user/${principal.userId}`) || name.endsWith(`:user/${principal.accessKeyId}`)
    || (principal.isRoot && /^arn:aws:iam::[^:]*:root$/.test(name)));
}

// ---------------------------------------------------------------- conditions

type Operator = (actual: string, expected: string) => boolean;

function ipInCidr(ip: string, cidr: string): boolean {
  const [network, bitsText] = cidr.split('/');
  if (isIP(ip) !== 4 || isIP(network ?? '') !== 4) return ip === network;
  const bits = bitsText === undefined ? 32 : Number(bitsText);
  const toInt = (a: string) => a.split('.').reduce((n, octet) => (n * 256) + Number(octet), 0);
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return ((toInt(ip) & mask) >>> 0) === ((toInt(network!) & mask) >>> 0);
}

const CONDITION_OPERATORS: Record<string, Operator> = {
  StringEquals: (a, e) => a === e,
  StringNotEquals: (a, e) => a !== e,
  StringEqualsIgnoreCase: (a, e) => a.toLowerCase() === e.toLowerCase(),
  StringNotEqualsIgnoreCase: (a, e) => a.toLowerCase() !== e.toLowerCase(),
  StringLike: (a, e) => wildcardMatch(e, a),
  StringNotLike: (a, e) => !wildcardMatch(e, a),
  NumericEquals: (a, e) => Number(a) === Number(e),
  NumericNotEquals: (a, e) => Number(a) !== Number(e),
  NumericLessThan: (a, e) => Number(a) < Number(e),
  NumericLessThanEquals: (a, e) => Number(a) <= Number(e),
  NumericGreaterThan: (a, e) => Number(a) > Number(e),
  NumericGreaterThanEquals: (a, e) => Number(a) >= Number(e),
  DateLessThan: (a, e) => Date.parse(a) < Date.parse(e),
  DateGreaterThan: (a, e) => Date.parse(a) > Date.parse(e),
  Bool: (a, e) => a.toLowerCase() === e.toLowerCase(),
  IpAddress: (a, e) => ipInCidr(a, e),
  NotIpAddress: (a, e) => !ipInCidr(a, e),
};

/** `Null` tests presence rather than value: "true" holds when the key is absent, "false" when present. */
const PRESENCE_OPERATOR = 'Null';

/** Negated operators hold for every expected value; the others for any. */
const NEGATED = new Set(['StringNotEquals', 'StringNotEqualsIgnoreCase', 'StringNotLike', 'NumericNotEquals', 'NotIpAddress']);

function baseOperator(operator: string): string {
  return operator.replace(/^(ForAnyValue:|ForAllValues:)/, '').replace(/IfExists$/, '');
}

/** The value of a condition key for this request, or undefined when the request has none. */
function conditionKey(ctx: S3Context, principal: Principal, name: string): string | undefined {
  const key = name.toLowerCase();
  switch (key) {
    case 'aws:sourceip': return (ctx.request.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    case 'aws:securetransport': return String('encrypted' in ctx.request.socket && Boolean(ctx.request.socket.encrypted));
    case 'aws:currenttime': return new Date().toISOString();
    case 'aws:epochtime': return String(Math.floor(Date.now() / 1000));
    case 'aws:referer': return header(ctx.request, 'referer');
    case 'aws:useragent': return header(ctx.request, 'user-agent');
    case 'aws:username': case 'aws:userid': return principal.accessKeyId === undefined ? undefined : principal.userId;
    case 's3:if-match': case 's3:if-none-match': return header(ctx.request, key.slice(3));
    case 's3:prefix': case 's3:delimiter': case 's3:max-keys': case 's3:versionid':
      return ctx.address.query.get(key === 's3:versionid' ? 'versionId' : key.slice(3)) ?? undefined;
    default:
      if (key.startsWith('s3:x-amz-')) return header(ctx.request, key.slice(3));
      return undefined;
  }
}

function conditionsHold(ctx: S3Context, principal: Principal, conditions: PolicyStatement['Condition']): boolean {
  for (const [operator, entries] of Object.entries(conditions ?? {})) {
    const base = baseOperator(operator);
    for (const [name, expectedValue] of Object.entries(entries)) {
      const actual = conditionKey(ctx, principal, name);
      if (base === PRESENCE_OPERATOR) {
        if (!list(expectedValue).some((e) => String(e).toLowerCase() === String(actual === undefined))) return false;
        continue;
      }
      if (actual === undefined) {
        if (operator.endsWith('IfExists')) continue;
        return false;
      }
      const test = CONDITION_OPERATORS[base]!;
      const expected = list(expectedValue).map(String);
      const holds = NEGATED.has(base) ? expected.every((e) => test(actual, e)) : expected.some((e) => test(actual, e));
      if (!holds) return false;
    }
  }
  return true;
}

// ---------------------------------------------------------------- evaluation

function statementApplies(ctx: S3Context, statement: PolicyStatement, principal: Principal, action: string, resource: Resource): boolean {
  const principalOk = statement.NotPrincipal !== undefined ? !principalMatches(statement.NotPrincipal, principal) : principalMatches(statement.Principal, principal);
  const actionOk = statement.NotAction !== undefined
    ? !list(statement.NotAction).some((a) => wildcardMatch(a, action, true))
    : list(statement.Action).some((a) => wildcardMatch(a, action, true));
  const resourceOk = statement.NotResource !== undefined
    ? !list(statement.NotResource).some((r) => wildcardMatch(r, resource.arn))
    : list(statement.Resource).some((r) => wildcardMatch(r, resource.arn));
  return principalOk && actionOk && resourceOk && conditionsHold(ctx, principal, statement.Condition);
}

const parsedPolicies = new Map<string, BucketPolicy>();

function policyOf(text: string, bucket: string): BucketPolicy {
  let policy = parsedPolicies.get(text);
  if (!policy) {
    policy = parsePolicy(text, bucket);
    if (parsedPolicies.size > 1000) parsedPolicies.clear();
    parsedPolicies.set(text, policy);
  }
  return policy;
}

/** The root key can always manage the policy itself, so a bad Deny cannot lock the owner out. */
const POLICY_ACTIONS = new Set(['s3:GetBucketPolicy', 's3:PutBucketPolicy', 's3:DeleteBucketPolicy']);

async function bucketPolicyDecision(ctx: S3Context, principal: Principal, action: string, resource: Resource): Promise<'Allow' | 'Deny' | 'Abstain'> {
  if (resource.bucket === undefined || (principal.isRoot && POLICY_ACTIONS.has(action))) return 'Abstain';
  const bucket = await ctx.buckets.get(resource.bucket);
  const text = bucket?.policy;
  if (!text) return 'Abstain';
  const applying = policyOf(text, resource.bucket).Statement.filter((s) => statementApplies(ctx, s, principal, action, resource));
  if (applying.some((s) => s.Effect === 'Deny')) return 'Deny';
  // RestrictPublicBuckets: a public policy keeps its Denies but allows anonymous requests nothing.
  const restricted = bucket.publicAccessBlock?.restrictPublicBuckets && principal.accessKeyId === undefined && policyIsPublic(text, resource.bucket);
  return applying.length > 0 && !restricted ? 'Allow' : 'Abstain';
}

/** PolicyStatus.IsPublic: some unconditional Allow names every principal. */
export function policyIsPublic(text: string, bucket: string): boolean {
  return policyOf(text, bucket).Statement.some((s) => s.Effect === 'Allow' && s.Condition === undefined && principalMatches(s.Principal, { userId: 'anonymous', displayName: 'anonymous', isRoot: false }));
}

registerAuthorizer(bucketPolicyDecision);
