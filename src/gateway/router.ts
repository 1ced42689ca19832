// How a request reaches its operation
// ==================================
// server.ts      fastify with body parsing off; one catch-all route hands every request to
//                `handleS3Request` (server.ts) which runs, in order:
//   1. resolveAddress (this file)    bucket + key from path-style `/bucket/key` or virtual-hosted
//                                    `bucket.<baseDomain>/key`; keys are percent-decoded once and
//                                    otherwise taken byte for byte (`//`, `..`, trailing `/` kept).
//   2. authenticate (auth/index.ts)  SigV4 / SigV2, header or query -> Principal, plus the payload
//                                    plan (how body bytes are verified while they stream).
//   3. OperationTable.select (here)  method + scope (service | bucket | object) + query sub-resource
//                                    (+ an optional `when` test on headers/params) -> OperationSpec.
//   4. authorize (auth/authorize.ts) principal + spec.action + resource; policy/ACL modules plug in
//                                    with registerAuthorizer().
//   5. spec.handle(ctx)              the operation answers through ctx.reply (helpers in context.ts).
//   Anything thrown becomes an S3 XML error in errors.ts (the only place errors are mapped; add
//   new codes to its catalog).
//
// Adding an operation family = a module under ops/ exporting `operations: OperationSpec[]` + one
// line in ops/index.ts. A module reads the request through S3Context (context.ts):
//   ctx.address.{bucket,key,query}, header(ctx.request, name), queryParam/intParam(ctx, name),
//   requireBucket(ctx) (the BucketRecord or NoSuchBucket), ctx.body.chunks(maxBytes) (or .stream) for verified
//   object bytes, ctx.body.xml() / optionalXml() for small configuration documents,
//   ctx.buckets.put(record) to change a bucket's configuration (fields in bucket-record.ts),
//   ctx.store for the ObjectStore, sendXml/sendEmpty to answer.
// Shared building blocks, to reuse rather than re-derive: ops/put.ts (versionFieldsFromHeaders,
// writeVersion, storedChecksumHeaders, versionIdHeader), ops/get.ts (resolveVersion, objectHeaders,
// evaluateConditions, parseRange), ops/delete.ts (deleteObject: the one place a key or version is
// deleted, where object-lock checks belong), bucket-record.ts (writeTargetFor).
// Sub-resources in KNOWN_SUBRESOURCES without a registered operation answer NotImplemented.
import type { S3Context } from './context.js';
import { S3Error } from './errors.js';

export type HttpMethod = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE' | 'OPTIONS';
export const HTTP_METHODS: readonly HttpMethod[] = ['GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'OPTIONS'];

/** What the request addresses: the account (service), a bucket, or an object in a bucket. */
export type Scope = 'service' | 'bucket' | 'object';

/** Query parameters that name an S3 sub-resource (and so select an operation). */
export const KNOWN_SUBRESOURCES = new Set([
  'abac', 'accelerate', 'acl', 'analytics', 'attributes', 'cors', 'delete', 'encryption', 'intelligent-tiering',
  'inventory', 'legal-hold', 'lifecycle', 'location', 'logging', 'metadataConfiguration', 'metadataInventoryTable',
  'metadataJournalTable', 'metadataTable', 'metrics', 'notification', 'object-lock', 'ownershipControls', 'policy',
  'policyStatus', 'publicAccessBlock', 'renameObject', 'replication', 'requestPayment', 'restore', 'retention',
  'select', 'session', 'tagging', 'torrent', 'uploadId', 'uploads', 'versioning', 'versions', 'website',
]);

export interface Address {
  bucket?: string;
  key?: string;
  /** The path exactly as sent, still percent-encoded (signatures and error Resources use it). */
  rawPath: string;
  query: URLSearchParams;
  virtualHosted: boolean;
}

export interface OperationSpec {
  /** The S3 API name, e.g. 'PutObject' (logs and metrics). */
  name: string;
  method: HttpMethod;
  scope: Scope;
  /** The query sub-resource that selects this operation (`?tagging`), if any. */
  subresource?: string;
  /** Further selection on headers or parameter values (x-amz-copy-source, list-type=2). */
  when?: (address: Address, header: (name: string) => string | undefined) => boolean;
  /** The IAM action passed to authorize(); undefined only for unauthenticated protocol calls (CORS preflight). */
  action: string | undefined;
  handle(ctx: S3Context): Promise<void>;
}

export const MAX_KEY_BYTES = 1024;

export function scopeOf(address: Address): Scope {
  if (address.bucket === undefined) return 'service';
  return address.key === undefined ? 'bucket' : 'object';
}

function decodePathPart(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new S3Error('InvalidURI');
  }
}

/** Bucket and key of a request, from the raw request-target and Host header. */
export function resolveAddress(url: string, host: string | undefined, baseDomain?: string): Address {
  const queryStart = url.indexOf('?');
  const rawPath = queryStart < 0 ? url : url.slice(0, queryStart);
  const query = new URLSearchParams(queryStart < 0 ? '' : url.slice(queryStart + 1));
  if (!rawPath.startsWith('/')) throw new S3Error('InvalidURI');

  const hostBucket = bucketFromHost(host, baseDomain);
  if (hostBucket !== undefined) {
    const key = rawPath.length > 1 ? decodePathPart(rawPath.slice(1)) : undefined;
    return checkKey({ bucket: hostBucket, key, rawPath, query, virtualHosted: true });
  }
  const slash = rawPath.indexOf('/', 1);
  const bucketPart = slash < 0 ? rawPath.slice(1) : rawPath.slice(1, slash);
  const keyPart = slash < 0 ? '' : rawPath.slice(slash + 1);
  return checkKey({
    bucket: bucketPart === '' ? undefined : decodePathPart(bucketPart),
    key: keyPart === '' ? undefined : decodePathPart(keyPart),
    rawPath,
    query,
    virtualHosted: false,
  });
}

function checkKey(address: Address): Address {
  if (address.key !== undefined && Buffer.byteLength(address.key) > MAX_KEY_BYTES) {
    throw new S3Error('KeyTooLongError', { fields: { Size: Buffer.byteLength(address.key), MaxSizeAllowed: MAX_KEY_BYTES } });
  }
  return address;
}

/** `photos.s3.example.com` with baseDomain `s3.example.com` -> `photos`. */
export function bucketFromHost(host: string | undefined, baseDomain: string | undefined): string | undefined {
  if (!host || !baseDomain) return undefined;
  const name = stripPort(host).toLowerCase();
  const suffix = `.${baseDomain.toLowerCase()}`;
  return name.endsWith(suffix) && name.length > suffix.length ? name.slice(0, -suffix.length) : undefined;
}

function stripPort(host: string): string {
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1); // [::1]:9000
  const colon = host.lastIndexOf(':');
  return colon < 0 ? host : host.slice(0, colon);
}

/** The operation table: modules register specs; a request selects exactly one or gets an S3 error. */
export class OperationTable {
  private readonly specs: OperationSpec[] = [];

  register(specs: readonly OperationSpec[]): this {
    for (const spec of specs) {
      const clash = this.specs.find((s) => s.method === spec.method && s.scope === spec.scope
        && s.subresource === spec.subresource && s.when === undefined && spec.when === undefined);
      if (clash) throw new Error(`operations ${clash.name} and ${spec.name} select on the same request shape`);
      this.specs.push(spec);
    }
    return this;
  }

  select(method: string, address: Address, header: (name: string) => string | undefined): OperationSpec {
    const scope = scopeOf(address);
    const present = [...new Set(address.query.keys())].filter((name) => KNOWN_SUBRESOURCES.has(name));
    const inScope = this.specs.filter((s) => s.scope === scope);
    const unsupported = present.find((name) => !inScope.some((s) => s.subresource === name));
    if (unsupported !== undefined) {
      throw new S3Error('NotImplemented', { message: `The ${unsupported} sub-resource is not implemented for this request.` });
    }
    // With a sub-resource present, only operations on that sub-resource qualify; otherwise only plain ones.
    const candidates = inScope.filter((s) => (present.length > 0
      ? s.subresource !== undefined && present.includes(s.subresource)
      : s.subresource === undefined) && (s.when === undefined || s.when(address, header)));
    const forMethod = candidates.filter((s) => s.method === method);
    // A specific `when` match beats the general operation (CopyObject over PutObject).
    const chosen = forMethod.find((s) => s.when !== undefined) ?? forMethod[0];
    if (chosen) return chosen;
    throw new S3Error('MethodNotAllowed', { fields: { Method: method, ResourceType: scope === 'object' ? 'OBJECT' : scope === 'bucket' ? 'BUCKET' : 'SERVICE' } });
  }
}
