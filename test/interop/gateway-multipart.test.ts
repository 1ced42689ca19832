// Multipart uploads through @aws-sdk/client-s3 and boto3 on a real multi-process cluster:
// parts, composite checksums and the "-N" ETag, ListParts / ListMultipartUploads paging,
// UploadPartCopy with ranges, GET by partNumber, and every error the multipart calls produce.
import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateBucketCommand, CreateMultipartUploadCommand, GetObjectCommand,
  HeadObjectCommand, ListMultipartUploadsCommand, ListPartsCommand, PutObjectCommand,
  UploadPartCommand, UploadPartCopyCommand,
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

const MiB = 1024 * 1024;
const BUCKET = 'multipart';
await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));

function pattern(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4) out.writeUInt32LE((Math.imul(i + 1, 2654435761) ^ seed) >>> 0, Math.min(i, size - 4));
  return out;
}

const md5 = (data: Buffer) => createHash('md5').update(data).digest();
const bytesOf = async (body: { transformToByteArray(): Promise<Uint8Array> } | undefined) => Buffer.from(await body!.transformToByteArray());

async function startUpload(key: string, options: { ChecksumAlgorithm?: 'SHA256' } = {}): Promise<string> {
  const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key, ContentType: 'application/x-test', Metadata: { origin: 'parts' }, ...options }));
  return created.UploadId!;
}

t.test('upload parts, list them in pages, complete, read whole and by part number', async (t) => {
  const parts = [pattern(5 * MiB, 1), pattern(5 * MiB, 2), pattern(1000, 3)];
  const uploadId = await startUpload('big/object.bin', { ChecksumAlgorithm: 'SHA256' });
  const uploaded = [];
  for (const [i, body] of parts.entries()) {
    const result = await s3.send(new UploadPartCommand({ Bucket: BUCKET, Key: 'big/object.bin', UploadId: uploadId, PartNumber: i + 1, Body: body, ChecksumAlgorithm: 'SHA256' }));
    t.equal(result.ETag, `"${md5(body).toString('hex')}"`, `part ${i + 1} ETag is its MD5`);
    uploaded.push({ PartNumber: i + 1, ETag: result.ETag!, ChecksumSHA256: result.ChecksumSHA256 });
  }

  const page1 = await s3.send(new ListPartsCommand({ Bucket: BUCKET, Key: 'big/object.bin', UploadId: uploadId, MaxParts: 2 }));
  t.same([page1.IsTruncated, page1.NextPartNumberMarker, page1.Parts?.map((p) => p.Size)], [true, '2', [5 * MiB, 5 * MiB]]);
  t.equal(page1.ChecksumAlgorithm, 'SHA256');
  const page2 = await s3.send(new ListPartsCommand({ Bucket: BUCKET, Key: 'big/object.bin', UploadId: uploadId, PartNumberMarker: '2' }));
  t.same([page2.IsTruncated, page2.Parts?.map((p) => [p.PartNumber, p.ETag])], [false, [[3, uploaded[2]!.ETag]]]);

  const done = await s3.send(new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: 'big/object.bin', UploadId: uploadId, MultipartUpload: { Parts: uploaded } }));
  const expectedEtag = `"${createHash('md5').update(Buffer.concat(parts.map(md5))).digest('hex')}-3"`;
  t.equal(done.ETag, expectedEtag, 'ETag is the MD5 of the part MD5s, -N');
  const composite = createHash('sha256').update(Buffer.concat(uploaded.map((p) => Buffer.from(p.ChecksumSHA256!, 'base64')))).digest('base64');
  t.equal(done.ChecksumSHA256, `${composite}-3`, 'composite SHA256 of the part checksums');

  const whole = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'big/object.bin' }));
  t.same([whole.ContentType, whole.Metadata, whole.ContentLength], ['application/x-test', { origin: 'parts' }, 10 * MiB + 1000]);
  t.ok((await bytesOf(whole.Body)).equals(Buffer.concat(parts)), 'object is the parts in order');
  const second = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'big/object.bin', PartNumber: 2 }));
  t.same([second.PartsCount, second.ContentLength, second.ContentRange], [3, 5 * MiB, `bytes ${5 * MiB}-${10 * MiB - 1}/${10 * MiB + 1000}`]);
  t.ok((await bytesOf(second.Body)).equals(parts[1]!), 'GET ?partNumber=2 is the second part');
  const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'big/object.bin', PartNumber: 3 }));
  t.same([head.PartsCount, head.ContentLength], [3, 1000]);
  t.same(await s3Failure(s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'big/object.bin', PartNumber: 4 }))), { code: 'InvalidPartNumber', status: 416 });
  t.same(await s3Failure(s3.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: 'big/object.bin', UploadId: uploadId }))), { code: 'NoSuchUpload', status: 404 }, 'a completed upload is gone');
});

t.test('complete refuses unknown parts, wrong order, small middle parts and empty part lists', async (t) => {
  const key = 'refused.bin';
  const uploadId = await startUpload(key);
  const small = await s3.send(new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId, PartNumber: 1, Body: pattern(1024, 4) }));
  const last = await s3.send(new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId, PartNumber: 2, Body: pattern(1024, 5) }));
  const complete = (parts: Array<{ PartNumber: number; ETag: string }>) =>
    s3Failure(s3.send(new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts } })));
  t.same(await complete([{ PartNumber: 1, ETag: '"00000000000000000000000000000000"' }]), { code: 'InvalidPart', status: 400 });
  t.same(await complete([{ PartNumber: 3, ETag: small.ETag! }]), { code: 'InvalidPart', status: 400 });
  t.same(await complete([{ PartNumber: 2, ETag: last.ETag! }, { PartNumber: 1, ETag: small.ETag! }]), { code: 'InvalidPartOrder', status: 400 });
  t.same(await complete([{ PartNumber: 1, ETag: small.ETag! }, { PartNumber: 2, ETag: last.ETag! }]), { code: 'EntityTooSmall', status: 400 });
  const empty = await signedSend(cluster.endpoint, root, { method: 'POST', path: `/${BUCKET}/${key}?uploadId=${uploadId}`, body: '<CompleteMultipartUpload></CompleteMultipartUpload>' });
  t.same([empty.status, errorCode(empty)], [400, 'MalformedXML']);
  const garbage = await signedSend(cluster.endpoint, root, { method: 'POST', path: `/${BUCKET}/${key}?uploadId=${uploadId}`, body: '<Complete' });
  t.same([garbage.status, errorCode(garbage)], [400, 'MalformedXML']);

  // A single small part is a valid (last) part.
  const done = await s3.send(new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId, MultipartUpload: { Parts: [{ PartNumber: 2, ETag: last.ETag! }] } }));
  t.match(done.ETag, /-1"$/);
  const body = await bytesOf((await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).Body);
  t.ok(body.equals(pattern(1024, 5)), 'only the chosen part is in the object');
});

t.test('part numbers, unknown uploads and abort', async (t) => {
  const key = 'aborted.bin';
  const uploadId = await startUpload(key);
  for (const partNumber of [0, 10_001]) {
    const reply = await signedSend(cluster.endpoint, root, { method: 'PUT', path: `/${BUCKET}/${key}?partNumber=${partNumber}&uploadId=${uploadId}`, body: 'x' });
    t.same([reply.status, errorCode(reply)], [400, 'InvalidArgument'], `part number ${partNumber}`);
  }
  t.same(await s3Failure(s3.send(new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId: 'no-such-upload', PartNumber: 1, Body: 'x' }))), { code: 'NoSuchUpload', status: 404 });
  t.same(await s3Failure(s3.send(new ListPartsCommand({ Bucket: BUCKET, Key: key, UploadId: 'no-such-upload' }))), { code: 'NoSuchUpload', status: 404 });
  await s3.send(new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId, PartNumber: 1, Body: 'data' }));
  await s3.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId }));
  t.same(await s3Failure(s3.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId }))), { code: 'NoSuchUpload', status: 404 });
  t.same(await s3Failure(s3.send(new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: '"x"' }] } }))), { code: 'NoSuchUpload', status: 404 });
  t.same(await s3Failure(s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))), { code: 'NoSuchKey', status: 404 }, 'an aborted upload leaves no object');
});

t.test('UploadPartCopy copies whole objects and byte ranges', async (t) => {
  const source = pattern(6 * MiB, 6);
  await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'copy-source.bin', Body: source }));
  const key = 'copied.bin';
  const uploadId = await startUpload(key);
  const first = await s3.send(new UploadPartCopyCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId, PartNumber: 1, CopySource: `${BUCKET}/copy-source.bin` }));
  const second = await s3.send(new UploadPartCopyCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId, PartNumber: 2, CopySource: `${BUCKET}/copy-source.bin`, CopySourceRange: 'bytes=100-199' }));
  t.equal(second.CopyPartResult?.ETag, `"${md5(source.subarray(100, 200)).toString('hex')}"`);
  t.same(await s3Failure(s3.send(new UploadPartCopyCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId, PartNumber: 3, CopySource: `${BUCKET}/copy-source.bin`, CopySourceRange: `bytes=0-${6 * MiB}` }))), { code: 'InvalidArgument', status: 400 });
  t.same(await s3Failure(s3.send(new UploadPartCopyCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId, PartNumber: 3, CopySource: `${BUCKET}/missing.bin` }))), { code: 'NoSuchKey', status: 404 });
  await s3.send(new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId, MultipartUpload: { Parts: [
    { PartNumber: 1, ETag: first.CopyPartResult!.ETag! }, { PartNumber: 2, ETag: second.CopyPartResult!.ETag! }] } }));
  const body = await bytesOf((await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).Body);
  t.ok(body.equals(Buffer.concat([source, source.subarray(100, 200)])), 'the copied parts in order');
});

t.test('ListMultipartUploads: prefix, delimiter, markers and max-uploads', async (t) => {
  const bucket = 'uploads-listing';
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  const keys = ['a/1', 'a/2', 'b', 'c', 'c'];
  const ids: string[] = [];
  for (const key of keys) ids.push((await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }))).UploadId!);

  const all = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  t.same(all.Uploads?.map((u) => u.Key), ['a/1', 'a/2', 'b', 'c', 'c']);
  t.equal(all.Uploads?.[0]?.Initiator?.DisplayName, 'root');
  const rolled = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Delimiter: '/' }));
  t.same([rolled.CommonPrefixes?.map((p) => p.Prefix), rolled.Uploads?.map((u) => u.Key)], [['a/'], ['b', 'c', 'c']]);
  const prefixed = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: 'a/' }));
  t.same(prefixed.Uploads?.map((u) => u.Key), ['a/1', 'a/2']);

  const seen: string[] = [];
  let markers: { KeyMarker?: string; UploadIdMarker?: string } = {};
  for (let pages = 0; pages < 10; pages++) {
    const page = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, MaxUploads: 2, ...markers }));
    seen.push(...(page.Uploads ?? []).map((u) => `${u.Key}:${u.UploadId}`));
    if (!page.IsTruncated) break;
    markers = { KeyMarker: page.NextKeyMarker, UploadIdMarker: page.NextUploadIdMarker };
  }
  t.same(seen, all.Uploads?.map((u) => `${u.Key}:${u.UploadId}`), 'pages of two cover every upload once');
  t.same(await s3Failure(s3.send(new ListMultipartUploadsCommand({ Bucket: 'no-such-bucket-mp' }))), { code: 'NoSuchBucket', status: 404 });
  for (const [i, key] of keys.entries()) await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: ids[i] }));
  t.same((await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? [], []);
});

t.test('boto3 managed transfer: multipart upload and ranged parallel download', async (t) => {
  const script = `
import boto3, hashlib, io, json, sys
from boto3.s3.transfer import TransferConfig
s3 = boto3.client('s3')
data = bytes((i * 31 + 7) % 251 for i in range(13 * 1024 * 1024))
config = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
s3.upload_fileobj(io.BytesIO(data), 'multipart', 'boto3/object.bin', Config=config)
head = s3.head_object(Bucket='multipart', Key='boto3/object.bin')
out = io.BytesIO()
s3.download_fileobj('multipart', 'boto3/object.bin', out, Config=config)
print(json.dumps({'etag': head['ETag'], 'length': head['ContentLength'], 'same': out.getvalue() == data}))
`;
  const { stdout } = await execFileAsync('python3', ['-c', script], { env: cluster.clientEnv });
  const result = JSON.parse(stdout) as { etag: string; length: number; same: boolean };
  t.match(result.etag, /-3"$/, 'three parts');
  t.same([result.length, result.same], [13 * 1024 * 1024, true]);
});
