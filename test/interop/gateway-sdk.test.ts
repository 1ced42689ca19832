// The gateway through @aws-sdk/client-s3 (and SDK-signed raw requests) against a real
// multi-process cluster: buckets, objects, ranges, conditionals, checksums, versions, listing,
// deletes, and the S3 error each misuse produces.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import {
  CopyObjectCommand, CreateBucketCommand, GetBucketAccelerateConfigurationCommand, GetBucketLoggingCommand, GetBucketNotificationConfigurationCommand,
  GetBucketReplicationCommand, GetBucketRequestPaymentCommand, DeleteBucketCommand, DeleteObjectCommand, DeleteObjectsCommand, GetBucketLocationCommand,
  GetObjectAttributesCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, ListBucketsCommand, ListObjectsCommand, ListObjectsV2Command,
  ListObjectVersionsCommand, type ListObjectsV2CommandOutput, PutObjectCommand,
} from '@aws-sdk/client-s3';
import fc from 'fast-check';
import t from 'tap';
import { KEYS_NAMESPACE, type AccessKeyRecord } from '../../src/gateway/auth/keys.js';
import { createClusterClient } from '../../src/replication/cluster-client.js';
import { startCluster } from '../lib/cluster.js';
import { errorCode, send, signedRequest, signedSend, type Credentials } from '../lib/s3-request.js';
import { s3Client, s3Failure } from '../lib/s3-sdk.js';

const cluster = await startCluster({ nodes: 4 });
t.teardown(() => cluster.stop());
const root: Credentials = { accessKeyId: cluster.accessKeyId, secretAccessKey: cluster.secretAccessKey };

const clientFor = (credentials: Credentials) => s3Client(t, cluster.endpoint, credentials);
const s3 = clientFor(root);

const text = async (body: { transformToString(): Promise<string> } | undefined) => (body ? body.transformToString() : '');

t.test('buckets: create, rules, ownership, list pages, location, delete', async (t) => {
  await s3.send(new CreateBucketCommand({ Bucket: 'sdk-alpha' }));
  t.same(await s3Failure(s3.send(new CreateBucketCommand({ Bucket: 'sdk-alpha' }))), { code: 'BucketAlreadyOwnedByYou', status: 409 });
  for (const bad of ['ab', 'Upper-Case', 'double..dot', '192.168.1.1', '-start', 'xn--punycode']) {
    t.equal((await s3Failure(s3.send(new CreateBucketCommand({ Bucket: bad })))).code, 'InvalidBucketName', `refused: ${bad}`);
  }
  t.equal((await s3Failure(s3.send(new CreateBucketCommand({ Bucket: 'sdk-elsewhere', CreateBucketConfiguration: { LocationConstraint: 'eu-west-1' } })))).code, 'InvalidLocationConstraint');

  // A second user, added the way `tessera admin key` does: a record in the "keys" namespace.
  const clusterFile = JSON.parse(readFileSync(join(cluster.dataDir, 'cluster.json'), 'utf8')) as { secret: string; nodes: Array<{ address: string }> };
  const store = await createClusterClient({ seeds: clusterFile.nodes.map((n) => n.address), secret: clusterFile.secret });
  const other: Credentials = { accessKeyId: 'OTHERUSERKEY', secretAccessKey: 'other-user-secret' };
  const record: AccessKeyRecord = { secretAccessKey: other.secretAccessKey, userId: 'other-user', displayName: 'Other' };
  await store.putRecord(KEYS_NAMESPACE, other.accessKeyId, Buffer.from(JSON.stringify(record)));
  await store.close();
  const otherClient = clientFor(other);
  t.same(await s3Failure(otherClient.send(new CreateBucketCommand({ Bucket: 'sdk-alpha' }))), { code: 'BucketAlreadyExists', status: 409 });
  await otherClient.send(new CreateBucketCommand({ Bucket: 'sdk-others' }));
  t.same((await otherClient.send(new ListBucketsCommand({}))).Buckets?.map((b) => b.Name), ['sdk-others'], 'users see their own buckets');

  for (const name of ['sdk-page-1', 'sdk-page-2', 'sdk-page-3']) await s3.send(new CreateBucketCommand({ Bucket: name }));
  const names: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListBucketsCommand({ MaxBuckets: 2, Prefix: 'sdk-page-', ContinuationToken: token }));
    t.ok((page.Buckets ?? []).length <= 2);
    names.push(...(page.Buckets ?? []).map((b) => b.Name!));
    token = page.ContinuationToken;
  } while (token);
  t.same(names, ['sdk-page-1', 'sdk-page-2', 'sdk-page-3'], 'pages with max-buckets, prefix and continuation tokens');
  t.ok((await s3.send(new ListBucketsCommand({}))).Buckets?.some((b) => b.Name === 'sdk-others'), 'root sees every bucket');

  t.equal((await s3.send(new GetBucketLocationCommand({ Bucket: 'sdk-alpha' }))).LocationConstraint, undefined, 'us-east-1 is the empty constraint');
  // Features Tessera does not offer read as "off", as tools that inspect every bucket setting expect.
  t.equal((await s3.send(new GetBucketRequestPaymentCommand({ Bucket: 'sdk-alpha' }))).Payer, 'BucketOwner');
  t.equal((await s3.send(new GetBucketAccelerateConfigurationCommand({ Bucket: 'sdk-alpha' }))).Status, undefined);
  t.equal((await s3.send(new GetBucketLoggingCommand({ Bucket: 'sdk-alpha' }))).LoggingEnabled, undefined);
  t.same((await s3.send(new GetBucketNotificationConfigurationCommand({ Bucket: 'sdk-alpha' }))).QueueConfigurations, undefined);
  t.same(await s3Failure(s3.send(new GetBucketReplicationCommand({ Bucket: 'sdk-alpha' }))), { code: 'ReplicationConfigurationNotFoundError', status: 404 });
  t.same(await s3Failure(s3.send(new GetBucketLoggingCommand({ Bucket: 'sdk-nonexistent' }))), { code: 'NoSuchBucket', status: 404 });
  await s3.send(new HeadBucketCommand({ Bucket: 'sdk-alpha' }));
  t.same(await s3Failure(s3.send(new HeadBucketCommand({ Bucket: 'sdk-missing' }))), { code: 'NotFound', status: 404 });
  t.equal((await s3Failure(s3.send(new GetBucketLocationCommand({ Bucket: 'sdk-missing' })))).code, 'NoSuchBucket');

  await s3.send(new PutObjectCommand({ Bucket: 'sdk-page-1', Key: 'k', Body: 'x' }));
  t.same(await s3Failure(s3.send(new DeleteBucketCommand({ Bucket: 'sdk-page-1' }))), { code: 'BucketNotEmpty', status: 409 });
  await s3.send(new DeleteObjectCommand({ Bucket: 'sdk-page-1', Key: 'k' }));
  await s3.send(new DeleteBucketCommand({ Bucket: 'sdk-page-1' }));
  t.equal((await s3Failure(s3.send(new HeadBucketCommand({ Bucket: 'sdk-page-1' })))).status, 404, 'deleted');
});

t.test('objects: metadata, headers, ranges, conditionals, checksums', async (t) => {
  await s3.send(new CreateBucketCommand({ Bucket: 'sdk-objects' }));
  const body = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 31) & 0xff));
  const key = 'folder/ünï cødé + (1)?.bin';
  const put = await s3.send(new PutObjectCommand({
    Bucket: 'sdk-objects', Key: key, Body: body, ContentType: 'application/x-test', CacheControl: 'max-age=60',
    ContentDisposition: 'attachment; filename="x.bin"', ContentLanguage: 'fr', Expires: new Date('2030-01-01T00:00:00Z'),
    Metadata: { plain: 'value', accent: 'déjà vu' }, StorageClass: 'STANDARD_IA', Tagging: 'a=1&b=two', ChecksumAlgorithm: 'CRC64NVME',
  }));
  t.match(put.ETag, /^"[0-9a-f]{32}"$/);
  t.ok(put.ChecksumCRC64NVME, 'the checksum is echoed');

  const head = await s3.send(new HeadObjectCommand({ Bucket: 'sdk-objects', Key: key, ChecksumMode: 'ENABLED' }));
  t.equal(head.ContentLength, body.length);
  t.equal(head.ContentType, 'application/x-test');
  t.equal(head.CacheControl, 'max-age=60');
  t.equal(head.ContentDisposition, 'attachment; filename="x.bin"');
  t.equal(head.ContentLanguage, 'fr');
  t.same(head.Metadata, { plain: 'value', accent: 'déjà vu' }, 'user metadata round-trips exactly');
  t.equal(head.StorageClass, 'STANDARD_IA');
  t.equal(head.TagCount, 2);
  t.equal(head.ChecksumCRC64NVME, put.ChecksumCRC64NVME);
  t.equal(head.AcceptRanges, 'bytes');
  t.equal(head.ETag, put.ETag);

  const attributes = await s3.send(new GetObjectAttributesCommand({ Bucket: 'sdk-objects', Key: key, ObjectAttributes: ['ETag', 'Checksum', 'ObjectSize', 'StorageClass', 'ObjectParts'] }));
  t.same([`"${attributes.ETag}"`, attributes.ObjectSize, attributes.StorageClass, attributes.Checksum?.ChecksumCRC64NVME, attributes.ObjectParts],
    [put.ETag, body.length, 'STANDARD_IA', put.ChecksumCRC64NVME, undefined], 'GetObjectAttributes');
  const badAttribute = await signedSend(cluster.endpoint, root, { method: 'GET', path: `/sdk-objects/${encodeURIComponent(key)}?attributes`, headers: { 'x-amz-object-attributes': 'Colour' } });
  t.same([badAttribute.status, errorCode(badAttribute)], [400, 'InvalidArgument']);

  const whole = await s3.send(new GetObjectCommand({ Bucket: 'sdk-objects', Key: key, ChecksumMode: 'ENABLED' }));
  t.ok(Buffer.from(await whole.Body!.transformToByteArray()).equals(body), 'the bytes come back (and the SDK validated the checksum)');
  const ranged = async (range: string) => {
    const reply = await s3.send(new GetObjectCommand({ Bucket: 'sdk-objects', Key: key, Range: range }));
    return { bytes: Buffer.from(await reply.Body!.transformToByteArray()), contentRange: reply.ContentRange };
  };
  t.same(await ranged('bytes=10-19'), { bytes: body.subarray(10, 20), contentRange: `bytes 10-19/${body.length}` });
  t.same(await ranged('bytes=199990-'), { bytes: body.subarray(199_990), contentRange: `bytes 199990-199999/${body.length}` });
  t.same(await ranged('bytes=-5'), { bytes: body.subarray(-5), contentRange: `bytes 199995-199999/${body.length}` });
  t.same(await s3Failure(s3.send(new GetObjectCommand({ Bucket: 'sdk-objects', Key: key, Range: 'bytes=200000-' }))), { code: 'InvalidRange', status: 416 });
  const raw416 = await signedSend(cluster.endpoint, root, { method: 'GET', path: `/sdk-objects/${encodeURIComponent(key)}`, headers: { range: 'bytes=999999-' } });
  t.equal(raw416.headers['content-range'], `bytes */${body.length}`);
  const part = await s3.send(new GetObjectCommand({ Bucket: 'sdk-objects', Key: key, PartNumber: 1 }));
  t.equal(part.PartsCount, 1);
  t.equal(part.ContentLength, body.length);
  t.equal((await s3Failure(s3.send(new HeadObjectCommand({ Bucket: 'sdk-objects', Key: key, PartNumber: 2 })))).status, 416);

  const overridden = await s3.send(new GetObjectCommand({ Bucket: 'sdk-objects', Key: key, ResponseContentType: 'text/plain', ResponseContentDisposition: 'inline', ResponseCacheControl: 'no-cache' }));
  t.same([overridden.ContentType, overridden.ContentDisposition, overridden.CacheControl], ['text/plain', 'inline', 'no-cache']);
  await overridden.Body!.transformToByteArray();

  t.equal((await s3Failure(s3.send(new GetObjectCommand({ Bucket: 'sdk-objects', Key: key, IfNoneMatch: put.ETag })))).status, 304);
  t.same(await s3Failure(s3.send(new GetObjectCommand({ Bucket: 'sdk-objects', Key: key, IfMatch: '"0000"' }))), { code: 'PreconditionFailed', status: 412 });
  t.equal((await s3Failure(s3.send(new HeadObjectCommand({ Bucket: 'sdk-objects', Key: key, IfModifiedSince: new Date(Date.now() + 60_000) })))).status, 304);
  t.equal((await s3Failure(s3.send(new HeadObjectCommand({ Bucket: 'sdk-objects', Key: key, IfUnmodifiedSince: new Date('2000-01-01') })))).status, 412);

  // Conditional writes.
  await s3.send(new PutObjectCommand({ Bucket: 'sdk-objects', Key: 'once', Body: 'first', IfNoneMatch: '*' }));
  t.same(await s3Failure(s3.send(new PutObjectCommand({ Bucket: 'sdk-objects', Key: 'once', Body: 'second', IfNoneMatch: '*' }))), { code: 'PreconditionFailed', status: 412 });
  t.equal((await s3Failure(s3.send(new PutObjectCommand({ Bucket: 'sdk-objects', Key: 'once', Body: 'x', IfMatch: '"abc"' })))).code, 'PreconditionFailed');
  t.equal((await s3Failure(s3.send(new PutObjectCommand({ Bucket: 'sdk-objects', Key: 'never-written', Body: 'x', IfMatch: '"abc"' })))).code, 'NoSuchKey');
  const current = await s3.send(new HeadObjectCommand({ Bucket: 'sdk-objects', Key: 'once' }));
  await s3.send(new PutObjectCommand({ Bucket: 'sdk-objects', Key: 'once', Body: 'replaced', IfMatch: current.ETag }));
  t.equal(await text((await s3.send(new GetObjectCommand({ Bucket: 'sdk-objects', Key: 'once' }))).Body), 'replaced');

  t.equal((await s3Failure(s3.send(new PutObjectCommand({ Bucket: 'sdk-objects', Key: 'k', Body: 'x', StorageClass: 'NOPE' as 'STANDARD' })))).code, 'InvalidStorageClass');
  t.equal((await s3Failure(s3.send(new PutObjectCommand({ Bucket: 'sdk-objects', Key: 'k', Body: 'x', Tagging: 'a=1&a=2' })))).code, 'InvalidTag');
  t.same(await s3Failure(s3.send(new GetObjectCommand({ Bucket: 'sdk-objects', Key: 'absent' }))), { code: 'NoSuchKey', status: 404 });
  t.same(await s3Failure(s3.send(new GetObjectCommand({ Bucket: 'sdk-missing', Key: 'absent' }))), { code: 'NoSuchBucket', status: 404 });
  t.same(await s3Failure(s3.send(new GetObjectCommand({ Bucket: 'sdk-objects', Key: 'once', VersionId: 'no-such-version' }))), { code: 'NoSuchVersion', status: 404 });
});

t.test('a body that fails verification stores nothing', async (t) => {
  await s3.send(new CreateBucketCommand({ Bucket: 'sdk-verify' }));
  const path = '/sdk-verify/victim';
  const badMd5 = await signedSend(cluster.endpoint, root, { method: 'PUT', path, body: 'payload', payloadHash: 'UNSIGNED-PAYLOAD', headers: { 'content-md5': '1B2M2Y8AsgTpgAmY7PhCfg==' } });
  t.same([badMd5.status, errorCode(badMd5)], [400, 'BadDigest']);
  const badSha = await signedSend(cluster.endpoint, root, { method: 'PUT', path, body: 'payload', payloadHash: 'a'.repeat(64) });
  t.same([badSha.status, errorCode(badSha)], [400, 'XAmzContentSHA256Mismatch']);
  const badCrc = await signedSend(cluster.endpoint, root, { method: 'PUT', path, body: 'payload', payloadHash: 'UNSIGNED-PAYLOAD', headers: { 'x-amz-checksum-crc32c': 'AAAAAA==' } });
  t.same([badCrc.status, errorCode(badCrc)], [400, 'BadDigest']);
  const big = Buffer.alloc(2_000_000, 1);
  const badBig = await signedSend(cluster.endpoint, root, { method: 'PUT', path, body: big, payloadHash: 'b'.repeat(64) });
  t.equal(errorCode(badBig), 'XAmzContentSHA256Mismatch', 'also for a multi-stripe body');
  t.equal((await s3Failure(s3.send(new HeadObjectCommand({ Bucket: 'sdk-verify', Key: 'victim' })))).status, 404, 'nothing became visible');

  // A client that disconnects half-way through its body.
  const partial = await signedRequest(cluster.endpoint, root, { method: 'PUT', path: '/sdk-verify/half', payloadHash: 'UNSIGNED-PAYLOAD', headers: { 'content-length': '3000000' } });
  await new Promise<void>((resolve) => {
    const req = httpRequest(`${cluster.endpoint}${partial.path}`, { method: 'PUT', headers: partial.headers });
    req.on('error', () => resolve());
    req.write(Buffer.alloc(1_500_000, 9), () => setTimeout(() => { req.destroy(); resolve(); }, 200));
  });
  t.equal((await s3Failure(s3.send(new HeadObjectCommand({ Bucket: 'sdk-verify', Key: 'half' })))).status, 404, 'an interrupted upload leaves nothing');
  await s3.send(new PutObjectCommand({ Bucket: 'sdk-verify', Key: 'half', Body: 'complete' }));
  t.equal(await text((await s3.send(new GetObjectCommand({ Bucket: 'sdk-verify', Key: 'half' }))).Body), 'complete', 'and the key is writable afterwards');

  const tooLarge = await signedSend(cluster.endpoint, root, { method: 'PUT', path, payloadHash: 'UNSIGNED-PAYLOAD', headers: { 'content-length': String(5 * 1024 ** 3 + 1) } });
  t.same([tooLarge.status, errorCode(tooLarge)], [400, 'EntityTooLarge']);
});

t.test('PUTs pipelined on one connection: each body ends where its Content-Length says', async (t) => {
  await s3.send(new CreateBucketCommand({ Bucket: 'sdk-pipelined' }));
  const first = Buffer.alloc(3_000_000, 1).fill(7, 1_000_000);
  const second = Buffer.from('the second body follows the first on the wire');
  const md5 = (data: Buffer) => createHash('md5').update(data).digest('base64');
  const request = async (key: string, body: Buffer, payloadHash: string) => {
    const signed = await signedRequest(cluster.endpoint, root, { method: 'PUT', path: `/sdk-pipelined/${key}`, payloadHash, body, headers: { 'content-length': String(body.length), 'content-md5': md5(body) } });
    const lines = Object.entries(signed.headers).map(([name, value]) => `${name}: ${value}`);
    return Buffer.concat([Buffer.from(`PUT ${signed.path} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`), body]);
  };
  const wire = Buffer.concat([await request('first', first, 'UNSIGNED-PAYLOAD'), await request('second', second, createHash('sha256').update(second).digest('hex'))]);
  const url = new URL(cluster.endpoint);
  const statuses = await new Promise<string[]>((resolve, reject) => {
    let responses = '';
    const socket = connect(Number(url.port), url.hostname, () => socket.write(wire));
    socket.on('data', (c: Buffer) => {
      responses += c.toString();
      const found = [...responses.matchAll(/^HTTP\/1\.1 (\d+)/gm)].map((m) => m[1]!);
      if (found.length === 2) { socket.destroy(); resolve(found); }
    });
    socket.on('error', reject);
  });
  t.same(statuses, ['200', '200']);
  for (const [key, body] of [['first', first], ['second', second]] as const) {
    const stored = await s3.send(new GetObjectCommand({ Bucket: 'sdk-pipelined', Key: key }));
    t.ok(Buffer.from(await stored.Body!.transformToByteArray()).equals(body), `${key} stored intact`);
  }
});

t.test('versioned buckets: versions, delete markers, version listing', async (t) => {
  await s3.send(new CreateBucketCommand({ Bucket: 'sdk-versions', ObjectLockEnabledForBucket: true }));
  const v1 = await s3.send(new PutObjectCommand({ Bucket: 'sdk-versions', Key: 'doc', Body: 'one' }));
  const v2 = await s3.send(new PutObjectCommand({ Bucket: 'sdk-versions', Key: 'doc', Body: 'two' }));
  t.ok(v1.VersionId && v2.VersionId && v1.VersionId !== v2.VersionId && v1.VersionId !== 'null', 'each write is a new version');
  t.equal(await text((await s3.send(new GetObjectCommand({ Bucket: 'sdk-versions', Key: 'doc' }))).Body), 'two');
  t.equal(await text((await s3.send(new GetObjectCommand({ Bucket: 'sdk-versions', Key: 'doc', VersionId: v1.VersionId }))).Body), 'one');

  const removed = await s3.send(new DeleteObjectCommand({ Bucket: 'sdk-versions', Key: 'doc' }));
  t.equal(removed.DeleteMarker, true);
  t.ok(removed.VersionId);
  const gone = await signedSend(cluster.endpoint, root, { method: 'GET', path: '/sdk-versions/doc', headers: {} });
  t.same([gone.status, errorCode(gone), gone.headers['x-amz-delete-marker']], [404, 'NoSuchKey', 'true']);
  const marker = await signedSend(cluster.endpoint, root, { method: 'GET', path: `/sdk-versions/doc?versionId=${removed.VersionId}`, headers: {} });
  t.same([marker.status, errorCode(marker)], [405, 'MethodNotAllowed'], 'a delete marker cannot be read');
  t.equal(await text((await s3.send(new GetObjectCommand({ Bucket: 'sdk-versions', Key: 'doc', VersionId: v2.VersionId }))).Body), 'two', 'old versions survive');

  await s3.send(new PutObjectCommand({ Bucket: 'sdk-versions', Key: 'other', Body: 'x' }));
  const listing = await s3.send(new ListObjectVersionsCommand({ Bucket: 'sdk-versions' }));
  t.same(listing.Versions?.map((v) => [v.Key, v.VersionId, v.IsLatest]), [['doc', v2.VersionId, false], ['doc', v1.VersionId, false], ['other', listing.Versions?.[2]?.VersionId, true]]);
  t.same(listing.DeleteMarkers?.map((m) => [m.Key, m.VersionId, m.IsLatest]), [['doc', removed.VersionId, true]]);

  const seen: string[] = [];
  let keyMarker: string | undefined;
  let versionIdMarker: string | undefined;
  for (;;) {
    const page = await s3.send(new ListObjectVersionsCommand({ Bucket: 'sdk-versions', MaxKeys: 1, KeyMarker: keyMarker, VersionIdMarker: versionIdMarker }));
    seen.push(...(page.Versions ?? []).map((v) => `${v.Key}@${v.VersionId}:${v.IsLatest}`), ...(page.DeleteMarkers ?? []).map((m) => `${m.Key}@${m.VersionId}:marker:${m.IsLatest}`));
    if (!page.IsTruncated) break;
    keyMarker = page.NextKeyMarker;
    versionIdMarker = page.NextVersionIdMarker;
  }
  t.same(seen, [`doc@${removed.VersionId}:marker:true`, `doc@${v2.VersionId}:false`, `doc@${v1.VersionId}:false`, `other@${listing.Versions?.[2]?.VersionId}:true`], 'one entry per page, IsLatest right across pages');

  await s3.send(new DeleteObjectCommand({ Bucket: 'sdk-versions', Key: 'doc', VersionId: removed.VersionId }));
  t.equal(await text((await s3.send(new GetObjectCommand({ Bucket: 'sdk-versions', Key: 'doc' }))).Body), 'two', 'removing the marker restores the object');
  await s3.send(new DeleteObjectCommand({ Bucket: 'sdk-versions', Key: 'doc', VersionId: v2.VersionId }));
  t.equal(await text((await s3.send(new GetObjectCommand({ Bucket: 'sdk-versions', Key: 'doc' }))).Body), 'one', 'removing a version by id');
});

t.test('listing: V2 pages, delimiters, start-after, encoding; V1 markers', async (t) => {
  await s3.send(new CreateBucketCommand({ Bucket: 'sdk-list' }));
  const keys = ['a', 'b/1', 'b/2', 'b/c/3', 'c d', 'd+e', 'z/', 'é']; // UTF-8 byte order: 'é' is 0xC3 0xA9
  for (const key of keys) await s3.send(new PutObjectCommand({ Bucket: 'sdk-list', Key: key, Body: key }));

  const all: string[] = [];
  let token: string | undefined;
  let pages = 0;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: 'sdk-list', MaxKeys: 3, ContinuationToken: token }));
    t.equal(page.KeyCount, page.Contents?.length ?? 0);
    t.equal(page.ContinuationToken, token, 'the request token is echoed');
    all.push(...(page.Contents ?? []).map((c) => c.Key!));
    token = page.NextContinuationToken;
    pages++;
  } while (token);
  t.same(all, keys, 'every key once, in UTF-8 byte order');
  t.equal(pages, 3);

  const rolled = await s3.send(new ListObjectsV2Command({ Bucket: 'sdk-list', Delimiter: '/' }));
  t.same(rolled.Contents?.map((c) => c.Key), ['a', 'c d', 'd+e', 'é']);
  t.same(rolled.CommonPrefixes?.map((p) => p.Prefix), ['b/', 'z/']);
  const nested = await s3.send(new ListObjectsV2Command({ Bucket: 'sdk-list', Prefix: 'b/', Delimiter: '/' }));
  t.same([nested.Contents?.map((c) => c.Key), nested.CommonPrefixes?.map((p) => p.Prefix)], [['b/1', 'b/2'], ['b/c/']]);

  const rolledPages: string[] = [];
  token = undefined;
  do {
    const page: ListObjectsV2CommandOutput = await s3.send(new ListObjectsV2Command({ Bucket: 'sdk-list', Delimiter: '/', MaxKeys: 1, ContinuationToken: token }));
    rolledPages.push(...(page.Contents ?? []).map((c) => c.Key!), ...(page.CommonPrefixes ?? []).map((p) => `${p.Prefix}*`));
    token = page.NextContinuationToken;
  } while (token);
  t.same(rolledPages, ['a', 'b/*', 'c d', 'd+e', 'z/*', 'é'], 'a page ending on a common prefix resumes after all of its keys');

  const after = await s3.send(new ListObjectsV2Command({ Bucket: 'sdk-list', StartAfter: 'b/2', FetchOwner: true }));
  t.same(after.Contents?.map((c) => c.Key), ['b/c/3', 'c d', 'd+e', 'z/', 'é']);
  t.equal(after.StartAfter, 'b/2');
  t.equal(after.Contents?.[0]?.Owner?.ID, 'tessera-root', 'fetch-owner');

  const encoded = await s3.send(new ListObjectsV2Command({ Bucket: 'sdk-list', EncodingType: 'url', Prefix: 'c' }));
  t.equal(encoded.EncodingType, 'url');
  t.same(encoded.Contents?.map((c) => c.Key), ['c+d'], 'url encoding (space as +)');

  const v1 = await s3.send(new ListObjectsCommand({ Bucket: 'sdk-list', MaxKeys: 2, Delimiter: '/' }));
  t.same([v1.Contents?.map((c) => c.Key), v1.CommonPrefixes?.map((p) => p.Prefix), v1.IsTruncated, v1.NextMarker], [['a'], ['b/'], true, 'b/']);
  const v1next = await s3.send(new ListObjectsCommand({ Bucket: 'sdk-list', Marker: v1.NextMarker, Delimiter: '/' }));
  t.same(v1next.Contents?.map((c) => c.Key), ['c d', 'd+e', 'é']);
  t.equal(v1next.Marker, 'b/');

  t.equal((await s3Failure(s3.send(new ListObjectsV2Command({ Bucket: 'sdk-list', MaxKeys: -1 })))).code, 'InvalidArgument');
  t.equal((await s3Failure(s3.send(new ListObjectsV2Command({ Bucket: 'sdk-list', ContinuationToken: '***' })))).code, 'InvalidArgument');
  t.equal((await s3Failure(s3.send(new ListObjectsV2Command({ Bucket: 'sdk-nothing' })))).code, 'NoSuchBucket');
});

t.test('DeleteObjects: results, quiet mode, per-key errors, malformed requests', async (t) => {
  await s3.send(new CreateBucketCommand({ Bucket: 'sdk-delete' }));
  for (const key of ['one', 'two', 'three']) await s3.send(new PutObjectCommand({ Bucket: 'sdk-delete', Key: key, Body: key }));
  const result = await s3.send(new DeleteObjectsCommand({ Bucket: 'sdk-delete', Delete: { Objects: [{ Key: 'one' }, { Key: 'missing' }, { Key: 'k'.repeat(1100) }] } }));
  t.same(result.Deleted?.map((d) => d.Key).sort(), ['missing', 'one'], 'deleting what is absent succeeds');
  t.same(result.Errors?.map((e) => e.Code), ['KeyTooLongError'], 'errors are per key');
  const quiet = await s3.send(new DeleteObjectsCommand({ Bucket: 'sdk-delete', Delete: { Quiet: true, Objects: [{ Key: 'two' }, { Key: 'three' }] } }));
  t.equal(quiet.Deleted, undefined, 'quiet mode reports only errors');
  t.equal((await s3.send(new ListObjectsV2Command({ Bucket: 'sdk-delete' }))).KeyCount, 0);

  // Conditional deletes: If-Match (or an ETag element per key) against the current version.
  const kept = await s3.send(new PutObjectCommand({ Bucket: 'sdk-delete', Key: 'guarded', Body: 'v1' }));
  t.same(await s3Failure(s3.send(new DeleteObjectCommand({ Bucket: 'sdk-delete', Key: 'guarded', IfMatch: '"0000"' }))), { code: 'PreconditionFailed', status: 412 });
  t.same(await s3Failure(s3.send(new DeleteObjectCommand({ Bucket: 'sdk-delete', Key: 'never-written', IfMatch: '*' }))), { code: 'NoSuchKey', status: 404 });
  const batch = await s3.send(new DeleteObjectsCommand({ Bucket: 'sdk-delete', Delete: { Objects: [{ Key: 'guarded', ETag: '"0000"' }] } }));
  t.same(batch.Errors?.map((e) => [e.Key, e.Code]), [['guarded', 'PreconditionFailed']], 'a stale ETag element fails that key');
  t.equal(await text((await s3.send(new GetObjectCommand({ Bucket: 'sdk-delete', Key: 'guarded' }))).Body), 'v1', 'a failed condition deletes nothing');
  await s3.send(new DeleteObjectCommand({ Bucket: 'sdk-delete', Key: 'guarded', IfMatch: kept.ETag }));
  t.equal((await s3Failure(s3.send(new HeadObjectCommand({ Bucket: 'sdk-delete', Key: 'guarded' })))).status, 404, 'the matching ETag deletes');
  await s3.send(new PutObjectCommand({ Bucket: 'sdk-delete', Key: 'guarded', Body: 'v2' }));
  const starred = await s3.send(new DeleteObjectsCommand({ Bucket: 'sdk-delete', Delete: { Objects: [{ Key: 'guarded', ETag: '*' }] } }));
  t.same(starred.Deleted?.map((d) => d.Key), ['guarded'], 'ETag * deletes what exists');

  const malformed = await signedSend(cluster.endpoint, root, { method: 'POST', path: '/sdk-delete?delete', body: '<Delete><Object><Key>x</Key></Delete>' });
  t.same([malformed.status, errorCode(malformed)], [400, 'MalformedXML']);
  const tooMany = `<Delete>${'<Object><Key>k</Key></Object>'.repeat(1001)}</Delete>`;
  t.equal(errorCode(await signedSend(cluster.endpoint, root, { method: 'POST', path: '/sdk-delete?delete', body: tooMany })), 'MalformedXML', 'at most 1000 keys');
});

t.test('protocol errors', async (t) => {
  const reply = await send(cluster.endpoint, { method: 'GET', path: '/sdk-objects/once', headers: {} });
  t.same([reply.status, errorCode(reply)], [403, 'AccessDenied'], 'anonymous requests are denied');
  t.match(reply.body, /<RequestId>[0-9A-F]{16}<\/RequestId>/);
  t.ok(reply.headers['x-amz-request-id'] && reply.headers['x-amz-id-2'], 'request ids on every response');
  const head = await send(cluster.endpoint, { method: 'HEAD', path: '/sdk-objects/once', headers: {} });
  t.same([head.status, head.body], [403, ''], 'HEAD errors carry no body');

  const wrongKey = clientFor({ accessKeyId: 'NOSUCHKEY', secretAccessKey: 'x' });
  t.same(await s3Failure(wrongKey.send(new ListBucketsCommand({}))), { code: 'InvalidAccessKeyId', status: 403 });
  const wrongSecret = clientFor({ accessKeyId: root.accessKeyId, secretAccessKey: 'wrong' });
  t.same(await s3Failure(wrongSecret.send(new ListBucketsCommand({}))), { code: 'SignatureDoesNotMatch', status: 403 });

  const owner = (await s3.send(new ListBucketsCommand({}))).Owner!.ID!;
  t.equal((await s3.send(new HeadObjectCommand({ Bucket: 'sdk-objects', Key: 'once', ExpectedBucketOwner: owner }))).ContentLength, 8, 'the right expected owner passes');
  t.equal((await s3Failure(s3.send(new HeadObjectCommand({ Bucket: 'sdk-objects', Key: 'once', ExpectedBucketOwner: '111122223333' })))).status, 403, 'another expected owner is refused');
  t.same(await s3Failure(s3.send(new ListObjectsV2Command({ Bucket: 'sdk-objects', ExpectedBucketOwner: '111122223333' }))), { code: 'AccessDenied', status: 403 });
  t.same(await s3Failure(s3.send(new CopyObjectCommand({ Bucket: 'sdk-objects', Key: 'copied', CopySource: 'sdk-objects/once', ExpectedSourceBucketOwner: '111122223333' }))), { code: 'AccessDenied', status: 403 }, 'also for a copy source');

  const notImplemented = await signedSend(cluster.endpoint, root, { method: 'GET', path: '/sdk-objects?torrent', headers: {} });
  t.same([notImplemented.status, errorCode(notImplemented)], [501, 'NotImplemented']);
  const notAllowed = await signedSend(cluster.endpoint, root, { method: 'POST', path: '/sdk-objects/once', headers: {} });
  t.same([notAllowed.status, errorCode(notAllowed)], [405, 'MethodNotAllowed']);
  const badXml = await signedSend(cluster.endpoint, root, { method: 'PUT', path: '/sdk-badxml', body: '<CreateBucketConfiguration>' });
  t.same([badXml.status, errorCode(badXml)], [400, 'MalformedXML']);
});

t.test('Expect: 100-continue is answered only when the body is wanted', async (t) => {
  const attempt = async (credentials: Credentials) => {
    const body = Buffer.alloc(100_000, 3);
    const signed = await signedRequest(cluster.endpoint, credentials, { method: 'PUT', path: '/sdk-objects/continued', payloadHash: 'UNSIGNED-PAYLOAD', headers: { expect: '100-continue', 'content-length': String(body.length) } });
    return new Promise<{ status: number; continued: boolean }>((resolve, reject) => {
      let continued = false;
      const req = httpRequest(`${cluster.endpoint}${signed.path}`, { method: 'PUT', headers: signed.headers });
      req.on('continue', () => { continued = true; req.end(body); });
      req.on('response', (res) => { res.resume(); res.on('end', () => resolve({ status: res.statusCode ?? 0, continued })); });
      req.on('error', reject);
      req.flushHeaders();
    });
  };
  t.same(await attempt(root), { status: 200, continued: true });
  t.same(await attempt({ accessKeyId: root.accessKeyId, secretAccessKey: 'wrong' }), { status: 403, continued: false }, 'a refused request never receives the body');
});

t.test('header bytes: UTF-8 metadata sent raw round-trips, size limits, missing length', async (t) => {
  const utf8 = Buffer.from('日本語 ✓', 'utf8').toString('latin1'); // as Go's net/http puts it on the wire
  const put = await signedSend(cluster.endpoint, root, { method: 'PUT', path: '/sdk-objects/utf8-meta', body: 'x', headers: { 'x-amz-meta-label': utf8 } });
  t.equal(put.status, 200, put.body);
  const head = await signedSend(cluster.endpoint, root, { method: 'HEAD', path: '/sdk-objects/utf8-meta', headers: {} });
  t.equal(Buffer.from(String(head.headers['x-amz-meta-label']), 'latin1').toString('utf8'), '日本語 ✓', 'the same bytes come back');

  const tooMuch = await signedSend(cluster.endpoint, root, { method: 'PUT', path: '/sdk-objects/meta-heavy', body: 'x', headers: { 'x-amz-meta-a': 'v'.repeat(1500), 'x-amz-meta-b': 'v'.repeat(1000) } });
  t.same([tooMuch.status, errorCode(tooMuch)], [400, 'MetadataTooLarge']);

  // No Content-Length and no Transfer-Encoding: the body length is unknown.
  const signed = await signedRequest(cluster.endpoint, root, { method: 'PUT', path: '/sdk-objects/no-length', payloadHash: 'UNSIGNED-PAYLOAD' });
  const url = new URL(cluster.endpoint);
  const raw = await new Promise<string>((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname, () => {
      const lines = Object.entries(signed.headers).map(([name, value]) => `${name}: ${value}`);
      socket.write(`PUT /sdk-objects/no-length HTTP/1.1\r\n${lines.join('\r\n')}\r\nconnection: close\r\n\r\n`);
    });
    let response = '';
    socket.on('data', (c: Buffer) => { response += c.toString(); });
    socket.on('end', () => resolve(response));
    socket.on('error', reject);
  });
  t.match(raw, /^HTTP\/1\.1 411/);
  t.match(raw, /<Code>MissingContentLength<\/Code>/);
});

t.test('a versioned bucket lists only keys whose newest version is not a delete marker', async (t) => {
  await s3.send(new CreateBucketCommand({ Bucket: 'sdk-versioned-list', ObjectLockEnabledForBucket: true }));
  for (const key of ['keep', 'drop']) await s3.send(new PutObjectCommand({ Bucket: 'sdk-versioned-list', Key: key, Body: key }));
  await s3.send(new DeleteObjectCommand({ Bucket: 'sdk-versioned-list', Key: 'drop' }));
  t.same((await s3.send(new ListObjectsV2Command({ Bucket: 'sdk-versioned-list' }))).Contents?.map((c) => c.Key), ['keep']);
  t.same((await s3.send(new ListObjectsCommand({ Bucket: 'sdk-versioned-list' }))).Contents?.map((c) => c.Key), ['keep']);
});

t.test('ListObjectsV2 pages agree with a model listing for random prefixes, delimiters and page sizes', async (t) => {
  await s3.send(new CreateBucketCommand({ Bucket: 'sdk-list-model' }));
  const alphabet = ['a', 'b', '/', 'é', '-', ' ', 'z'];
  const keys = fc.sample(fc.array(fc.constantFrom(...alphabet), { minLength: 1, maxLength: 5 }).map((chars) => chars.join('')), { numRuns: 60, seed: 42 });
  const unique = [...new Set(keys)];
  for (let i = 0; i < unique.length; i += 8) {
    await Promise.all(unique.slice(i, i + 8).map((key) => s3.send(new PutObjectCommand({ Bucket: 'sdk-list-model', Key: key, Body: key }))));
  }
  const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));
  const model = (prefix: string, delimiter: string | undefined) => {
    const contents: string[] = [];
    const prefixes = new Set<string>();
    for (const key of [...unique].sort(byteOrder)) {
      if (!key.startsWith(prefix)) continue;
      const cut = delimiter ? key.indexOf(delimiter, prefix.length) : -1;
      if (cut >= 0) prefixes.add(key.slice(0, cut + delimiter!.length));
      else contents.push(key);
    }
    return { contents, prefixes: [...prefixes] };
  };
  await fc.assert(fc.asyncProperty(
    fc.constantFrom('', 'a', 'b', 'a/', 'é', ' '), fc.constantFrom(undefined, '/', 'a', '-'), fc.integer({ min: 1, max: 7 }),
    async (prefix, delimiter, maxKeys) => {
      const contents: string[] = [];
      const prefixes: string[] = [];
      let token: string | undefined;
      do {
        const page: ListObjectsV2CommandOutput = await s3.send(new ListObjectsV2Command({ Bucket: 'sdk-list-model', Prefix: prefix, Delimiter: delimiter, MaxKeys: maxKeys, ContinuationToken: token }));
        const entries = (page.Contents?.length ?? 0) + (page.CommonPrefixes?.length ?? 0);
        if (entries > maxKeys || page.KeyCount !== entries) return false;
        contents.push(...(page.Contents ?? []).map((c) => c.Key!));
        prefixes.push(...(page.CommonPrefixes ?? []).map((p) => p.Prefix!));
        token = page.NextContinuationToken;
      } while (token);
      const expected = model(prefix, delimiter);
      t.same({ contents, prefixes }, expected, `prefix=${JSON.stringify(prefix)} delimiter=${JSON.stringify(delimiter)} max-keys=${maxKeys}`);
      return JSON.stringify({ contents, prefixes }) === JSON.stringify(expected);
    },
  ), { numRuns: 12, seed: 7 });
});

t.test('any key bytes: double slashes, dot segments, trailing slashes, encoded slashes', async (t) => {
  await s3.send(new CreateBucketCommand({ Bucket: 'sdk-odd-keys' }));
  const keys = ['a//b', '../up', 'x/./y/../z', 'folder/', '%2F literal', ' leading and trailing ', 'q?x=1#frag'];
  for (const key of keys) {
    const path = `/sdk-odd-keys/${key.split('/').map(encodeURIComponent).join('/')}`;
    const put = await signedSend(cluster.endpoint, root, { method: 'PUT', path, body: key });
    t.equal(put.status, 200, `put ${JSON.stringify(key)}`);
    t.equal(await text((await s3.send(new GetObjectCommand({ Bucket: 'sdk-odd-keys', Key: key }))).Body), key, `read back ${JSON.stringify(key)}`);
  }
  const listed = (await s3.send(new ListObjectsV2Command({ Bucket: 'sdk-odd-keys' }))).Contents?.map((c) => c.Key);
  t.same(listed, [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))), 'listed exactly as written');
});
