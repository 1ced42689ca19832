// The static-website endpoint (`--website-domain`): a bucket configured with the aws CLI's
// `s3 website` and the SDK's PutBucketWebsite serves its public objects at <bucket>.<domain> as
// S3's website endpoints do — index documents, directory redirects, the error document with the
// error's status, routing rules, redirect-all — while the S3 API on the same port is unchanged.
import { execFile } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { promisify } from 'node:util';
import {
  CreateBucketCommand, DeleteBucketWebsiteCommand, GetBucketWebsiteCommand, PutBucketPolicyCommand, PutBucketWebsiteCommand, PutObjectCommand,
} from '@aws-sdk/client-s3';
import t from 'tap';
import { startCluster } from '../lib/cluster.js';
import { s3Client, s3Failure } from '../lib/s3-sdk.js';

const execFileAsync = promisify(execFile);
const DOMAIN = 'web.tessera.test';
const cluster = await startCluster({ nodes: 3, ec: '2+1', env: { TESSERA_WEBSITE_DOMAIN: DOMAIN } });
t.teardown(() => cluster.stop());
const s3 = s3Client(t, cluster.endpoint, { accessKeyId: cluster.accessKeyId, secretAccessKey: cluster.secretAccessKey });
const port = Number(new URL(cluster.endpoint).port);

interface Answer { status: number; headers: Record<string, string | string[] | undefined>; body: string }

/** A plain HTTP request to `<bucket>.<DOMAIN>` on the gateway's port, as a browser sends it. */
function visit(bucket: string, path: string, method = 'GET'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method, headers: { host: `${bucket}.${DOMAIN}:${port}` } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const Bucket = 'site';
await s3.send(new CreateBucketCommand({ Bucket }));
const pages: Record<string, string> = {
  'index.html': '<h1>home</h1>', 'docs/index.html': '<h1>docs</h1>', 'docs/a.html': 'A', 'error.html': '<h1>oops</h1>', 'secret.txt': 'hidden',
};
for (const [Key, Body] of Object.entries(pages)) await s3.send(new PutObjectCommand({ Bucket, Key, Body, ContentType: Key.endsWith('.html') ? 'text/html' : 'text/plain' }));
await s3.send(new PutBucketPolicyCommand({ Bucket, Policy: JSON.stringify({ Statement: [
  { Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${Bucket}/*` },
  { Effect: 'Deny', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${Bucket}/secret.txt` },
] }) }));

t.test('index and error documents, set with the aws CLI', async (t) => {
  await execFileAsync('aws', ['s3', 'website', `s3://${Bucket}/`, '--index-document', 'index.html', '--error-document', 'error.html'], { env: cluster.clientEnv });
  const config = await s3.send(new GetBucketWebsiteCommand({ Bucket }));
  t.same([config.IndexDocument?.Suffix, config.ErrorDocument?.Key], ['index.html', 'error.html']);

  const home = await visit(Bucket, '/');
  t.same([home.status, home.body, home.headers['content-type']], [200, '<h1>home</h1>', 'text/html'], '/ serves the index document');
  t.same([(await visit(Bucket, '/docs/')).body, (await visit(Bucket, '/docs/a.html?cache=1')).body], ['<h1>docs</h1>', 'A'], 'so does a directory; queries are ignored');
  const dir = await visit(Bucket, '/docs');
  t.same([dir.status, dir.headers.location], [302, '/docs/'], 'a directory without its slash is redirected');
  const missing = await visit(Bucket, '/nothing-here.html');
  t.same([missing.status, missing.body], [404, '<h1>oops</h1>'], 'a missing page gets the error document with 404');
  const hidden = await visit(Bucket, '/secret.txt');
  t.same([hidden.status, hidden.body], [403, '<h1>oops</h1>'], 'an object that is not public gets it with 403');
  const head = await visit(Bucket, '/', 'HEAD');
  t.same([head.status, head.body, head.headers['content-length']], [200, '', String(pages['index.html']!.length)]);
  t.equal((await visit(Bucket, '/index.html', 'PUT')).status, 405, 'the website endpoint only reads');
  await s3.send(new PutObjectCommand({ Bucket, Key: 'old-page.html', Body: '', WebsiteRedirectLocation: '/docs/a.html' }));
  const objectRedirect = await visit(Bucket, '/old-page.html');
  t.same([objectRedirect.status, objectRedirect.headers.location], [301, '/docs/a.html'], 'an object\'s x-amz-website-redirect-location redirects');
});

t.test('routing rules, redirect-all, and buckets without a website', async (t) => {
  await s3.send(new PutBucketWebsiteCommand({ Bucket, WebsiteConfiguration: {
    IndexDocument: { Suffix: 'index.html' },
    RoutingRules: [
      { Condition: { KeyPrefixEquals: 'old/' }, Redirect: { ReplaceKeyPrefixWith: 'docs/' } },
      { Condition: { KeyPrefixEquals: 'gone/', HttpErrorCodeReturnedEquals: '404' }, Redirect: { HostName: 'archive.example', Protocol: 'https', HttpRedirectCode: '302' } },
    ],
  } }));
  const moved = await visit(Bucket, '/old/a.html');
  t.same([moved.status, moved.headers.location], [301, `http://${Bucket}.${DOMAIN}:${port}/docs/a.html`], 'a prefix rule rewrites the key');
  const gone = await visit(Bucket, '/gone/page.html');
  t.same([gone.status, gone.headers.location], [302, 'https://archive.example/gone/page.html'], 'an error-code rule redirects what is missing');
  const plain = await visit(Bucket, '/nothing-here.html');
  t.same([plain.status, plain.headers['content-type']], [404, 'text/html; charset=utf-8'], 'without an error document, an HTML error page');
  t.match(plain.body, /<li>Code: NoSuchKey<\/li>/);

  await s3.send(new CreateBucketCommand({ Bucket: 'moved-site' }));
  await s3.send(new PutBucketWebsiteCommand({ Bucket: 'moved-site', WebsiteConfiguration: { RedirectAllRequestsTo: { HostName: 'new.example', Protocol: 'https' } } }));
  const all = await visit('moved-site', '/a/b.html');
  t.same([all.status, all.headers.location], [301, 'https://new.example/a/b.html'], 'redirect-all keeps the path');

  await s3.send(new CreateBucketCommand({ Bucket: 'no-site' }));
  const none = await visit('no-site', '/');
  t.same([none.status, /NoSuchWebsiteConfiguration/.test(none.body)], [404, true]);
  t.equal((await visit('no-such-bucket', '/')).status, 404);
});

t.test('configuration errors and removal', async (t) => {
  t.equal((await s3Failure(s3.send(new PutBucketWebsiteCommand({ Bucket, WebsiteConfiguration: { IndexDocument: { Suffix: 'a/index.html' } } })))).code, 'InvalidArgument');
  t.equal((await s3Failure(s3.send(new PutBucketWebsiteCommand({ Bucket, WebsiteConfiguration: { ErrorDocument: { Key: 'e.html' } } })))).code, 'InvalidArgument', 'an index document is required');
  await s3.send(new DeleteBucketWebsiteCommand({ Bucket }));
  t.same(await s3Failure(s3.send(new GetBucketWebsiteCommand({ Bucket }))), { code: 'NoSuchWebsiteConfiguration', status: 404 });
  t.equal((await visit(Bucket, '/')).status, 404, 'the site is gone with its configuration');
});
