// Access control lists and per-key bucket grants, and the authorizer that evaluates them.
// A request is allowed here when the principal owns the bucket, holds a key grant on it
// (`tessera admin key allow`), or an ACL grant on the bucket or object covers the action.
import { type Resource, registerAuthorizer } from './auth/authorize.js';
import { type AccessKeyRecord, KEYS_NAMESPACE, type Principal } from './auth/keys.js';
import type { BucketOwner, BucketRecord } from './bucket-record.js';
import { header, type S3Context } from './context.js';
import { S3Error } from './errors.js';
import { attributesOf } from './ops/attributes.js';
import { type ParsedXml, type XmlObject, xmlChild, xmlChildren, xmlText } from './xml.js';

export type Permission = 'FULL_CONTROL' | 'READ' | 'WRITE' | 'READ_ACP' | 'WRITE_ACP';
const PERMISSIONS = new Set<Permission>(['FULL_CONTROL', 'READ', 'WRITE', 'READ_ACP', 'WRITE_ACP']);

export type Grantee = { type: 'CanonicalUser'; id: string; displayName?: string } | { type: 'Group'; uri: string };

export interface Grant {
  grantee: Grantee;
  permission: Permission;
}

export const ALL_USERS = 'http://acs.amazonaws.com/groups/global/AllUsers';
export const AUTHENTICATED_USERS = 'http://acs.amazonaws.com/groups/global/AuthenticatedUsers';
const LOG_DELIVERY = 'http://acs.amazonaws.com/groups/s3/LogDelivery';

// ---------------------------------------------------------------- key grants

/** What `tessera admin key allow` gives a key on a bucket. */
export type KeyAccess = 'read' | 'write' | 'owner';
export const KEY_ACCESS_LEVELS: readonly KeyAccess[] = ['read', 'write', 'owner'];

/** The "keys" record as written by `tessera admin key`: the gateway's key record plus bucket grants. */
export interface KeyRecordWithGrants extends AccessKeyRecord {
  buckets?: Record<string, KeyAccess>;
}

/** Object writes a `write` grant allows besides everything a `read` grant does. */
const OBJECT_WRITE_ACTIONS = new Set(['s3:PutObject', 's3:DeleteObject', 's3:DeleteObjectVersion', 's3:AbortMultipartUpload',
  's3:PutObjectTagging', 's3:DeleteObjectTagging', 's3:PutObjectRetention', 's3:PutObjectLegalHold', 's3:PutObjectAcl', 's3:RestoreObject']);

export function keyAccessAllows(access: KeyAccess | undefined, action: string): boolean {
  if (access === undefined) return false;
  if (access === 'owner') return true;
  const reads = /^s3:(Get|List)/.test(action);
  return reads || (access === 'write' && OBJECT_WRITE_ACTIONS.has(action));
}

const KEY_CACHE_MS = 5000;
const keyGrantCache = new Map<string, { buckets: Record<string, KeyAccess>; expires: number }>();

async function keyGrants(ctx: S3Context, accessKeyId: string): Promise<Record<string, KeyAccess>> {
  const cached = keyGrantCache.get(accessKeyId);
  if (cached && cached.expires > Date.now()) return cached.buckets;
  const raw = await ctx.store.getRecord(KEYS_NAMESPACE, accessKeyId);
  const buckets = raw ? (JSON.parse(raw.toString('utf8')) as KeyRecordWithGrants).buckets ?? {} : {};
  if (keyGrantCache.size > 10_000) keyGrantCache.clear();
  keyGrantCache.set(accessKeyId, { buckets, expires: Date.now() + KEY_CACHE_MS });
  return buckets;
}

// ---------------------------------------------------------------- ACL documents

export function ownerGrant(owner: BucketOwner): Grant {
  return { grantee: { type: 'CanonicalUser', id: owner.id, displayName: owner.displayName }, permission: 'FULL_CONTROL' };
}

const group = (uri: string, permission: Permission): Grant => ({ grantee: { type: 'Group', uri }, permission });

/** The grants of a canned ACL (x-amz-acl). */
export function cannedGrants(acl: string, owner: BucketOwner): Grant[] {
  const owners = [ownerGrant(owner)];
  switch (acl) {
    case 'private': case 'bucket-owner-read': case 'bucket-owner-full-control': case 'aws-exec-read': return owners;
    case 'public-read': return [...owners, group(ALL_USERS, 'READ')];
    case 'public-read-write': return [...owners, group(ALL_USERS, 'READ'), group(ALL_USERS, 'WRITE')];
    case 'authenticated-read': return [...owners, group(AUTHENTICATED_USERS, 'READ')];
    case 'log-delivery-write': return [...owners, group(LOG_DELIVERY, 'WRITE'), group(LOG_DELIVERY, 'READ_ACP')];
    default: throw new S3Error('InvalidArgument', { message: `Invalid canned ACL: ${acl}`, fields: { ArgumentName: 'x-amz-acl', ArgumentValue: acl } });
  }
}

const GRANT_HEADERS: Record<string, Permission> = {
  'x-amz-grant-full-control': 'FULL_CONTROL', 'x-amz-grant-read': 'READ', 'x-amz-grant-write': 'WRITE',
  'x-amz-grant-read-acp': 'READ_ACP', 'x-amz-grant-write-acp': 'WRITE_ACP',
};

/** A grant to everyone, or to everyone with any access key. */
function isPublicGrant(grant: Grant): boolean {
  return grant.grantee.type === 'Group' && (grant.grantee.uri === ALL_USERS || grant.grantee.uri === AUTHENTICATED_USERS);
}

/** Whether an ACL (none counts) grants nothing beyond its owner's full control. */
export function aclGrantsOnlyOwner(owner: BucketOwner, acl: unknown): boolean {
  const grants = acl as Grant[] | undefined;
  return !grants || grants.every((g) => g.grantee.type === 'CanonicalUser' && g.grantee.id === owner.id && g.permission === 'FULL_CONTROL');
}

const aclsDisabled = (bucket: BucketRecord) => bucket.objectOwnership === 'BucketOwnerEnforced';

/**
 * The grants to store for what a request sets on `bucket` or an object in it. With ACLs disabled
 * (BucketOwnerEnforced) only the owner's full control is accepted, and nothing is stored; under
 * BlockPublicAcls a public grant is refused.
 */
export function grantsFor(bucket: BucketRecord, grants: Grant[] | undefined): Grant[] | undefined {
  if (aclsDisabled(bucket)) {
    if (!aclGrantsOnlyOwner(bucket.owner, grants)) throw new S3Error('AccessControlListNotSupported');
    return undefined;
  }
  if (bucket.publicAccessBlock?.blockPublicAcls && grants?.some(isPublicGrant)) {
    throw new S3Error('AccessDenied', { message: 'Public ACLs are blocked by the bucket\'s public access block' });
  }
  return grants;
}

/** The grants GetBucketAcl / GetObjectAcl show: the owner's full control alone while ACLs are disabled. */
export function shownGrants(bucket: BucketRecord, grants: Grant[] | undefined): Grant[] | undefined {
  return aclsDisabled(bucket) ? undefined : grants;
}

/** Grants from x-amz-acl or x-amz-grant-* (`id="..."`, `uri="..."` lists); undefined when neither is sent. */
export function aclFromHeaders(ctx: S3Context, owner: BucketOwner): Grant[] | undefined {
  const canned = header(ctx.request, 'x-amz-acl');
  const explicit = Object.entries(GRANT_HEADERS).flatMap(([name, permission]) => grantsFromHeader(header(ctx.request, name), permission));
  if (canned !== undefined && explicit.length > 0) {
    throw new S3Error('InvalidRequest', { message: 'Specifying both Canned ACLs and Header Grants is not allowed' });
  }
  if (canned !== undefined) return cannedGrants(canned.trim(), owner);
  return explicit.length > 0 ? [ownerGrant(owner), ...explicit] : undefined;
}

function grantsFromHeader(value: string | undefined, permission: Permission): Grant[] {
  if (value === undefined) return [];
  return value.split(',').map((item) => {
    const m = /^\s*(id|uri|emailAddress)\s*=\s*"?([^"]*)"?\s*$/i.exec(item);
    if (!m) throw new S3Error('InvalidArgument', { message: `Invalid grant: ${item}` });
    if (m[1]!.toLowerCase() === 'emailaddress') throw new S3Error('NotImplemented', { message: 'Grants by email address are not supported' });
    const grantee: Grantee = m[1]!.toLowerCase() === 'uri' ? { type: 'Group', uri: m[2]! } : { type: 'CanonicalUser', id: m[2]! };
    return { grantee, permission };
  });
}

/** An `<AccessControlPolicy>` request body. */
export function aclFromXml(document: ParsedXml): Grant[] {
  const policy = xmlChild(document, 'AccessControlPolicy');
  const list = xmlChild(policy, 'AccessControlList');
  if (!policy || !list) throw new S3Error('MalformedACLError');
  return xmlChildren(list, 'Grant').map((grant) => {
    const grantee = xmlChild(grant, 'Grantee');
    const permission = xmlText(grant, 'Permission') as Permission | undefined;
    if (!grantee || permission === undefined || !PERMISSIONS.has(permission)) throw new S3Error('MalformedACLError');
    const uri = xmlText(grantee, 'URI');
    const id = xmlText(grantee, 'ID');
    if (uri !== undefined) return { grantee: { type: 'Group', uri }, permission };
    if (id !== undefined) return { grantee: { type: 'CanonicalUser', id, displayName: xmlText(grantee, 'DisplayName') }, permission };
    if (xmlText(grantee, 'EmailAddress') !== undefined) throw new S3Error('NotImplemented', { message: 'Grants by email address are not supported' });
    throw new S3Error('MalformedACLError');
  });
}

/** The `<AccessControlPolicy>` answer of GetBucketAcl / GetObjectAcl. */
export function aclXml(owner: BucketOwner, grants: Grant[] | undefined): XmlObject {
  return {
    Owner: { ID: owner.id, DisplayName: owner.displayName },
    AccessControlList: {
      Grant: (grants ?? [ownerGrant(owner)]).map((grant) => ({
        Grantee: grant.grantee.type === 'Group'
          ? { '@_xmlns:xsi': 'http://www.w3.org/2001/XMLSchema-instance', '@_xsi:type': 'Group', URI: grant.grantee.uri }
          : { '@_xmlns:xsi': 'http://www.w3.org/2001/XMLSchema-instance', '@_xsi:type': 'CanonicalUser', ID: grant.grantee.id, DisplayName: grant.grantee.displayName ?? grant.grantee.id },
        Permission: grant.permission,
      })),
    },
  };
}

// ---------------------------------------------------------------- evaluation

const BUCKET_ACL_PERMISSION: Record<string, Permission> = {
  's3:ListBucket': 'READ', 's3:ListBucketVersions': 'READ', 's3:ListBucketMultipartUploads': 'READ',
  's3:PutObject': 'WRITE', 's3:DeleteObject': 'WRITE', 's3:DeleteObjectVersion': 'WRITE', 's3:AbortMultipartUpload': 'WRITE',
  's3:ListMultipartUploadParts': 'WRITE', 's3:GetBucketAcl': 'READ_ACP', 's3:PutBucketAcl': 'WRITE_ACP',
};

const OBJECT_ACL_PERMISSION: Record<string, Permission> = {
  's3:GetObject': 'READ', 's3:GetObjectVersion': 'READ', 's3:GetObjectAcl': 'READ_ACP', 's3:PutObjectAcl': 'WRITE_ACP',
};

function granteeMatches(grantee: Grantee, principal: Principal): boolean {
  if (grantee.type === 'CanonicalUser') return principal.accessKeyId !== undefined && grantee.id === principal.userId;
  return grantee.uri === ALL_USERS || (grantee.uri === AUTHENTICATED_USERS && principal.accessKeyId !== undefined);
}

export function grantsAllow(grants: Grant[] | undefined, principal: Principal, permission: Permission | undefined): boolean {
  if (permission === undefined || !grants) return false;
  return grants.some((g) => (g.permission === permission || g.permission === 'FULL_CONTROL') && granteeMatches(g.grantee, principal));
}

/** The grants that count on `bucket` and its objects: none with ACLs disabled, no public ones under IgnorePublicAcls. */
function effectiveGrants(bucket: BucketRecord, grants: Grant[] | undefined): Grant[] | undefined {
  if (aclsDisabled(bucket)) return undefined;
  return bucket.publicAccessBlock?.ignorePublicAcls ? grants?.filter((g) => !isPublicGrant(g)) : grants;
}

async function objectGrants(ctx: S3Context, resource: Resource): Promise<Grant[] | undefined> {
  const versionId = ctx.address.key === resource.key ? ctx.address.query.get('versionId') ?? undefined : undefined;
  const version = await ctx.store.getVersion(resource.bucket!, resource.key!, versionId);
  return version && !version.deleteMarker ? attributesOf(version).acl : undefined;
}

async function ownershipAndAcls(ctx: S3Context, principal: Principal, action: string, resource: Resource): Promise<'Allow' | 'Abstain'> {
  if (principal.isRoot || resource.bucket === undefined) return 'Abstain';
  const bucket = await ctx.buckets.get(resource.bucket);
  // A missing bucket is for the operation to report (NoSuchBucket) to anyone holding a key.
  if (!bucket) return principal.accessKeyId !== undefined ? 'Allow' : 'Abstain';
  if (principal.accessKeyId !== undefined) {
    if (bucket.owner.id === principal.userId) return 'Allow';
    if (keyAccessAllows((await keyGrants(ctx, principal.accessKeyId))[bucket.name], action)) return 'Allow';
  }
  if (grantsAllow(effectiveGrants(bucket, bucket.acl as Grant[] | undefined), principal, BUCKET_ACL_PERMISSION[action])) return 'Allow';
  const objectPermission = OBJECT_ACL_PERMISSION[action];
  if (objectPermission !== undefined && resource.key !== undefined
    && grantsAllow(effectiveGrants(bucket, await objectGrants(ctx, resource)), principal, objectPermission)) return 'Allow';
  return 'Abstain';
}

registerAuthorizer(ownershipAndAcls);

