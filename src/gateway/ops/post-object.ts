// Browser uploads: POST Object with a multipart/form-data body. The form carries the key, a
// base64 policy document signed with SigV4 (x-amz-signature) or SigV2 (signature), metadata
// fields, and finally the file, which streams straight into the store. The policy's conditions
// (exact matches, starts-with, content-length-range) are checked against every field.
import { createHmac } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { type Readable, Transform, type TransformCallback } from 'node:stream';
import busboy from 'busboy';
import { authorize, resourceOf } from '../auth/authorize.js';
import { ANONYMOUS, type Principal } from '../auth/keys.js';
import { ALGORITHM, signHex, signingKey, signaturesEqual } from '../auth/sigv4.js';
import { type BucketRecord, writeTargetFor } from '../bucket-record.js';
import { header, requireBucket, type S3Context, sendEmpty, sendXml } from '../context.js';
import { S3Error } from '../errors.js';
import type { OperationSpec } from '../router.js';
import { parseXml, xmlChild, xmlChildren, xmlText } from '../xml.js';
import { MAX_OBJECT_BYTES, storedChecksumHeaders, versionFieldsFromHeaders, versionIdHeader, writeVersion } from './put.js';

/** Form fields by lower-case name (S3 matches field names case-insensitively). */
type Fields = Map<string, string>;

interface Form {
  fields: Fields;
  file: Readable;
  filename: string;
  /** Settles when the whole body has been parsed. */
  finished: Promise<void>;
}

const MAX_FIELDS_BYTES = 20 * 1024;

/** Parse fields up to the file part (the last one that counts; later fields are ignored). */
function readForm(ctx: S3Context): Promise<Form> {
  const contentType = header(ctx.request, 'content-type') ?? '';
  if (!/^multipart\/form-data/i.test(contentType)) throw new S3Error('MalformedPOSTRequest');
  return new Promise((resolve, reject) => {
    const fields: Fields = new Map();
    let parser: busboy.Busboy;
    try {
      parser = busboy({ headers: { 'content-type': contentType }, limits: { fieldSize: MAX_FIELDS_BYTES, files: 1 } });
    } catch {
      throw new S3Error('MalformedPOSTRequest');
    }
    let fileSeen = false;
    const finished = new Promise<void>((done, fail) => {
      parser.on('close', () => done());
      parser.on('error', (err) => fail(err));
    });
    finished.catch(() => undefined);
    parser.on('field', (name, value) => { if (!fileSeen) fields.set(name.toLowerCase(), value); });
    parser.on('file', (_name, stream, info) => {
      fileSeen = true;
      resolve({ fields, file: stream, filename: info.filename ?? '', finished });
    });
    parser.on('close', () => {
      if (!fileSeen) reject(new S3Error('InvalidArgument', { message: 'POST requires exactly one file upload per request.', fields: { ArgumentName: 'file', ArgumentValue: '0' } }));
    });
    parser.on('error', () => reject(new S3Error('MalformedPOSTRequest')));
    ctx.body.stream(MAX_OBJECT_BYTES + MAX_FIELDS_BYTES * 64).on('error', (err) => parser.destroy(err)).pipe(parser);
  });
}

// ---------------------------------------------------------------- signature and policy

/** The principal whose key signed the policy; anonymous when the form carries no signature. */
async function formPrincipal(ctx: S3Context, fields: Fields): Promise<Principal> {
  const policy = fields.get('policy');
  const v4 = fields.get('x-amz-signature');
  const v2 = fields.get('signature');
  if (v4 === undefined && v2 === undefined) return ANONYMOUS;
  if (policy === undefined) throw new S3Error('InvalidArgument', { message: 'Bucket POST must contain a field named \'policy\'.', fields: { ArgumentName: 'policy' } });
  if (v4 !== undefined) {
    if (fields.get('x-amz-algorithm') !== ALGORITHM) throw new S3Error('InvalidArgument', { message: 'Unsupported x-amz-algorithm', fields: { ArgumentName: 'x-amz-algorithm' } });
    const parts = (fields.get('x-amz-credential') ?? '').split('/');
    if (parts.length !== 5 || parts[4] !== 'aws4_request') throw new S3Error('InvalidArgument', { message: 'Invalid x-amz-credential', fields: { ArgumentName: 'x-amz-credential' } });
    const [accessKeyId, date, region, service] = parts as [string, string, string, string];
    const key = await requireKey(ctx, accessKeyId);
    const expected = signHex(signingKey(key.secretAccessKey, { accessKeyId, date, region, service, scope: parts.slice(1).join('/') }), policy);
    if (!signaturesEqual(expected, v4)) throw new S3Error('SignatureDoesNotMatch', { fields: { AWSAccessKeyId: accessKeyId } });
    return key.principal;
  }
  const accessKeyId = fields.get('awsaccesskeyid') ?? '';
  const key = await requireKey(ctx, accessKeyId);
  const expected = createHmac('sha1', key.secretAccessKey).update(policy).digest('base64');
  if (!signaturesEqual(expected, v2!)) throw new S3Error('SignatureDoesNotMatch', { fields: { AWSAccessKeyId: accessKeyId } });
  return key.principal;
}

async function requireKey(ctx: S3Context, accessKeyId: string) {
  const key = await ctx.keys.lookup(accessKeyId);
  if (!key) throw new S3Error('InvalidAccessKeyId', { fields: { AWSAccessKeyId: accessKeyId } });
  return key;
}

type Condition = Record<string, string> | [string, string | number, string | number];

interface PolicyDocument {
  expiration?: string;
  conditions?: Condition[];
}

function policyFailure(message: string): S3Error {
  return new S3Error('AccessDenied', { message: `Invalid according to Policy: ${message}` });
}

/** Fields the policy need not mention. */
const UNCHECKED_FIELDS = new Set(['policy', 'x-amz-signature', 'signature', 'awsaccesskeyid', 'file']);

/**
 * Check the policy against the form: not expired, every condition holds, every field covered.
 * Returns the content-length-range to hold the file to.
 */
export function checkPostPolicy(policyBase64: string, fields: Fields, bucket: string, now = Date.now()): { min: number; max: number } {
  let document: PolicyDocument;
  try {
    document = JSON.parse(Buffer.from(policyBase64, 'base64').toString('utf8')) as PolicyDocument;
  } catch {
    throw new S3Error('InvalidPolicyDocument', { message: 'Invalid Policy: Invalid JSON.' });
  }
  const expiration = document.expiration === undefined ? NaN : Date.parse(document.expiration);
  if (Number.isNaN(expiration)) throw new S3Error('InvalidPolicyDocument', { message: 'Invalid Policy: Policy missing expiration.' });
  if (expiration < now) throw policyFailure('Policy expired.');
  const value = (name: string) => (name === 'bucket' ? bucket : fields.get(name) ?? '');
  const covered = new Set<string>(['bucket']);
  let range = { min: 0, max: MAX_OBJECT_BYTES };
  for (const condition of document.conditions ?? []) {
    if (Array.isArray(condition)) {
      const [operator, a, b] = condition;
      if (String(operator).toLowerCase() === 'content-length-range') {
        range = { min: Number(a), max: Number(b) };
        continue;
      }
      const name = String(a).replace(/^\$/, '').toLowerCase();
      covered.add(name);
      const ok = String(operator).toLowerCase() === 'eq' ? value(name) === String(b)
        : String(operator).toLowerCase() === 'starts-with' ? value(name).startsWith(String(b)) : false;
      if (!ok) throw policyFailure(`Policy Condition failed: ["${operator}", "${a}", "${b}"]`);
    } else {
      for (const [rawName, expected] of Object.entries(condition)) {
        const name = rawName.toLowerCase();
        covered.add(name);
        if (value(name) !== String(expected)) throw policyFailure(`Policy Condition failed: ["eq", "$${rawName}", "${expected}"]`);
      }
    }
  }
  const extra = [...fields.keys()].filter((name) => !covered.has(name) && !UNCHECKED_FIELDS.has(name) && !name.startsWith('x-ignore-'));
  if (extra.length > 0) throw policyFailure(`Extra input fields: ${extra.join(', ')}`);
  return range;
}

// ---------------------------------------------------------------- the upload

/** Fails the stream when the file is outside content-length-range. */
class LengthRange extends Transform {
  private size = 0;
  /** Kept because the store reports its own error when the stream fails. */
  failure: S3Error | undefined;
  constructor(private readonly range: { min: number; max: number }) { super(); }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.size += chunk.length;
    if (this.size > this.range.max) this.failure = new S3Error('EntityTooLarge', { fields: { ProposedSize: this.size, MaxSizeAllowed: this.range.max } });
    callback(this.failure, chunk);
  }
  override _flush(callback: TransformCallback): void {
    if (this.size < this.range.min) this.failure = new S3Error('EntityTooSmall', { fields: { ProposedSize: this.size, MinSizeAllowed: this.range.min } });
    callback(this.failure);
  }
}

/** Form fields that S3 takes as the headers of a PUT of the same object. */
function formAsRequestHeaders(fields: Fields): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of fields) {
    if (name === 'acl') headers['x-amz-acl'] = value;
    else if (name === 'tagging') headers['x-amz-tagging'] = tagsQuery(value);
    else if (name.startsWith('x-amz-') || ['content-type', 'cache-control', 'content-disposition', 'content-encoding', 'content-language', 'expires'].includes(name)) headers[name] = value;
  }
  return headers;
}

/** The form's `tagging` field is a <Tagging> document; PUT takes the same tags as a query string. */
function tagsQuery(xml: string): string {
  const tags = xmlChildren(xmlChild(xmlChild(parseXml(xml, ['Tag']), 'Tagging'), 'TagSet'), 'Tag');
  return new URLSearchParams(tags.map((tag): [string, string] => [xmlText(tag, 'Key') ?? '', xmlText(tag, 'Value') ?? ''])).toString();
}

/** The request as the PUT building blocks read it: form fields in place of headers. */
function asPutRequest(ctx: S3Context, fields: Fields): S3Context {
  const headers = formAsRequestHeaders(fields);
  const request = { headers, rawHeaders: Object.entries(headers).flat() } as unknown as IncomingMessage;
  return { ...ctx, request };
}

function successResponse(ctx: S3Context, bucket: BucketRecord, key: string, fields: Fields, etag: string): void {
  const location = `http://${header(ctx.request, 'host') ?? 'localhost'}/${bucket.name}/${key.split('/').map(encodeURIComponent).join('/')}`;
  void ctx.reply.headers({ etag, location });
  const redirect = fields.get('success_action_redirect') ?? fields.get('redirect');
  if (redirect !== undefined && /^https?:\/\//i.test(redirect)) {
    const target = new URL(redirect);
    target.searchParams.set('bucket', bucket.name);
    target.searchParams.set('key', key);
    target.searchParams.set('etag', etag);
    void ctx.reply.code(303).header('location', target.toString()).send();
    return;
  }
  const status = fields.get('success_action_status');
  if (status === '201') sendXml(ctx, 'PostResponse', { Location: location, Bucket: bucket.name, Key: key, ETag: etag }, 201);
  else sendEmpty(ctx, status === '200' ? 200 : 204);
}

async function postObject(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const form = await readForm(ctx);
  try {
    const rawKey = form.fields.get('key');
    if (rawKey === undefined || rawKey === '') throw new S3Error('InvalidArgument', { message: 'Bucket POST must contain a field named \'key\'.', fields: { ArgumentName: 'key' } });
    const key = rawKey.replace(/\$\{filename\}/g, form.filename);
    const principal = await formPrincipal(ctx, form.fields);
    await authorize(ctx, principal, 's3:PutObject', resourceOf(bucket.name, key));
    const policy = form.fields.get('policy');
    const range = policy === undefined ? { min: 0, max: MAX_OBJECT_BYTES } : checkPostPolicy(policy, form.fields, bucket.name);
    const putView = asPutRequest({ ...ctx, principal }, form.fields);
    const fields = versionFieldsFromHeaders(putView, bucket);
    const body = new LengthRange(range);
    // A failure reaches the store through `body`; the rest of the file is still read, so the
    // form parser finishes and the client gets the error.
    body.on('error', () => { form.file.unpipe(body); form.file.resume(); });
    form.file.on('error', (err) => body.destroy(err));
    form.file.pipe(body);
    const version = await writeVersion(ctx, writeTargetFor(bucket, key), body, fields).catch((err: unknown) => { throw body.failure ?? err; });
    await form.finished;
    void ctx.reply.headers({ ...versionIdHeader(bucket, version), ...storedChecksumHeaders(version.checksums) });
    successResponse(ctx, bucket, key, form.fields, version.etag ?? '');
  } catch (err) {
    // Read the rest of the form so the client sees the error rather than a reset connection.
    form.file.resume();
    await form.finished.catch(() => undefined);
    throw err;
  }
}

export const operations: OperationSpec[] = [
  // Authenticated inside: the credentials travel in the form, not in headers.
  { name: 'PostObject', method: 'POST', scope: 'bucket', action: undefined, handle: postObject },
];
