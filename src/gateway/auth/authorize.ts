// Authorization: may this principal perform this action on this resource? Policy and ACL
// modules register authorizers; each returns Allow, Deny or Abstain. An explicit Deny wins;
// otherwise the root key is allowed, any key may list its buckets and create new ones, and
// everything else needs an Allow (bucket ownership, key grants, ACLs and policies: ../acl.ts, ../policy.ts).
import type { S3Context } from '../context.js';
import { S3Error } from '../errors.js';
import type { Principal } from './keys.js';

export type Decision = 'Allow' | 'Deny' | 'Abstain';

/** `arn:aws:s3:::bucket` or `arn:aws:s3:::bucket/key`, plus the parts for convenience. */
export interface Resource {
  arn: string;
  bucket?: string;
  key?: string;
}

export type Authorizer = (ctx: S3Context, principal: Principal, action: string, resource: Resource) => Promise<Decision> | Decision;

const authorizers: Authorizer[] = [];

/** Called by the policy / ACL modules at load time. */
export function registerAuthorizer(authorizer: Authorizer): void {
  authorizers.push(authorizer);
}

export function resourceOf(bucket: string | undefined, key: string | undefined): Resource {
  if (bucket === undefined) return { arn: 'arn:aws:s3:::*' };
  return { arn: key === undefined ? `arn:aws:s3:::${bucket}` : `arn:aws:s3:::${bucket}/${key}`, bucket, key };
}

export async function authorize(ctx: S3Context, principal: Principal, action: string, resource: Resource): Promise<void> {
  let allowed = principal.isRoot || (principal.accessKeyId !== undefined && (resource.bucket === undefined || action === 's3:CreateBucket'));
  for (const authorizer of authorizers) {
    const decision = await authorizer(ctx, principal, action, resource);
    if (decision === 'Deny') throw new S3Error('AccessDenied');
    if (decision === 'Allow') allowed = true;
  }
  if (!allowed) throw new S3Error('AccessDenied');
}
