// Who may do what, through @aws-sdk/client-s3, boto3 and anonymous HTTP on a real cluster:
// access keys from `tessera admin key` with per-bucket grants, canned and explicit ACLs,
// bucket policies (public read, explicit Deny beating Allow, conditions) and policy status.
import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { promisify } from 'node:util';
import {
  CreateBucketCommand, DeleteBucketOwnershipControlsCommand, DeleteBucketPolicyCommand, DeleteObjectCommand, DeletePublicAccessBlockCommand,
  GetBucketOwnershipControlsCommand, PutBucketOwnershipControlsCommand, GetBucketAclCommand, GetBucketPolicyCommand,
  GetBucketPolicyStatusCommand, GetObjectAclCommand, GetObjectCommand, GetPublicAccessBlockCommand, ListObjectsV2Command, PutBucketAclCommand,
  PutBucketPolicyCommand, PutObjectAclCommand, PutObjectCommand, PutPublicAccessBlockCommand,
} from '@aws-sdk/client-s3';
import t from 'tap';
import { startCluster } from '../lib/cluster.js';
import { s3Client, s3Failure } from '../lib/s3-sdk.js';
import { errorCode, signedSend } from '../lib/s3-request.js';

const execFileAsync = promisify(execFile);
const cluster = await startCluster({ nodes: 4 });
t.teardown(() => cluster.stop());
const root = { accessKeyId: cluster.accessKeyId, secretAccessKey: cluster.secretAccessKey };

const clientFor = (credentials: { accessKeyId: string; secretAccessKey: string }) => s3Client(t, cluster.endpoint, credentials);
const s3 = clientFor(root);

async function admin(...args: string[]): Promise<string> {
  const result = await cluster.tessera(['admin', '--data', cluster.dataDir, ...args]);
  if (result.code !== 0) throw new Error(`tessera admin ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

interface CreatedKey { accessKeyId: string; secretAccessKey: string; userId: string; displayName: string }
const createKey = async (name: string) => JSON.parse(await admin('key', 'create', '--name', name, '--json')) as CreatedKey;
const anonymous = (path: string, init: RequestInit = {}) => fetch(`${cluster.endpoint}${path}`, init);
/** Key grants and bucket records are cached by the gateway for a few seconds. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 5500));

await s3.send(new CreateBucketCommand({ Bucket: 'team-data' }));
await s3.send(new PutObjectCommand({ Bucket: 'team-data', Key: 'report.txt', Body: 'quarterly' }));

t.test('admin keys: create, list, allow read / write / owner, delete', async (t) => {
  const alice = await createKey('alice');
  t.match(alice.accessKeyId, /^TK[A-Z2-7]{18}$/);
  const listing = await admin('key', 'list');
  t.match(listing, new RegExp(`${alice.accessKeyId}\\talice\\tActive`));
  t.notMatch(listing, alice.secretAccessKey, 'secrets are never listed');

  const asAlice = clientFor(alice);
  t.same(await s3Failure(asAlice.send(new GetObjectCommand({ Bucket: 'team-data', Key: 'report.txt' }))), { code: 'AccessDenied', status: 403 }, 'no grant: no access');
  await asAlice.send(new CreateBucketCommand({ Bucket: 'alice-own' }));
  await asAlice.send(new PutObjectCommand({ Bucket: 'alice-own', Key: 'mine', Body: 'a' }));
  t.same(await s3Failure(s3.send(new GetBucketAclCommand({ Bucket: 'alice-own' }))).catch(() => undefined), undefined, 'root reaches every bucket');
  const ownerAcl = await s3.send(new GetBucketAclCommand({ Bucket: 'alice-own' }));
  t.same([ownerAcl.Owner?.ID, ownerAcl.Owner?.DisplayName], [alice.userId, 'alice'], 'the creating key owns the bucket');

  await admin('key', 'allow', alice.accessKeyId, '--bucket', 'team-data', '--access', 'read');
  await settle();
  t.equal(await (await asAlice.send(new GetObjectCommand({ Bucket: 'team-data', Key: 'report.txt' }))).Body!.transformToString(), 'quarterly');
  t.equal((await asAlice.send(new ListObjectsV2Command({ Bucket: 'team-data' }))).KeyCount, 1);
  t.same(await s3Failure(asAlice.send(new PutObjectCommand({ Bucket: 'team-data', Key: 'x', Body: 'x' }))), { code: 'AccessDenied', status: 403 }, 'read does not write');

  await admin('key', 'allow', alice.accessKeyId, '--bucket', 'team-data', '--access', 'write');
  await settle();
  await asAlice.send(new PutObjectCommand({ Bucket: 'team-data', Key: 'x', Body: 'x' }));
  await asAlice.send(new DeleteObjectCommand({ Bucket: 'team-data', Key: 'x' }));
  t.same(await s3Failure(asAlice.send(new PutBucketPolicyCommand({ Bucket: 'team-data', Policy: '{}' }))), { code: 'AccessDenied', status: 403 }, 'write does not configure');

  await admin('key', 'allow', alice.accessKeyId, '--bucket', 'team-data', '--access', 'owner');
  await settle();
  await asAlice.send(new PutBucketAclCommand({ Bucket: 'team-data', ACL: 'private' }));

  await admin('key', 'delete', alice.accessKeyId);
  await settle();
  t.same(await s3Failure(asAlice.send(new GetObjectCommand({ Bucket: 'alice-own', Key: 'mine' }))), { code: 'InvalidAccessKeyId', status: 403 });
  const bad = await cluster.tessera(['admin', '--data', cluster.dataDir, 'key', 'allow', 'TKNOSUCHKEY', '--bucket', 'b', '--access', 'read']);
  t.not(bad.code, 0, 'allow on an unknown key fails');
});

t.test('canned ACLs: public-read buckets and objects, authenticated-read, GetBucketAcl / GetObjectAcl', async (t) => {
  await s3.send(new CreateBucketCommand({ Bucket: 'public-site', ACL: 'public-read' }));
  await s3.send(new PutObjectCommand({ Bucket: 'public-site', Key: 'index.html', Body: '<h1>hi</h1>' }));
  t.equal((await anonymous('/public-site?list-type=2')).status, 200, 'anyone lists a public-read bucket');
  t.equal((await anonymous('/public-site/index.html')).status, 403, 'objects keep their own (private) ACL');
  await s3.send(new PutObjectAclCommand({ Bucket: 'public-site', Key: 'index.html', ACL: 'public-read' }));
  const page = await anonymous('/public-site/index.html');
  t.same([page.status, await page.text()], [200, '<h1>hi</h1>']);
  t.equal((await anonymous('/public-site/new.html', { method: 'PUT', body: 'x' })).status, 403, 'public-read is not writable');

  const acl = await s3.send(new GetObjectAclCommand({ Bucket: 'public-site', Key: 'index.html' }));
  t.same(acl.Grants?.map((g) => [g.Grantee?.Type, g.Grantee?.URI ?? g.Grantee?.ID, g.Permission]),
    [['CanonicalUser', 'tessera-root', 'FULL_CONTROL'], ['Group', 'http://acs.amazonaws.com/groups/global/AllUsers', 'READ']]);
  const bucketAcl = await s3.send(new GetBucketAclCommand({ Bucket: 'public-site' }));
  t.same([bucketAcl.Owner?.ID, bucketAcl.Owner?.DisplayName, bucketAcl.Grants?.length], ['tessera-root', 'root', 2]);

  await s3.send(new PutObjectCommand({ Bucket: 'public-site', Key: 'open.txt', Body: 'open', ACL: 'public-read' }));
  t.equal((await anonymous('/public-site/open.txt')).status, 200, 'x-amz-acl on PutObject');

  await s3.send(new PutBucketAclCommand({ Bucket: 'public-site', ACL: 'public-read-write' }));
  await settle();
  t.equal((await anonymous('/public-site/dropbox.txt', { method: 'PUT', body: 'dropped' })).status, 200, 'public-read-write takes anonymous writes');

  await s3.send(new CreateBucketCommand({ Bucket: 'members-only', ACL: 'authenticated-read' }));
  const bob = await createKey('bob');
  t.equal((await clientFor(bob).send(new ListObjectsV2Command({ Bucket: 'members-only' }))).KeyCount, 0, 'any key may list');
  t.equal((await anonymous('/members-only?list-type=2')).status, 403, 'anonymous may not');

  t.same(await s3Failure(s3.send(new PutBucketAclCommand({ Bucket: 'members-only', ACL: 'everyone-please' as 'private' }))), { code: 'InvalidArgument', status: 400 });
  const noAcl = await signedSend(cluster.endpoint, root, { method: 'PUT', path: '/members-only?acl' });
  t.same([noAcl.status, errorCode(noAcl)], [400, 'MissingSecurityHeader']);
  const badXml = await signedSend(cluster.endpoint, root, { method: 'PUT', path: '/members-only?acl', body: '<AccessControlPolicy><Owner/></AccessControlPolicy>' });
  t.same([badXml.status, errorCode(badXml)], [400, 'MalformedACLError']);
  const both = await signedSend(cluster.endpoint, root, { method: 'PUT', path: '/members-only?acl', body: '<AccessControlPolicy/>', headers: { 'x-amz-acl': 'private' } });
  t.same([both.status, errorCode(both)], [400, 'UnexpectedContent']);
});

t.test('bucket policies: public read, Deny beats Allow, conditions, status, errors', async (t) => {
  const Bucket = 'policy-bucket';
  await s3.send(new CreateBucketCommand({ Bucket }));
  await s3.send(new PutObjectCommand({ Bucket, Key: 'public/a.txt', Body: 'A' }));
  await s3.send(new PutObjectCommand({ Bucket, Key: 'secret/b.txt', Body: 'B' }));
  t.same(await s3Failure(s3.send(new GetBucketPolicyCommand({ Bucket }))), { code: 'NoSuchBucketPolicy', status: 404 });
  const policy = {
    Version: '2012-10-17',
    Statement: [
      { Sid: 'PublicRead', Effect: 'Allow', Principal: '*', Action: ['s3:GetObject'], Resource: [`arn:aws:s3:::${Bucket}/*`] },
      { Sid: 'PublicList', Effect: 'Allow', Principal: { AWS: ['*'] }, Action: 's3:ListBucket', Resource: `arn:aws:s3:::${Bucket}`, Condition: { StringLike: { 's3:prefix': ['public/*'] } } },
      { Sid: 'NoSecrets', Effect: 'Deny', Principal: '*', Action: 's3:Get*', Resource: `arn:aws:s3:::${Bucket}/secret/*` },
      { Sid: 'ConditionalDeletesOnly', Effect: 'Deny', Principal: '*', Action: 's3:DeleteObject', Resource: `arn:aws:s3:::${Bucket}/*`, Condition: { Null: { 's3:if-match': 'true' } } },
    ],
  };
  await s3.send(new PutBucketPolicyCommand({ Bucket, Policy: JSON.stringify(policy) }));
  t.same(JSON.parse((await s3.send(new GetBucketPolicyCommand({ Bucket }))).Policy!), policy);
  t.equal((await s3.send(new GetBucketPolicyStatusCommand({ Bucket }))).PolicyStatus?.IsPublic, true);

  const a = await anonymous(`/${Bucket}/public/a.txt`);
  t.same([a.status, await a.text()], [200, 'A'], 'anonymous GetObject allowed by policy');
  t.equal((await anonymous(`/${Bucket}/secret/b.txt`)).status, 403, 'explicit Deny beats the Allow');
  t.same(await s3Failure(s3.send(new GetObjectCommand({ Bucket, Key: 'secret/b.txt' }))).then((f) => f.code), 'AccessDenied', 'Deny holds for keys too');
  t.equal((await anonymous(`/${Bucket}?list-type=2&prefix=public/`)).status, 200, 'listing allowed under the condition');
  t.equal((await anonymous(`/${Bucket}?list-type=2&prefix=secret/`)).status, 403, 'and refused outside it');
  t.equal((await anonymous(`/${Bucket}/public/new.txt`, { method: 'PUT', body: 'x' })).status, 403, 'writes were never allowed');

  const script = `
import boto3, json
from botocore import UNSIGNED
from botocore.config import Config
anon = boto3.client('s3', config=Config(signature_version=UNSIGNED))
print(json.dumps(anon.get_object(Bucket='${Bucket}', Key='public/a.txt')['Body'].read().decode()))
`;
  const { stdout } = await execFileAsync('python3', ['-c', script], { env: cluster.clientEnv });
  t.equal(JSON.parse(stdout), 'A', 'boto3 unsigned client reads through the policy');

  const scratch = await s3.send(new PutObjectCommand({ Bucket, Key: 'public/scratch.txt', Body: 'S' }));
  t.same(await s3Failure(s3.send(new DeleteObjectCommand({ Bucket, Key: 'public/scratch.txt' }))), { code: 'AccessDenied', status: 403 }, 'a Null condition on s3:if-match refuses unconditional deletes');
  await s3.send(new DeleteObjectCommand({ Bucket, Key: 'public/scratch.txt', IfMatch: scratch.ETag }));
  t.equal((await s3.send(new ListObjectsV2Command({ Bucket, Prefix: 'public/scratch' }))).KeyCount, 0, 'and lets conditional ones through');

  for (const bad of ['not json', '{"Statement": []}', JSON.stringify({ Statement: [{ Effect: 'Maybe', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${Bucket}/*` }] }),
    JSON.stringify({ Statement: [{ Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: 'arn:aws:s3:::other-bucket/*' }] })]) {
    t.same(await s3Failure(s3.send(new PutBucketPolicyCommand({ Bucket, Policy: bad }))), { code: 'MalformedPolicy', status: 400 }, `refused: ${bad.slice(0, 40)}`);
  }
  await s3.send(new DeleteBucketPolicyCommand({ Bucket }));
  await settle();
  t.equal((await anonymous(`/${Bucket}/public/a.txt`)).status, 403, 'private again without the policy');
  t.same(await s3Failure(s3.send(new GetBucketPolicyStatusCommand({ Bucket }))), { code: 'NoSuchBucketPolicy', status: 404 });
});

t.test('public access block: each of its four switches, and its removal', async (t) => {
  const Bucket = 'guarded-bucket';
  await s3.send(new CreateBucketCommand({ Bucket }));
  t.same(await s3Failure(s3.send(new GetPublicAccessBlockCommand({ Bucket }))), { code: 'NoSuchPublicAccessBlockConfiguration', status: 404 });
  await s3.send(new PutObjectCommand({ Bucket, Key: 'acl-public.txt', Body: 'P', ACL: 'public-read' }));
  await s3.send(new PutObjectCommand({ Bucket, Key: 'private.txt', Body: 'Q' }));
  const publicPolicy = JSON.stringify({ Statement: [{ Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:aws:s3:::${Bucket}/policy-public/*` }] });
  await s3.send(new PutBucketPolicyCommand({ Bucket, Policy: publicPolicy }));
  await s3.send(new PutObjectCommand({ Bucket, Key: 'policy-public/a.txt', Body: 'R' }));
  t.equal((await anonymous(`/${Bucket}/acl-public.txt`)).status, 200, 'a public-read object is public');
  t.equal((await anonymous(`/${Bucket}/policy-public/a.txt`)).status, 200, 'and so is what the public policy names');

  await s3.send(new PutPublicAccessBlockCommand({ Bucket, PublicAccessBlockConfiguration: { IgnorePublicAcls: true } }));
  t.same((await s3.send(new GetPublicAccessBlockCommand({ Bucket }))).PublicAccessBlockConfiguration,
    { BlockPublicAcls: false, IgnorePublicAcls: true, BlockPublicPolicy: false, RestrictPublicBuckets: false }, 'unset switches read as false');
  t.equal((await anonymous(`/${Bucket}/acl-public.txt`)).status, 403, 'IgnorePublicAcls: the public ACL gives nothing');
  t.equal((await anonymous(`/${Bucket}/policy-public/a.txt`)).status, 200, 'the policy still does');

  await s3.send(new PutPublicAccessBlockCommand({ Bucket, PublicAccessBlockConfiguration: { RestrictPublicBuckets: true } }));
  t.equal((await anonymous(`/${Bucket}/policy-public/a.txt`)).status, 403, 'RestrictPublicBuckets: the public policy allows anonymous requests nothing');
  t.equal((await anonymous(`/${Bucket}/acl-public.txt`)).status, 200, 'public ACLs count again without IgnorePublicAcls');
  t.equal(await (await s3.send(new GetObjectCommand({ Bucket, Key: 'policy-public/a.txt' }))).Body!.transformToString(), 'R', 'the owner reads as before');

  await s3.send(new PutPublicAccessBlockCommand({ Bucket, PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true } }));
  const denied = { code: 'AccessDenied', status: 403 };
  t.same(await s3Failure(s3.send(new PutObjectCommand({ Bucket, Key: 'new.txt', Body: 'x', ACL: 'public-read' }))), denied, 'BlockPublicAcls: a write with a public ACL');
  t.same(await s3Failure(s3.send(new PutObjectAclCommand({ Bucket, Key: 'private.txt', ACL: 'public-read' }))), denied, 'an object ACL made public');
  t.same(await s3Failure(s3.send(new PutBucketAclCommand({ Bucket, ACL: 'authenticated-read' }))), denied, 'a bucket ACL made public');
  t.same(await s3Failure(s3.send(new PutBucketPolicyCommand({ Bucket, Policy: publicPolicy }))), denied, 'BlockPublicPolicy: a public policy');
  await s3.send(new PutObjectCommand({ Bucket, Key: 'new.txt', Body: 'x', ACL: 'private' }));
  t.equal(await (await s3.send(new GetObjectCommand({ Bucket, Key: 'new.txt' }))).Body!.transformToString(), 'x', 'private writes go on');
  t.equal((await anonymous(`/${Bucket}/private.txt`)).status, 403, 'the refused ACL changed nothing');

  await s3.send(new DeletePublicAccessBlockCommand({ Bucket }));
  t.same(await s3Failure(s3.send(new GetPublicAccessBlockCommand({ Bucket }))), { code: 'NoSuchPublicAccessBlockConfiguration', status: 404 });
  t.equal((await anonymous(`/${Bucket}/policy-public/a.txt`)).status, 200, 'without the block the policy is public again');
});

t.test('object ownership: BucketOwnerEnforced disables ACLs', async (t) => {
  const Bucket = 'owner-enforced';
  t.same(await s3Failure(s3.send(new CreateBucketCommand({ Bucket, ObjectOwnership: 'BucketOwnerEnforced', ACL: 'public-read' }))),
    { code: 'InvalidBucketAclWithObjectOwnership', status: 400 }, 'a public bucket ACL cannot come with it');
  await s3.send(new CreateBucketCommand({ Bucket, ObjectOwnership: 'BucketOwnerEnforced' }));
  t.equal((await s3.send(new GetBucketOwnershipControlsCommand({ Bucket }))).OwnershipControls?.Rules?.[0]?.ObjectOwnership, 'BucketOwnerEnforced');
  const unsupported = { code: 'AccessControlListNotSupported', status: 400 };
  t.same(await s3Failure(s3.send(new PutObjectCommand({ Bucket, Key: 'o', Body: 'x', ACL: 'public-read' }))), unsupported, 'a write with an ACL');
  t.same(await s3Failure(s3.send(new PutBucketAclCommand({ Bucket, ACL: 'public-read' }))), unsupported, 'a bucket ACL');
  await s3.send(new PutObjectCommand({ Bucket, Key: 'o', Body: 'x', ACL: 'bucket-owner-full-control' }));
  t.same(await s3Failure(s3.send(new PutObjectAclCommand({ Bucket, Key: 'o', ACL: 'public-read' }))), unsupported, 'an object ACL');
  t.same((await s3.send(new GetObjectAclCommand({ Bucket, Key: 'o' }))).Grants?.map((g) => g.Permission), ['FULL_CONTROL'], 'ACLs read as the owner\'s full control');

  const open = 'acl-then-enforced';
  await s3.send(new CreateBucketCommand({ Bucket: open }));
  await s3.send(new PutObjectCommand({ Bucket: open, Key: 'p', Body: 'y', ACL: 'public-read' }));
  t.equal((await anonymous(`/${open}/p`)).status, 200, 'the object ACL makes it public');
  await s3.send(new PutBucketOwnershipControlsCommand({ Bucket: open, OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] } }));
  t.equal((await anonymous(`/${open}/p`)).status, 403, 'until ACLs are disabled');
  await s3.send(new PutBucketAclCommand({ Bucket: open, ACL: 'private' }));
  await s3.send(new DeleteBucketOwnershipControlsCommand({ Bucket: open }));
  t.same(await s3Failure(s3.send(new GetBucketOwnershipControlsCommand({ Bucket: open }))), { code: 'OwnershipControlsNotFoundError', status: 404 });
  t.equal((await anonymous(`/${open}/p`)).status, 200, 'and it counts again once they are enabled');
  await s3.send(new PutBucketAclCommand({ Bucket: open, ACL: 'public-read' }));
  t.same(await s3Failure(s3.send(new PutBucketOwnershipControlsCommand({ Bucket: open, OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] } }))),
    { code: 'InvalidBucketAclWithObjectOwnership', status: 400 }, 'a public bucket ACL must go before ACLs are disabled');
});

t.test('browser POST uploads: boto3 presigned posts (SigV4), SigV2 policies, conditions, redirects', async (t) => {
  const Bucket = 'uploads-by-form';
  await s3.send(new CreateBucketCommand({ Bucket }));
  const presign = async (key: string, conditions: unknown[], fields: Record<string, string> = {}) => JSON.parse((await execFileAsync('python3', ['-c', `
import boto3, json, sys
from botocore.config import Config
s3 = boto3.client('s3', config=Config(signature_version='s3v4'))
print(json.dumps(s3.generate_presigned_post('${Bucket}', sys.argv[1], Fields=json.loads(sys.argv[3]), Conditions=json.loads(sys.argv[2]), ExpiresIn=600)))
`, key, JSON.stringify(conditions), JSON.stringify(fields)], { env: cluster.clientEnv })).stdout) as { url: string; fields: Record<string, string> };
  const post = (fields: Record<string, string>, file: string, filename = 'photo.jpg') => {
    const form = new FormData();
    for (const [name, value] of Object.entries(fields)) form.append(name, value);
    form.append('file', new Blob([file]), filename);
    return fetch(`${cluster.endpoint}/${Bucket}`, { method: 'POST', body: form, redirect: 'manual' });
  };

  const signed = await presign('photos/${filename}', [['starts-with', '$key', 'photos/'], ['content-length-range', 1, 100], { 'Content-Type': 'image/jpeg' }, { success_action_status: '201' }],
    { 'Content-Type': 'image/jpeg', success_action_status: '201' });
  const created = await post(signed.fields, 'jpeg bytes');
  const createdXml = await created.text();
  t.equal(created.status, 201, createdXml);
  t.match(createdXml, /<Key>photos\/photo\.jpg<\/Key>/);
  const stored = await s3.send(new GetObjectCommand({ Bucket, Key: 'photos/photo.jpg' }));
  t.same([stored.ContentType, await stored.Body!.transformToString()], ['image/jpeg', 'jpeg bytes']);

  const tooBig = await post(signed.fields, 'x'.repeat(101));
  t.same([tooBig.status, /<Code>(\w+)</.exec(await tooBig.text())?.[1]], [400, 'EntityTooLarge'], 'content-length-range');
  const wrongType = await post({ ...signed.fields, 'Content-Type': 'text/html' }, 'x');
  t.same([wrongType.status, /<Code>(\w+)</.exec(await wrongType.text())?.[1]], [403, 'AccessDenied'], 'a field the policy does not allow');
  const forged = await post({ ...signed.fields, 'x-amz-signature': '0'.repeat(64) }, 'x');
  t.same([forged.status, /<Code>(\w+)</.exec(await forged.text())?.[1]], [403, 'SignatureDoesNotMatch']);
  const extra = await post({ ...signed.fields, 'x-amz-meta-sneaky': 'yes' }, 'x');
  t.same([extra.status, /<Code>(\w+)</.exec(await extra.text())?.[1]], [403, 'AccessDenied'], 'fields outside the policy');
  const anonymousForm = await post({ key: 'anon.txt' }, 'x');
  t.same([anonymousForm.status, /<Code>(\w+)</.exec(await anonymousForm.text())?.[1]], [403, 'AccessDenied'], 'no signature: anonymous, refused on a private bucket');
  const noKey = await post(Object.fromEntries(Object.entries(signed.fields).filter(([k]) => k !== 'key')), 'x');
  t.same([noKey.status, /<Code>(\w+)</.exec(await noKey.text())?.[1]], [400, 'InvalidArgument']);

  // SigV2: the signature is HMAC-SHA1 of the base64 policy; success_action_redirect gets a 303.
  const policy = Buffer.from(JSON.stringify({ expiration: new Date(Date.now() + 600_000).toISOString(), conditions: [
    { bucket: Bucket }, ['starts-with', '$key', 'v2/'], ['starts-with', '$success_action_redirect', 'https://app.example.com/'], ['eq', '$acl', 'public-read']] })).toString('base64');
  const v2Fields = { key: 'v2/doc.txt', AWSAccessKeyId: cluster.accessKeyId, policy, acl: 'public-read',
    signature: createHmac('sha1', cluster.secretAccessKey).update(policy).digest('base64'), success_action_redirect: 'https://app.example.com/done' };
  const redirected = await post(v2Fields, 'v2 body');
  t.equal(redirected.status, 303);
  const location = new URL(redirected.headers.get('location')!);
  t.same([location.origin + location.pathname, location.searchParams.get('key'), location.searchParams.get('bucket')], ['https://app.example.com/done', 'v2/doc.txt', Bucket]);
  t.equal(await (await anonymous(`/${Bucket}/v2/doc.txt`)).text(), 'v2 body', 'acl field applied');

  const expiredPolicy = Buffer.from(JSON.stringify({ expiration: '2020-01-01T00:00:00Z', conditions: [{ bucket: Bucket }] })).toString('base64');
  const expired = await post({ key: 'late.txt', AWSAccessKeyId: cluster.accessKeyId, policy: expiredPolicy, signature: createHmac('sha1', cluster.secretAccessKey).update(expiredPolicy).digest('base64') }, 'x');
  t.same([expired.status, /<Code>(\w+)</.exec(await expired.text())?.[1]], [403, 'AccessDenied'], 'expired policy');
  const notForm = await signedSend(cluster.endpoint, root, { method: 'POST', path: `/${Bucket}`, body: 'plain', headers: { 'content-type': 'text/plain' } });
  t.same([notForm.status, errorCode(notForm)], [400, 'MalformedPOSTRequest']);
});
