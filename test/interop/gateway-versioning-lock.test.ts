// Versioning, Object Lock, tagging and CopyObject through @aws-sdk/client-s3 and the aws CLI on a
// real multi-process cluster, with every error code these operations produce.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  CopyObjectCommand, CreateBucketCommand, DeleteBucketTaggingCommand, DeleteObjectCommand, DeleteObjectTaggingCommand, GetBucketTaggingCommand,
  GetBucketVersioningCommand, GetObjectCommand, GetObjectLegalHoldCommand, GetObjectLockConfigurationCommand, GetObjectRetentionCommand,
  GetObjectTaggingCommand, HeadObjectCommand, ListObjectVersionsCommand, PutBucketTaggingCommand, PutBucketVersioningCommand,
  PutObjectCommand, PutObjectLegalHoldCommand, PutObjectLockConfigurationCommand, PutObjectRetentionCommand, PutObjectTaggingCommand,
 
} from '@aws-sdk/client-s3';
import t from 'tap';
import { startCluster } from '../lib/cluster.js';
import { s3Client, s3Failure } from '../lib/s3-sdk.js';
import { errorCode, signedSend } from '../lib/s3-request.js';

const execFileAsync = promisify(execFile);
const cluster = await startCluster({ nodes: 4 });
t.teardown(() => cluster.stop());
const root = { accessKeyId: cluster.accessKeyId, secretAccessKey: cluster.secretAccessKey };
const s3 = s3Client(t, cluster.endpoint, root);

async function aws(...args: string[]): Promise<unknown> {
  const { stdout } = await execFileAsync('aws', ['--endpoint-url', cluster.endpoint, '--output', 'json', ...args], { env: cluster.clientEnv });
  return stdout.trim() === '' ? undefined : JSON.parse(stdout);
}

const text = async (body: { transformToString(): Promise<string> } | undefined) => (body ? body.transformToString() : '');
const DAY_MS = 86_400_000;

t.test('versioning: enabled ids, suspended null version, delete markers, reads by version id', async (t) => {
  const Bucket = 'versioned';
  await s3.send(new CreateBucketCommand({ Bucket }));
  t.same((await s3.send(new GetBucketVersioningCommand({ Bucket }))).Status, undefined, 'never configured');
  await s3.send(new PutObjectCommand({ Bucket, Key: 'k', Body: 'before versioning' }));
  await aws('s3api', 'put-bucket-versioning', '--bucket', Bucket, '--versioning-configuration', 'Status=Enabled');
  t.same(await aws('s3api', 'get-bucket-versioning', '--bucket', Bucket), { Status: 'Enabled' });
  const v1 = await s3.send(new PutObjectCommand({ Bucket, Key: 'k', Body: 'one' }));
  const v2 = await s3.send(new PutObjectCommand({ Bucket, Key: 'k', Body: 'two' }));
  t.not(v1.VersionId, v2.VersionId);
  t.equal(await text((await s3.send(new GetObjectCommand({ Bucket, Key: 'k', VersionId: v1.VersionId }))).Body), 'one');
  t.equal(await text((await s3.send(new GetObjectCommand({ Bucket, Key: 'k', VersionId: 'null' }))).Body), 'before versioning');

  const marker = await s3.send(new DeleteObjectCommand({ Bucket, Key: 'k' }));
  t.equal(marker.DeleteMarker, true);
  t.same(await s3Failure(s3.send(new GetObjectCommand({ Bucket, Key: 'k' }))), { code: 'NoSuchKey', status: 404 });
  const byMarkerId = await signedSend(cluster.endpoint, root, { method: 'GET', path: `/${Bucket}/k?versionId=${marker.VersionId}` });
  t.same([byMarkerId.status, errorCode(byMarkerId), byMarkerId.headers['x-amz-delete-marker']], [405, 'MethodNotAllowed', 'true']);
  t.same(await s3Failure(s3.send(new GetObjectCommand({ Bucket, Key: 'k', VersionId: '0000000000000000000000000' }))), { code: 'NoSuchVersion', status: 404 });
  const versions = await s3.send(new ListObjectVersionsCommand({ Bucket }));
  t.same([versions.Versions?.length, versions.DeleteMarkers?.length], [3, 1]);

  await s3.send(new DeleteObjectCommand({ Bucket, Key: 'k', VersionId: marker.VersionId }));
  t.equal(await text((await s3.send(new GetObjectCommand({ Bucket, Key: 'k' }))).Body), 'two', 'removing the marker uncovers the newest version');

  await s3.send(new PutBucketVersioningCommand({ Bucket, VersioningConfiguration: { Status: 'Suspended' } }));
  const suspended = await s3.send(new PutObjectCommand({ Bucket, Key: 'k', Body: 'suspended' }));
  t.equal(suspended.VersionId, 'null', 'suspended writes replace the null version');
  t.equal(await text((await s3.send(new GetObjectCommand({ Bucket, Key: 'k', VersionId: v2.VersionId }))).Body), 'two', 'older versions stay');
  const after = await s3.send(new ListObjectVersionsCommand({ Bucket }));
  t.same(after.Versions?.map((v) => v.VersionId).filter((id) => id === 'null').length, 1, 'one null version');

  const bad = await signedSend(cluster.endpoint, root, { method: 'PUT', path: `/${Bucket}?versioning`, body: '<VersioningConfiguration><Status>Maybe</Status></VersioningConfiguration>' });
  t.same([bad.status, errorCode(bad)], [400, 'IllegalVersioningConfigurationException']);
  const malformed = await signedSend(cluster.endpoint, root, { method: 'PUT', path: `/${Bucket}?versioning`, body: '<Nope/>' });
  t.same([malformed.status, errorCode(malformed)], [400, 'MalformedXML']);
});

t.test('object lock: default retention, COMPLIANCE and GOVERNANCE, legal hold', async (t) => {
  const Bucket = 'locked';
  await aws('s3api', 'create-bucket', '--bucket', Bucket, '--object-lock-enabled-for-bucket');
  t.same((await s3.send(new GetBucketVersioningCommand({ Bucket }))).Status, 'Enabled', 'object lock implies versioning');
  t.same(await s3Failure(s3.send(new PutBucketVersioningCommand({ Bucket, VersioningConfiguration: { Status: 'Suspended' } }))), { code: 'InvalidBucketState', status: 409 });
  await s3.send(new PutObjectLockConfigurationCommand({ Bucket, ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: 2 } } } }));
  t.same(await aws('s3api', 'get-object-lock-configuration', '--bucket', Bucket),
    { ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: 2 } } } });

  const byDefault = await s3.send(new PutObjectCommand({ Bucket, Key: 'backup/chunk-1', Body: 'immutable' }));
  const retention = await s3.send(new GetObjectRetentionCommand({ Bucket, Key: 'backup/chunk-1' }));
  t.equal(retention.Retention?.Mode, 'COMPLIANCE');
  const until = retention.Retention!.RetainUntilDate!.getTime();
  t.ok(until > Date.now() + 1.9 * DAY_MS && until < Date.now() + 2.1 * DAY_MS, 'two days from now');
  const head = await s3.send(new HeadObjectCommand({ Bucket, Key: 'backup/chunk-1' }));
  t.equal(head.ObjectLockMode, 'COMPLIANCE');
  t.same(await s3Failure(s3.send(new DeleteObjectCommand({ Bucket, Key: 'backup/chunk-1', VersionId: byDefault.VersionId }))), { code: 'AccessDenied', status: 403 });
  const bypass = await signedSend(cluster.endpoint, root, { method: 'DELETE', path: `/${Bucket}/backup/chunk-1?versionId=${byDefault.VersionId}`, headers: { 'x-amz-bypass-governance-retention': 'true' } });
  t.same([bypass.status, errorCode(bypass)], [403, 'AccessDenied'], 'COMPLIANCE cannot be bypassed');
  const shorten = new Date(Date.now() + DAY_MS);
  t.same(await s3Failure(s3.send(new PutObjectRetentionCommand({ Bucket, Key: 'backup/chunk-1', Retention: { Mode: 'COMPLIANCE', RetainUntilDate: shorten } }))), { code: 'AccessDenied', status: 403 });
  await s3.send(new PutObjectRetentionCommand({ Bucket, Key: 'backup/chunk-1', Retention: { Mode: 'COMPLIANCE', RetainUntilDate: new Date(Date.now() + 3 * DAY_MS) } }));
  const marker = await s3.send(new DeleteObjectCommand({ Bucket, Key: 'backup/chunk-1' }));
  t.equal(marker.DeleteMarker, true, 'a delete marker may still be placed over a locked version');
  t.equal(await text((await s3.send(new GetObjectCommand({ Bucket, Key: 'backup/chunk-1', VersionId: byDefault.VersionId }))).Body), 'immutable');

  const governed = await s3.send(new PutObjectCommand({ Bucket, Key: 'gov', Body: 'g', ObjectLockMode: 'GOVERNANCE', ObjectLockRetainUntilDate: new Date(Date.now() + DAY_MS) }));
  t.same(await s3Failure(s3.send(new DeleteObjectCommand({ Bucket, Key: 'gov', VersionId: governed.VersionId }))), { code: 'AccessDenied', status: 403 });
  await s3.send(new DeleteObjectCommand({ Bucket, Key: 'gov', VersionId: governed.VersionId, BypassGovernanceRetention: true }));
  t.same(await s3Failure(s3.send(new GetObjectCommand({ Bucket, Key: 'gov', VersionId: governed.VersionId }))), { code: 'NoSuchVersion', status: 404 });

  const held = await s3.send(new PutObjectCommand({ Bucket, Key: 'held', Body: 'h', ObjectLockLegalHoldStatus: 'ON', ObjectLockMode: 'GOVERNANCE', ObjectLockRetainUntilDate: new Date(Date.now() + DAY_MS) }));
  t.equal((await s3.send(new GetObjectLegalHoldCommand({ Bucket, Key: 'held' }))).LegalHold?.Status, 'ON');
  t.same(await s3Failure(s3.send(new DeleteObjectCommand({ Bucket, Key: 'held', VersionId: held.VersionId, BypassGovernanceRetention: true }))), { code: 'AccessDenied', status: 403 }, 'a legal hold is not bypassed');
  await s3.send(new PutObjectLegalHoldCommand({ Bucket, Key: 'held', LegalHold: { Status: 'OFF' } }));
  await s3.send(new DeleteObjectCommand({ Bucket, Key: 'held', VersionId: held.VersionId, BypassGovernanceRetention: true }));

  t.same(await s3Failure(s3.send(new PutObjectCommand({ Bucket, Key: 'past', Body: 'p', ObjectLockMode: 'GOVERNANCE', ObjectLockRetainUntilDate: new Date(Date.now() - DAY_MS) }))), { code: 'InvalidArgument', status: 400 });
  const halfHeaders = await signedSend(cluster.endpoint, root, { method: 'PUT', path: `/${Bucket}/half`, body: 'x', headers: { 'x-amz-object-lock-mode': 'GOVERNANCE' } });
  t.same([halfHeaders.status, errorCode(halfHeaders)], [400, 'InvalidArgument']);

  await s3.send(new CreateBucketCommand({ Bucket: 'unlocked' }));
  await s3.send(new PutObjectCommand({ Bucket: 'unlocked', Key: 'k', Body: 'k' }));
  t.same(await s3Failure(s3.send(new GetObjectLockConfigurationCommand({ Bucket: 'unlocked' }))), { code: 'ObjectLockConfigurationNotFoundError', status: 404 });
  t.same(await s3Failure(s3.send(new PutObjectLockConfigurationCommand({ Bucket: 'unlocked', ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled' } }))), { code: 'InvalidBucketState', status: 409 });
  t.same(await s3Failure(s3.send(new GetObjectRetentionCommand({ Bucket: 'unlocked', Key: 'k' }))), { code: 'InvalidRequest', status: 400 });
  t.same(await s3Failure(s3.send(new PutObjectCommand({ Bucket: 'unlocked', Key: 'k2', Body: 'x', ObjectLockLegalHoldStatus: 'ON' }))), { code: 'InvalidRequest', status: 400 });
  const plain = await s3.send(new PutObjectCommand({ Bucket, Key: 'plain', Body: 'x', ObjectLockMode: 'GOVERNANCE', ObjectLockRetainUntilDate: new Date(Date.now() + DAY_MS) }));
  t.ok(plain.VersionId);
  t.same(await s3Failure(s3.send(new GetObjectLegalHoldCommand({ Bucket, Key: 'plain' }))), { code: 'NoSuchObjectLockConfiguration', status: 404 });
  const badMode = await signedSend(cluster.endpoint, root, { method: 'PUT', path: `/${Bucket}/plain?retention`, body: '<Retention><Mode>FOREVER</Mode><RetainUntilDate>2099-01-01T00:00:00Z</RetainUntilDate></Retention>' });
  t.same([badMode.status, errorCode(badMode)], [400, 'MalformedXML']);
});

t.test('tagging: objects (per version) and buckets', async (t) => {
  const Bucket = 'tagged';
  await s3.send(new CreateBucketCommand({ Bucket }));
  await s3.send(new PutObjectCommand({ Bucket, Key: 'k', Body: 'x', Tagging: 'team=storage&tier=hot' }));
  t.equal((await s3.send(new HeadObjectCommand({ Bucket, Key: 'k' }))).$metadata.httpStatusCode, 200);
  t.equal((await s3.send(new GetObjectCommand({ Bucket, Key: 'k' }))).TagCount, 2);
  t.same((await s3.send(new GetObjectTaggingCommand({ Bucket, Key: 'k' }))).TagSet, [{ Key: 'team', Value: 'storage' }, { Key: 'tier', Value: 'hot' }]);
  await aws('s3api', 'put-object-tagging', '--bucket', Bucket, '--key', 'k', '--tagging', 'TagSet=[{Key=owner,Value=alice}]');
  t.same(await aws('s3api', 'get-object-tagging', '--bucket', Bucket, '--key', 'k'), { TagSet: [{ Key: 'owner', Value: 'alice' }] });
  await s3.send(new DeleteObjectTaggingCommand({ Bucket, Key: 'k' }));
  t.same((await s3.send(new GetObjectTaggingCommand({ Bucket, Key: 'k' }))).TagSet, []);
  const tooMany = Array.from({ length: 11 }, (_, i) => ({ Key: `k${i}`, Value: 'v' }));
  t.same(await s3Failure(s3.send(new PutObjectTaggingCommand({ Bucket, Key: 'k', Tagging: { TagSet: tooMany } }))), { code: 'InvalidTag', status: 400 });
  t.same(await s3Failure(s3.send(new PutObjectTaggingCommand({ Bucket, Key: 'k', Tagging: { TagSet: [{ Key: 'a', Value: '1' }, { Key: 'a', Value: '2' }] } }))), { code: 'InvalidTag', status: 400 });
  t.same(await s3Failure(s3.send(new GetObjectTaggingCommand({ Bucket, Key: 'missing' }))), { code: 'NoSuchKey', status: 404 });

  t.same(await s3Failure(s3.send(new GetBucketTaggingCommand({ Bucket }))), { code: 'NoSuchTagSet', status: 404 });
  await s3.send(new PutBucketTaggingCommand({ Bucket, Tagging: { TagSet: [{ Key: 'cost-center', Value: '42' }] } }));
  t.same((await s3.send(new GetBucketTaggingCommand({ Bucket }))).TagSet, [{ Key: 'cost-center', Value: '42' }]);
  await s3.send(new DeleteBucketTaggingCommand({ Bucket }));
  t.same(await s3Failure(s3.send(new GetBucketTaggingCommand({ Bucket }))), { code: 'NoSuchTagSet', status: 404 });
});

t.test('CopyObject: directives, preconditions, versions, across buckets, onto itself', async (t) => {
  const Bucket = 'copies';
  await s3.send(new CreateBucketCommand({ Bucket }));
  await s3.send(new CreateBucketCommand({ Bucket: 'copies-target' }));
  await s3.send(new PutBucketVersioningCommand({ Bucket, VersioningConfiguration: { Status: 'Enabled' } }));
  const first = await s3.send(new PutObjectCommand({ Bucket, Key: 'src', Body: 'first', ContentType: 'text/plain', Metadata: { color: 'red' }, Tagging: 'a=1' }));
  const second = await s3.send(new PutObjectCommand({ Bucket, Key: 'src', Body: 'second', ContentType: 'text/plain', Metadata: { color: 'blue' } }));

  const copied = await s3.send(new CopyObjectCommand({ Bucket: 'copies-target', Key: 'dst', CopySource: `${Bucket}/src` }));
  t.equal(copied.CopySourceVersionId, second.VersionId);
  t.equal(copied.CopyObjectResult?.ETag, second.ETag);
  const dst = await s3.send(new GetObjectCommand({ Bucket: 'copies-target', Key: 'dst' }));
  t.same([await text(dst.Body), dst.ContentType, dst.Metadata], ['second', 'text/plain', { color: 'blue' }], 'COPY keeps the metadata');

  const old = await s3.send(new CopyObjectCommand({ Bucket: 'copies-target', Key: 'old', CopySource: `${Bucket}/src?versionId=${first.VersionId}` }));
  t.equal(old.CopySourceVersionId, first.VersionId);
  const oldObject = await s3.send(new GetObjectCommand({ Bucket: 'copies-target', Key: 'old' }));
  t.same([await text(oldObject.Body), oldObject.TagCount], ['first', 1], 'tags are copied by default');

  await s3.send(new CopyObjectCommand({ Bucket: 'copies-target', Key: 'replaced', CopySource: `${Bucket}/src`, MetadataDirective: 'REPLACE',
    ContentType: 'application/json', Metadata: { shape: 'round' }, TaggingDirective: 'REPLACE', Tagging: 'b=2&c=3' }));
  const replaced = await s3.send(new GetObjectCommand({ Bucket: 'copies-target', Key: 'replaced' }));
  t.same([replaced.ContentType, replaced.Metadata, replaced.TagCount], ['application/json', { shape: 'round' }, 2]);

  t.same(await s3Failure(s3.send(new CopyObjectCommand({ Bucket, Key: 'src', CopySource: `${Bucket}/src` }))), { code: 'InvalidRequest', status: 400 }, 'onto itself without REPLACE');
  await s3.send(new CopyObjectCommand({ Bucket, Key: 'src', CopySource: `${Bucket}/src`, MetadataDirective: 'REPLACE', Metadata: { color: 'green' } }));
  t.same((await s3.send(new HeadObjectCommand({ Bucket, Key: 'src' }))).Metadata, { color: 'green' }, 'metadata changed in place');

  const etag = second.ETag!;
  t.same(await s3Failure(s3.send(new CopyObjectCommand({ Bucket: 'copies-target', Key: 'c', CopySource: `${Bucket}/src?versionId=${second.VersionId}`, CopySourceIfMatch: '"nope"' }))), { code: 'PreconditionFailed', status: 412 });
  t.same(await s3Failure(s3.send(new CopyObjectCommand({ Bucket: 'copies-target', Key: 'c', CopySource: `${Bucket}/src?versionId=${second.VersionId}`, CopySourceIfNoneMatch: etag }))), { code: 'PreconditionFailed', status: 412 });
  t.same(await s3Failure(s3.send(new CopyObjectCommand({ Bucket: 'copies-target', Key: 'c', CopySource: `${Bucket}/src`, CopySourceIfModifiedSince: new Date(Date.now() + DAY_MS) }))), { code: 'PreconditionFailed', status: 412 });
  t.same(await s3Failure(s3.send(new CopyObjectCommand({ Bucket: 'copies-target', Key: 'c', CopySource: `${Bucket}/src`, CopySourceIfUnmodifiedSince: new Date(Date.now() - DAY_MS) }))), { code: 'PreconditionFailed', status: 412 });
  await s3.send(new CopyObjectCommand({ Bucket: 'copies-target', Key: 'c', CopySource: `${Bucket}/src?versionId=${second.VersionId}`, CopySourceIfMatch: etag }));
  t.same(await s3Failure(s3.send(new CopyObjectCommand({ Bucket: 'copies-target', Key: 'c', CopySource: `${Bucket}/missing` }))), { code: 'NoSuchKey', status: 404 });
  t.same(await s3Failure(s3.send(new CopyObjectCommand({ Bucket: 'copies-target', Key: 'c', CopySource: 'no-such-source-bucket/k' }))), { code: 'NoSuchBucket', status: 404 });
  const badSource = await signedSend(cluster.endpoint, root, { method: 'PUT', path: '/copies-target/c', headers: { 'x-amz-copy-source': 'just-a-bucket' } });
  t.same([badSource.status, errorCode(badSource)], [400, 'InvalidArgument']);

  const cli = await aws('s3api', 'copy-object', '--bucket', 'copies-target', '--key', 'via-cli', '--copy-source', `${Bucket}/src`) as { CopyObjectResult: { ETag: string } };
  t.match(cli.CopyObjectResult.ETag, /^"[0-9a-f]{32}"$/);
});
