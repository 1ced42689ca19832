// CORS (configuration, browser preflights, headers on actual requests) and lifecycle rules carried
// out by the gateway's background worker, on a real cluster whose lifecycle "day" is one second.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  CreateBucketCommand, CreateMultipartUploadCommand, DeleteBucketCorsCommand, GetBucketCorsCommand, GetBucketLifecycleConfigurationCommand,
  ListMultipartUploadsCommand, ListObjectVersionsCommand, ListObjectsV2Command, PutBucketLifecycleConfigurationCommand, PutBucketVersioningCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import t, { type Test } from 'tap';
import { startCluster } from '../lib/cluster.js';
import { s3Client, s3Failure } from '../lib/s3-sdk.js';
import { errorCode, signedSend } from '../lib/s3-request.js';

const execFileAsync = promisify(execFile);
process.env.TESSERA_LIFECYCLE_INTERVAL_MS = '300';
process.env.TESSERA_LIFECYCLE_DAY_MS = '1000';
const cluster = await startCluster({ nodes: 4 });
t.teardown(() => cluster.stop());
const root = { accessKeyId: cluster.accessKeyId, secretAccessKey: cluster.secretAccessKey };
const s3 = s3Client(t, cluster.endpoint, root);

async function python(script: string): Promise<unknown> {
  const { stdout } = await execFileAsync('python3', ['-c', script], { env: cluster.clientEnv });
  return stdout.trim() === '' ? undefined : JSON.parse(stdout);
}

async function aws(...args: string[]): Promise<void> {
  await execFileAsync('aws', ['--endpoint-url', cluster.endpoint, ...args], { env: cluster.clientEnv });
}

/** Poll until `check` holds (the worker runs in the background); fails the test after `ms`. */
async function eventually(t: Test, what: string, check: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) {
      t.pass(what);
      return;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  t.fail(`${what} (not within ${ms} ms)`);
}

t.test('CORS: configuration, preflight, actual requests, errors', async (t) => {
  const Bucket = 'web-assets';
  await s3.send(new CreateBucketCommand({ Bucket }));
  await s3.send(new PutObjectCommand({ Bucket, Key: 'app.js', Body: 'console.log(1)' }));
  await python(`
import boto3
boto3.client('s3').put_bucket_cors(Bucket='${Bucket}', CORSConfiguration={'CORSRules': [
  {'ID': 'app', 'AllowedOrigins': ['https://*.example.com'], 'AllowedMethods': ['GET', 'PUT'], 'AllowedHeaders': ['x-amz-*', 'content-type'],
   'ExposeHeaders': ['ETag'], 'MaxAgeSeconds': 600},
  {'AllowedOrigins': ['*'], 'AllowedMethods': ['GET']}]})
`);
  const config = await s3.send(new GetBucketCorsCommand({ Bucket }));
  t.same(config.CORSRules?.map((r) => [r.ID, r.AllowedOrigins, r.AllowedMethods, r.MaxAgeSeconds]),
    [['app', ['https://*.example.com'], ['GET', 'PUT'], 600], [undefined, ['*'], ['GET'], undefined]]);

  const preflight = await fetch(`${cluster.endpoint}/${Bucket}/upload.bin`, { method: 'OPTIONS', headers: {
    Origin: 'https://app.example.com', 'Access-Control-Request-Method': 'PUT', 'Access-Control-Request-Headers': 'Content-Type, X-Amz-Date' } });
  t.equal(preflight.status, 200);
  t.same(['access-control-allow-origin', 'access-control-allow-methods', 'access-control-allow-headers', 'access-control-max-age', 'access-control-expose-headers']
    .map((h) => preflight.headers.get(h)), ['https://app.example.com', 'GET, PUT', 'content-type, x-amz-date', '600', 'ETag']);
  const anyOrigin = await fetch(`${cluster.endpoint}/${Bucket}/app.js`, { method: 'OPTIONS', headers: { Origin: 'https://elsewhere.org', 'Access-Control-Request-Method': 'GET' } });
  t.same([anyOrigin.status, anyOrigin.headers.get('access-control-allow-origin')], [200, '*']);

  const refused = await fetch(`${cluster.endpoint}/${Bucket}/app.js`, { method: 'OPTIONS', headers: { Origin: 'https://elsewhere.org', 'Access-Control-Request-Method': 'PUT' } });
  t.same([refused.status, /<Code>(\w+)</.exec(await refused.text())?.[1]], [403, 'AccessForbidden']);
  const noOrigin = await fetch(`${cluster.endpoint}/${Bucket}/app.js`, { method: 'OPTIONS', headers: { 'Access-Control-Request-Method': 'GET' } });
  t.same([noOrigin.status, /<Code>(\w+)</.exec(await noOrigin.text())?.[1]], [400, 'BadRequest']);

  const actual = await signedSend(cluster.endpoint, root, { method: 'GET', path: `/${Bucket}/app.js`, headers: { origin: 'https://app.example.com' } });
  t.same([actual.status, actual.headers['access-control-allow-origin'], actual.headers['access-control-expose-headers']], [200, 'https://app.example.com', 'ETag']);
  const plain = await signedSend(cluster.endpoint, root, { method: 'GET', path: `/${Bucket}/app.js` });
  t.equal(plain.headers['access-control-allow-origin'], undefined, 'no Origin, no CORS headers');

  const badMethod = await signedSend(cluster.endpoint, root, { method: 'PUT', path: `/${Bucket}?cors`,
    body: '<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>PATCH</AllowedMethod></CORSRule></CORSConfiguration>' });
  t.same([badMethod.status, errorCode(badMethod)], [400, 'InvalidRequest']);
  const noRules = await signedSend(cluster.endpoint, root, { method: 'PUT', path: `/${Bucket}?cors`, body: '<CORSConfiguration></CORSConfiguration>' });
  t.same([noRules.status, errorCode(noRules)], [400, 'MalformedXML']);

  await s3.send(new DeleteBucketCorsCommand({ Bucket }));
  t.same(await s3Failure(s3.send(new GetBucketCorsCommand({ Bucket }))), { code: 'NoSuchCORSConfiguration', status: 404 });
});

t.test('lifecycle: configuration round trip and refused documents', async (t) => {
  const Bucket = 'lifecycle-config';
  await s3.send(new CreateBucketCommand({ Bucket }));
  t.same(await s3Failure(s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket }))), { code: 'NoSuchLifecycleConfiguration', status: 404 });
  await s3.send(new PutBucketLifecycleConfigurationCommand({ Bucket, LifecycleConfiguration: { Rules: [
    { ID: 'logs', Status: 'Enabled', Filter: { Prefix: 'logs/' }, Expiration: { Days: 30 }, NoncurrentVersionExpiration: { NoncurrentDays: 7, NewerNoncurrentVersions: 2 } },
    { ID: 'uploads', Status: 'Disabled', Filter: { And: { Prefix: 'tmp/', ObjectSizeGreaterThan: 10 } }, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 3 } },
  ] } }));
  const rules = (await s3.send(new GetBucketLifecycleConfigurationCommand({ Bucket }))).Rules!;
  t.same(rules.map((r) => [r.ID, r.Status, r.Expiration?.Days, r.NoncurrentVersionExpiration?.NewerNoncurrentVersions, r.AbortIncompleteMultipartUpload?.DaysAfterInitiation]),
    [['logs', 'Enabled', 30, 2, undefined], ['uploads', 'Disabled', undefined, undefined, 3]]);
  t.same([rules[0]!.Filter?.Prefix, rules[1]!.Filter?.And?.Prefix, rules[1]!.Filter?.And?.ObjectSizeGreaterThan], ['logs/', 'tmp/', 10]);

  const put = (body: string) => signedSend(cluster.endpoint, root, { method: 'PUT', path: `/${Bucket}?lifecycle`, body: `<LifecycleConfiguration>${body}</LifecycleConfiguration>` });
  const zeroDays = await put('<Rule><Status>Enabled</Status><Filter><Prefix/></Filter><Expiration><Days>0</Days></Expiration></Rule>');
  t.same([zeroDays.status, errorCode(zeroDays)], [400, 'InvalidArgument']);
  const noAction = await put('<Rule><Status>Enabled</Status><Filter><Prefix/></Filter></Rule>');
  t.same([noAction.status, errorCode(noAction)], [400, 'InvalidRequest']);
  const noRules = await put('');
  t.same([noRules.status, errorCode(noRules)], [400, 'MalformedXML']);
  const badStatus = await put('<Rule><Status>Sometimes</Status><Expiration><Days>1</Days></Expiration></Rule>');
  t.same([badStatus.status, errorCode(badStatus)], [400, 'MalformedXML']);
});

t.test('lifecycle worker: expiration by prefix and tag in an unversioned bucket, stale uploads aborted', async (t) => {
  const Bucket = 'lifecycle-plain';
  await s3.send(new CreateBucketCommand({ Bucket }));
  await aws('s3api', 'put-bucket-lifecycle-configuration', '--bucket', Bucket, '--lifecycle-configuration', JSON.stringify({ Rules: [
    { ID: 'tmp', Status: 'Enabled', Filter: { Prefix: 'tmp/' }, Expiration: { Days: 2 } },
    { ID: 'temporary', Status: 'Enabled', Filter: { Tag: { Key: 'temp', Value: 'yes' } }, Expiration: { Days: 2 } },
    { ID: 'uploads', Status: 'Enabled', Filter: { Prefix: '' }, AbortIncompleteMultipartUpload: { DaysAfterInitiation: 2 } },
  ] }));
  for (const [Key, Tagging] of [['tmp/a', undefined], ['keep/b', undefined], ['keep/tagged', 'temp=yes'], ['keep/other-tag', 'temp=no']] as const) {
    await s3.send(new PutObjectCommand({ Bucket, Key, Body: Key, Tagging }));
  }
  await s3.send(new CreateMultipartUploadCommand({ Bucket, Key: 'big/upload' }));
  const keys = async () => ((await s3.send(new ListObjectsV2Command({ Bucket }))).Contents ?? []).map((c) => c.Key);
  await eventually(t, 'expired objects are deleted', async () => JSON.stringify(await keys()) === JSON.stringify(['keep/b', 'keep/other-tag']));
  await eventually(t, 'stale multipart uploads are aborted', async () => ((await s3.send(new ListMultipartUploadsCommand({ Bucket }))).Uploads ?? []).length === 0);
});

t.test('lifecycle worker: versioned bucket — noncurrent versions, delete markers, lone markers removed', async (t) => {
  const Bucket = 'lifecycle-versioned';
  await s3.send(new CreateBucketCommand({ Bucket }));
  await s3.send(new PutBucketVersioningCommand({ Bucket, VersioningConfiguration: { Status: 'Enabled' } }));
  await s3.send(new PutBucketLifecycleConfigurationCommand({ Bucket, LifecycleConfiguration: { Rules: [
    { ID: 'current', Status: 'Enabled', Filter: { Prefix: 'logs/' }, Expiration: { Days: 3 } },
    { ID: 'old', Status: 'Enabled', Filter: { Prefix: 'logs/' }, NoncurrentVersionExpiration: { NoncurrentDays: 1 } },
    { ID: 'keep-one', Status: 'Enabled', Filter: { Prefix: 'keep-one/' }, NoncurrentVersionExpiration: { NoncurrentDays: 1, NewerNoncurrentVersions: 1 } },
    { ID: 'markers', Status: 'Enabled', Filter: { Prefix: 'logs/' }, Expiration: { ExpiredObjectDeleteMarker: true } },
  ] } }));
  for (const body of ['v1', 'v2', 'v3']) {
    await s3.send(new PutObjectCommand({ Bucket, Key: 'logs/app.log', Body: body }));
    await s3.send(new PutObjectCommand({ Bucket, Key: 'keep-one/state', Body: body }));
  }
  await s3.send(new PutObjectCommand({ Bucket, Key: 'other/keep', Body: 'x' }));
  const versions = async (Prefix = 'logs/') => {
    const listing = await s3.send(new ListObjectVersionsCommand({ Bucket, Prefix }));
    return { versions: listing.Versions?.length ?? 0, markers: listing.DeleteMarkers?.length ?? 0 };
  };
  await eventually(t, 'NewerNoncurrentVersions keeps the newest noncurrent version', async () => (await versions('keep-one/')).versions === 2);
  await eventually(t, 'noncurrent versions are removed', async () => (await versions()).versions <= 1);
  await eventually(t, 'in the end every version and the lone delete marker are gone', async () => {
    const now = await versions();
    return now.versions === 0 && now.markers === 0;
  }, 45_000);
  t.equal((await s3.send(new ListObjectVersionsCommand({ Bucket, Prefix: 'other/' }))).Versions?.length, 1, 'keys outside the rules stay');
  t.same(await versions('keep-one/'), { versions: 2, markers: 0 }, 'and the kept noncurrent version stays');
});
