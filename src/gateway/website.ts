// The static-website endpoint. With `--website-domain D`, a request whose Host is `<bucket>.D` is
// a website request and is answered as S3's website endpoints answer: anonymous GET and HEAD only
// (an object must be publicly readable, by policy or ACL), the index document for `/` and `dir/`,
// `dir` redirected to `dir/` when only its index exists, routing rules, redirect-all and objects'
// x-amz-website-redirect-location as redirects, and errors as HTML pages or the bucket's error
// document with the error's status.
import type { ObjectVersion } from '../replication/types.js';
import { ANONYMOUS } from './auth/keys.js';
import { authorize, resourceOf } from './auth/authorize.js';
import type { BucketRecord } from './bucket-record.js';
import { header, type S3Context } from './context.js';
import { isServerFault, S3Error, toS3Error } from './errors.js';
import { resolveVersion, sendVersion, sendWholeObject } from './ops/get.js';
import { type RoutingRule, type WebsiteConfiguration, websiteOf } from './ops/website.js';

/** Answers one website request; never throws (errors become pages). */
export async function serveWebsite(ctx: S3Context): Promise<void> {
  try {
    await serve(ctx);
  } catch (err) {
    await sendErrorPage(ctx, toS3Error(err));
  }
}

async function serve(ctx: S3Context): Promise<void> {
  const bucket = await ctx.buckets.get(ctx.address.bucket!);
  if (!bucket) throw new S3Error('NoSuchBucket', { fields: { BucketName: ctx.address.bucket! } });
  const website = websiteOf(bucket);
  if (!website) throw new S3Error('NoSuchWebsiteConfiguration', { fields: { BucketName: bucket.name } });
  if (website.redirectAll) {
    return redirect(ctx, 301, `${website.redirectAll.protocol ?? schemeOf(ctx)}://${website.redirectAll.hostName}${ctx.address.rawPath}`);
  }
  if (ctx.method !== 'GET' && ctx.method !== 'HEAD') throw new S3Error('MethodNotAllowed', { fields: { Method: ctx.method, ResourceType: 'OBJECT' } });
  const requested = ctx.address.key ?? '';
  const before = matchingRule(website, requested, undefined);
  if (before) return redirectByRule(ctx, before, requested);
  const key = requested === '' || requested.endsWith('/') ? requested + website.indexSuffix! : requested;
  try {
    const objectCtx = objectContext(ctx, key);
    await authorize(objectCtx, ANONYMOUS, 's3:GetObject', resourceOf(bucket.name, key));
    const version = await resolveVersion(objectCtx, bucket, key, undefined);
    const redirectTo = version.headers?.['x-amz-website-redirect-location'];
    if (redirectTo !== undefined) return redirect(ctx, 301, redirectTo);
    await sendVersion(objectCtx, bucket, version);
  } catch (err) {
    const error = toS3Error(err);
    if (error.code === 'NoSuchKey' && key === requested && await publicVersion(ctx, bucket, `${requested}/${website.indexSuffix}`)) {
      return redirect(ctx, 302, `/${encodeKey(requested)}/`);
    }
    const onError = matchingRule(website, requested, error.status);
    if (onError) return redirectByRule(ctx, onError, requested);
    await sendErrorPage(ctx, error, website.errorKey !== undefined ? { bucket, key: website.errorKey } : undefined);
  }
}

/** The request re-aimed at one object, without the query (website requests take no S3 parameters). */
function objectContext(ctx: S3Context, key: string): S3Context {
  return { ...ctx, address: { ...ctx.address, key, query: new URLSearchParams() }, principal: ANONYMOUS };
}

/** The current version of `key` if anonymous readers may read it, else undefined. */
async function publicVersion(ctx: S3Context, bucket: BucketRecord, key: string): Promise<ObjectVersion | undefined> {
  try {
    await authorize(objectContext(ctx, key), ANONYMOUS, 's3:GetObject', resourceOf(bucket.name, key));
    const version = await ctx.store.getVersion(bucket.name, key);
    return version && !version.deleteMarker ? version : undefined;
  } catch {
    return undefined;
  }
}

/** The first rule whose condition holds: before the lookup (`status` undefined) only rules without an error code. */
function matchingRule(website: WebsiteConfiguration, key: string, status: number | undefined): RoutingRule | undefined {
  return website.routingRules?.find(({ condition }) => {
    if (condition?.keyPrefixEquals !== undefined && !key.startsWith(condition.keyPrefixEquals)) return false;
    return condition?.httpErrorCodeReturnedEquals === status;
  });
}

function redirectByRule(ctx: S3Context, rule: RoutingRule, key: string): void {
  const { redirect: to, condition } = rule;
  const newKey = to.replaceKeyWith
    ?? (to.replaceKeyPrefixWith !== undefined ? to.replaceKeyPrefixWith + key.slice(condition?.keyPrefixEquals?.length ?? 0) : key);
  const host = to.hostName ?? header(ctx.request, 'host') ?? '';
  redirect(ctx, to.httpRedirectCode ?? 301, `${to.protocol ?? schemeOf(ctx)}://${host}/${encodeKey(newKey)}`);
}

function redirect(ctx: S3Context, status: number, location: string): void {
  void ctx.reply.code(status).header('location', location).header('content-length', '0').send();
}

function schemeOf(ctx: S3Context): 'http' | 'https' {
  return 'encrypted' in ctx.request.socket && ctx.request.socket.encrypted ? 'https' : 'http';
}

function encodeKey(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}

/** The bucket's error document (when it is readable) with the error's status, else a small HTML page. */
async function sendErrorPage(ctx: S3Context, error: S3Error, errorDocument?: { bucket: BucketRecord; key: string }): Promise<void> {
  if (isServerFault(error)) ctx.log.error({ err: error.cause ?? error, code: error.code, bucket: ctx.address.bucket, key: ctx.address.key }, 'website request failed');
  if (ctx.reply.sent) {
    ctx.request.destroy(); // the body was under way: only cutting the connection tells the client
    return;
  }
  const document = errorDocument && error.status >= 400 && error.status < 500
    ? await publicVersion(ctx, errorDocument.bucket, errorDocument.key) : undefined;
  if (errorDocument && document) return sendWholeObject(objectContext(ctx, errorDocument.key), errorDocument.bucket, document, error.status);
  const title = `${error.status} ${error.message.length < 60 ? error.message : error.code}`;
  const items = [['Code', error.code], ['Message', error.message], ...Object.entries(error.fields), ['RequestId', ctx.requestId], ['HostId', ctx.config.hostId]];
  const html = `<html>\n<head><title>${escapeHtml(title)}</title></head>\n<body>\n<h1>${escapeHtml(title)}</h1>\n<ul>\n`
    + items.map(([name, value]) => `<li>${escapeHtml(String(name))}: ${escapeHtml(String(value))}</li>\n`).join('')
    + '</ul>\n<hr/>\n</body>\n</html>\n';
  void ctx.reply.removeHeader('content-length'); // set for an object that then failed to stream
  void ctx.reply.code(error.status).headers(error.headers).header('content-type', 'text/html; charset=utf-8');
  void ctx.reply.send(ctx.method === 'HEAD' ? undefined : html);
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
