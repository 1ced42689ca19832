// Put/Get/DeleteBucketWebsite: a bucket's static-website configuration (index and error
// documents, redirect-all, routing rules). The website endpoint that serves it is ../website.ts.
import type { BucketRecord } from '../bucket-record.js';
import { deleteBucketConfiguration, requireBucket, type S3Context, sendEmpty, sendXml } from '../context.js';
import { S3Error } from '../errors.js';
import type { OperationSpec } from '../router.js';
import { type ParsedXml, xmlChild, xmlChildren, xmlText, type XmlObject } from '../xml.js';

export interface WebsiteRedirect {
  hostName?: string;
  protocol?: 'http' | 'https';
  httpRedirectCode?: number;
  replaceKeyPrefixWith?: string;
  replaceKeyWith?: string;
}

export interface RoutingRule {
  condition?: { keyPrefixEquals?: string; httpErrorCodeReturnedEquals?: number };
  redirect: WebsiteRedirect;
}

export interface WebsiteConfiguration {
  indexSuffix?: string;
  errorKey?: string;
  redirectAll?: { hostName: string; protocol?: 'http' | 'https' };
  routingRules?: RoutingRule[];
}

const MAX_ROUTING_RULES = 50;

function invalid(message: string): S3Error {
  return new S3Error('InvalidArgument', { message });
}

function protocolOf(node: ParsedXml | undefined): 'http' | 'https' | undefined {
  const protocol = xmlText(node, 'Protocol');
  if (protocol !== undefined && protocol !== 'http' && protocol !== 'https') throw invalid('Invalid protocol, protocol can be http or https.');
  return protocol;
}

function parseRedirect(node: ParsedXml | undefined): WebsiteRedirect {
  if (!node) throw invalid('A routing rule must have a Redirect.');
  const code = xmlText(node, 'HttpRedirectCode');
  const redirect: WebsiteRedirect = {
    hostName: xmlText(node, 'HostName'),
    protocol: protocolOf(node),
    httpRedirectCode: code === undefined ? undefined : Number(code),
    replaceKeyPrefixWith: xmlText(node, 'ReplaceKeyPrefixWith'),
    replaceKeyWith: xmlText(node, 'ReplaceKeyWith'),
  };
  if (redirect.httpRedirectCode !== undefined && !(Number.isInteger(redirect.httpRedirectCode) && redirect.httpRedirectCode >= 300 && redirect.httpRedirectCode < 400)) {
    throw invalid('The provided HTTP redirect code is not valid. It should be a 3xx code.');
  }
  if (redirect.replaceKeyPrefixWith !== undefined && redirect.replaceKeyWith !== undefined) {
    throw invalid('You can only define ReplaceKeyPrefix or ReplaceKey but not both.');
  }
  if (Object.values(redirect).every((v) => v === undefined)) throw invalid('A Redirect must name at least one of its elements.');
  return redirect;
}

function parseRule(node: ParsedXml): RoutingRule {
  const condition = xmlChild(node, 'Condition');
  const errorCode = xmlText(condition, 'HttpErrorCodeReturnedEquals');
  if (errorCode !== undefined && !/^[45]\d\d$/.test(errorCode)) throw invalid('The provided HTTP error code is not valid. Valid codes are 4XX or 5XX.');
  return {
    condition: condition && { keyPrefixEquals: xmlText(condition, 'KeyPrefixEquals'), httpErrorCodeReturnedEquals: errorCode === undefined ? undefined : Number(errorCode) },
    redirect: parseRedirect(xmlChild(node, 'Redirect')),
  };
}

/** A `<WebsiteConfiguration>` checked as S3 checks it. */
export function parseWebsiteConfiguration(document: ParsedXml): WebsiteConfiguration {
  const root = xmlChild(document, 'WebsiteConfiguration');
  if (!root) throw new S3Error('MalformedXML');
  const redirectAll = xmlChild(root, 'RedirectAllRequestsTo');
  const indexSuffix = xmlText(xmlChild(root, 'IndexDocument'), 'Suffix');
  const errorKey = xmlText(xmlChild(root, 'ErrorDocument'), 'Key');
  const rules = xmlChildren(xmlChild(root, 'RoutingRules'), 'RoutingRule');
  if (redirectAll) {
    const hostName = xmlText(redirectAll, 'HostName');
    if (!hostName) throw invalid('RedirectAllRequestsTo must name a HostName.');
    if (indexSuffix !== undefined || errorKey !== undefined || rules.length > 0) {
      throw invalid('RedirectAllRequestsTo cannot be provided in conjunction with other Routing Rules.');
    }
    return { redirectAll: { hostName, protocol: protocolOf(redirectAll) } };
  }
  if (indexSuffix === undefined) throw invalid('A value for IndexDocument Suffix must be provided if RedirectAllRequestsTo is empty');
  if (indexSuffix === '' || indexSuffix.includes('/')) throw invalid('The IndexDocument Suffix is not well formed');
  if (errorKey === '') throw invalid('The ErrorDocument Key is not well formed');
  if (rules.length > MAX_ROUTING_RULES) throw invalid(`A website configuration can have at most ${MAX_ROUTING_RULES} routing rules.`);
  return { indexSuffix, errorKey, routingRules: rules.length > 0 ? rules.map(parseRule) : undefined };
}

function redirectXml(redirect: WebsiteRedirect): XmlObject {
  return {
    HostName: redirect.hostName,
    HttpRedirectCode: redirect.httpRedirectCode,
    Protocol: redirect.protocol,
    ReplaceKeyPrefixWith: redirect.replaceKeyPrefixWith,
    ReplaceKeyWith: redirect.replaceKeyWith,
  };
}

export function websiteXml(website: WebsiteConfiguration): XmlObject {
  if (website.redirectAll) return { RedirectAllRequestsTo: { HostName: website.redirectAll.hostName, Protocol: website.redirectAll.protocol } };
  return {
    IndexDocument: { Suffix: website.indexSuffix },
    ErrorDocument: website.errorKey !== undefined ? { Key: website.errorKey } : undefined,
    RoutingRules: website.routingRules && {
      RoutingRule: website.routingRules.map((rule) => ({
        Condition: rule.condition && { KeyPrefixEquals: rule.condition.keyPrefixEquals, HttpErrorCodeReturnedEquals: rule.condition.httpErrorCodeReturnedEquals },
        Redirect: redirectXml(rule.redirect),
      })),
    },
  };
}

export function websiteOf(bucket: BucketRecord): WebsiteConfiguration | undefined {
  return bucket.website as WebsiteConfiguration | undefined;
}

async function putBucketWebsite(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  await ctx.buckets.put({ ...bucket, website: parseWebsiteConfiguration(await ctx.body.xml(['RoutingRule'])) });
  sendEmpty(ctx);
}

async function getBucketWebsite(ctx: S3Context): Promise<void> {
  const bucket = await requireBucket(ctx);
  const website = websiteOf(bucket);
  if (!website) throw new S3Error('NoSuchWebsiteConfiguration', { fields: { BucketName: bucket.name } });
  sendXml(ctx, 'WebsiteConfiguration', websiteXml(website));
}

export const operations: OperationSpec[] = [
  { name: 'PutBucketWebsite', method: 'PUT', scope: 'bucket', subresource: 'website', action: 's3:PutBucketWebsite', handle: putBucketWebsite },
  { name: 'GetBucketWebsite', method: 'GET', scope: 'bucket', subresource: 'website', action: 's3:GetBucketWebsite', handle: getBucketWebsite },
  { name: 'DeleteBucketWebsite', method: 'DELETE', scope: 'bucket', subresource: 'website', action: 's3:DeleteBucketWebsite', handle: deleteBucketConfiguration('website') },
];
