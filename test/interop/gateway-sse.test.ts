// Server-side encryption through real clients (@aws-sdk/client-s3 and boto3) against a real
// cluster: SSE-S3 and SSE-C on PUT, GET, HEAD, ranges, CopyObject and multipart uploads; the
// errors AWS gives for a missing or wrong customer key; and the bytes on the storage nodes'
// disks never contain the plaintext.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  CompleteMultipartUploadCommand, CopyObjectCommand, CreateBucketCommand, CreateMultipartUploadCommand, DeleteBucketEncryptionCommand,
  GetBucketEncryptionCommand, GetObjectCommand, HeadObjectCommand, PutBucketEncryptionCommand, PutObjectCommand, S3Client, UploadPartCommand, UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import t from 'tap';
import { startCluster } from '../lib/cluster.js';
import { errorCode, signedSend } from '../lib/s3-request.js';

const execFileAsync = promisify(execFile);
const cluster = await startCluster({ nodes: 3 });
t.teardown(() => cluster.stop());
const s3 = new S3Client({
  endpoint: cluster.endpoint, region: cluster.region, forcePathStyle: true, maxAttempts: 1,
  credentials: { accessKeyId: cluster.accessKeyId, secretAccessKey: cluster.secretAccessKey },
});
t.teardown(() => s3.destroy());
await s3.send(new CreateBucketCommand({ Bucket: 'sse' }));

const md5Hex = (data: Buffer) => createHash('md5').update(data).digest('hex');
const customerKey = randomBytes(32);
const otherKey = randomBytes(32);
const sseC = (key: Buffer) => ({ SSECustomerAlgorithm: 'AES256', SSECustomerKey: key.toString('base64'), SSECustomerKeyMD5: createHash('md5').update(key).digest('base64') });

async function getBytes(input: ConstructorParameters<typeof GetObjectCommand>[0]): Promise<{ body: Buffer; headers: Record<string, unknown> }> {
  const reply = await s3.send(new GetObjectCommand(input));
  return { body: Buffer.from(await reply.Body!.transformToByteArray()), headers: reply as unknown as Record<string, unknown> };
}

/** Every file under the cluster's data directory (shard files, LevelDB tables and logs). */
function storedFiles(dir = cluster.dataDir): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? storedFiles(path) : [path];
  });
}

/** Whether any 32-byte sample of `plaintext` appears in a file on the nodes' disks. */
function plaintextOnDisk(plaintext: Buffer): boolean {
  const samples = [0, 1000, plaintext.length >> 1, plaintext.length - 40].map((at) => plaintext.subarray(at, at + 32));
  return storedFiles().some((file) => {
    const content = readFileSync(file);
    return samples.some((sample) => content.includes(sample));
  });
}

// Random bytes: incompressible, so LevelDB's block compression cannot hide plaintext from the scan.
const large = randomBytes(700_000); // striped into shard files
const small = randomBytes(20_000);  // inline in the nodes' metadata records
const control = randomBytes(300_000);

t.test('SSE-S3 (@aws-sdk/client-s3): encrypted at rest, plaintext back, ranges, ETag is the MD5', async (t) => {
  for (const [key, body] of [['s3-large', large], ['s3-small', small]] as const) {
    const put = await s3.send(new PutObjectCommand({ Bucket: 'sse', Key: key, Body: body, ServerSideEncryption: 'AES256' }));
    t.equal(put.ServerSideEncryption, 'AES256');
    t.equal(put.ETag, `"${md5Hex(body)}"`, 'the ETag of an SSE-S3 object is the MD5 of its plaintext');
    const got = await getBytes({ Bucket: 'sse', Key: key });
    t.ok(got.body.equals(body), `${key}: GET returns the plaintext`);
    t.equal(got.headers.ServerSideEncryption, 'AES256');
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'sse', Key: key }));
    t.equal(head.ServerSideEncryption, 'AES256');
  }
  for (const [start, end] of [[0, 0], [17, 17], [15, 33], [12345, 400_001], [699_990, 699_999]]) {
    const ranged = await getBytes({ Bucket: 'sse', Key: 's3-large', Range: `bytes=${start}-${end}` });
    t.ok(ranged.body.equals(large.subarray(start, end + 1)), `range ${start}-${end} decrypts from an unaligned offset`);
  }
  const badDigest = await signedSend(cluster.endpoint, cluster, {
    method: 'PUT', path: '/sse/rejected', body: large, headers: { 'x-amz-server-side-encryption': 'AES256', 'content-md5': createHash('md5').update('other').digest('base64') },
  });
  t.same([badDigest.status, errorCode(badDigest)], [400, 'BadDigest'], 'body verification still fails an encrypted write');
  const afterRejection = await signedSend(cluster.endpoint, cluster, { method: 'HEAD', path: '/sse/rejected' });
  t.equal(afterRejection.status, 404, 'and nothing was stored');
  await s3.send(new PutObjectCommand({ Bucket: 'sse', Key: 'plain', Body: control }));
  t.ok(plaintextOnDisk(control), 'control: an unencrypted object is found on disk by the scan');
  t.notOk(plaintextOnDisk(large), 'the large SSE-S3 object is not on disk in plaintext');
  t.notOk(plaintextOnDisk(small), 'the small (inline) SSE-S3 object is not on disk in plaintext');
  const masterKey = readFileSync(join(cluster.dataDir, 'sse-master.key'));
  t.equal(statSync(join(cluster.dataDir, 'sse-master.key')).mode & 0o777, 0o600, 'the generated master key file is private');
  t.notOk(storedFiles().filter((f) => !f.endsWith('sse-master.key')).some((f) => readFileSync(f).includes(Buffer.from(masterKey.toString().trim(), 'hex'))), 'the master key is stored nowhere else');
});

t.test('SSE-C (@aws-sdk/client-s3): the key is needed, checked, and never stored', async (t) => {
  const put = await s3.send(new PutObjectCommand({ Bucket: 'sse', Key: 'customer', Body: large, ...sseC(customerKey) }));
  t.equal(put.SSECustomerAlgorithm, 'AES256');
  t.equal(put.SSECustomerKeyMD5, sseC(customerKey).SSECustomerKeyMD5);
  t.not(put.ETag, `"${md5Hex(large)}"`, 'the ETag of an SSE-C object is not the MD5 of its plaintext');
  const got = await getBytes({ Bucket: 'sse', Key: 'customer', Range: 'bytes=100-200099', ...sseC(customerKey) });
  t.ok(got.body.equals(large.subarray(100, 200_100)), 'a range decrypts with the right key');
  await t.rejects(s3.send(new GetObjectCommand({ Bucket: 'sse', Key: 'customer' })), { name: 'InvalidRequest', $metadata: { httpStatusCode: 400 } }, 'GET without the key');
  const headWithoutKey = await s3.send(new HeadObjectCommand({ Bucket: 'sse', Key: 'customer' })).catch((err: { $metadata: { httpStatusCode: number } }) => err.$metadata.httpStatusCode);
  t.equal(headWithoutKey, 400, 'HEAD without the key');
  await t.rejects(s3.send(new GetObjectCommand({ Bucket: 'sse', Key: 'customer', ...sseC(otherKey) })), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } }, 'GET with another key');
  await t.rejects(s3.send(new GetObjectCommand({ Bucket: 'sse', Key: 'plain', ...sseC(customerKey) })), { name: 'InvalidRequest' }, 'a key for an unencrypted object');
  const mismatched = await signedSend(cluster.endpoint, cluster, {
    method: 'PUT', path: '/sse/bad', body: 'x',
    headers: { 'x-amz-server-side-encryption-customer-algorithm': 'AES256', 'x-amz-server-side-encryption-customer-key': customerKey.toString('base64'), 'x-amz-server-side-encryption-customer-key-md5': 'AAAAAAAAAAAAAAAAAAAAAA==' },
  });
  t.same([mismatched.status, errorCode(mismatched)], [400, 'InvalidArgument'], 'a key MD5 that does not match the key');
  await t.rejects(s3.send(new PutObjectCommand({ Bucket: 'sse', Key: 'bad', Body: 'x', ServerSideEncryption: 'AES256', ...sseC(customerKey) })), { name: 'InvalidArgument' }, 'SSE-S3 and SSE-C at once');
  t.notOk(plaintextOnDisk(large.subarray(100, 200_100)), 'the SSE-C object is not on disk in plaintext');
  t.notOk(storedFiles().some((f) => readFileSync(f).includes(customerKey)), 'the customer key is not stored');
});

t.test('CopyObject between encryption modes (@aws-sdk/client-s3)', async (t) => {
  await s3.send(new CopyObjectCommand({ Bucket: 'sse', Key: 'copy-to-customer', CopySource: 'sse/s3-large', ...sseC(otherKey) }));
  t.ok((await getBytes({ Bucket: 'sse', Key: 'copy-to-customer', ...sseC(otherKey) })).body.equals(large), 'SSE-S3 -> SSE-C');
  const c = sseC(customerKey);
  await s3.send(new CopyObjectCommand({
    Bucket: 'sse', Key: 'copy-to-plain', CopySource: 'sse/customer',
    CopySourceSSECustomerAlgorithm: c.SSECustomerAlgorithm, CopySourceSSECustomerKey: c.SSECustomerKey, CopySourceSSECustomerKeyMD5: c.SSECustomerKeyMD5,
  }));
  const plain = await getBytes({ Bucket: 'sse', Key: 'copy-to-plain' });
  t.ok(plain.body.equals(large), 'SSE-C -> unencrypted, with the copy-source key');
  t.equal(plain.headers.ServerSideEncryption, undefined);
  await t.rejects(s3.send(new CopyObjectCommand({ Bucket: 'sse', Key: 'x', CopySource: 'sse/customer' })), { name: 'InvalidRequest' }, 'copying an SSE-C source needs its key');
});

t.test('multipart SSE-S3 (@aws-sdk/client-s3): UploadPartCopy from an SSE-C source; a range across parts decrypts', async (t) => {
  const parts = [randomBytes(5 * 1024 * 1024)];
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'sse', Key: 'mp', ServerSideEncryption: 'AES256' }));
  const etags = [];
  for (const [i, body] of parts.entries()) {
    const part = await s3.send(new UploadPartCommand({ Bucket: 'sse', Key: 'mp', UploadId, PartNumber: i + 1, Body: body }));
    t.equal(part.ServerSideEncryption, 'AES256');
    etags.push({ ETag: part.ETag!, PartNumber: i + 1 });
  }
  // A last part copied from an SSE-C object: decrypted with the copy-source key, encrypted for this upload.
  const c = sseC(customerKey);
  const copied = await s3.send(new UploadPartCopyCommand({
    Bucket: 'sse', Key: 'mp', UploadId, PartNumber: 2, CopySource: 'sse/customer', CopySourceRange: 'bytes=0-9999',
    CopySourceSSECustomerAlgorithm: c.SSECustomerAlgorithm, CopySourceSSECustomerKey: c.SSECustomerKey, CopySourceSSECustomerKeyMD5: c.SSECustomerKeyMD5,
  }));
  etags.push({ ETag: copied.CopyPartResult!.ETag!, PartNumber: 2 });
  parts.push(large.subarray(0, 10_000));
  await s3.send(new CompleteMultipartUploadCommand({ Bucket: 'sse', Key: 'mp', UploadId, MultipartUpload: { Parts: etags } }));
  const whole = Buffer.concat(parts);
  const boundary = parts[0]!.length;
  const ranged = await getBytes({ Bucket: 'sse', Key: 'mp', Range: `bytes=${boundary - 1000}-${boundary + 999}` });
  t.ok(ranged.body.equals(whole.subarray(boundary - 1000, boundary + 1000)), 'range across the part boundary');
  t.ok((await getBytes({ Bucket: 'sse', Key: 'mp' })).body.equals(whole), 'whole object');
  const copiedPart = await getBytes({ Bucket: 'sse', Key: 'mp', PartNumber: 2 });
  t.ok(copiedPart.body.equals(large.subarray(0, 10_000)), 'the copied part, read by part number');
  t.notOk(plaintextOnDisk(parts[0]!), 'parts are not on disk in plaintext');
});

t.test('bucket default encryption (@aws-sdk/client-s3): writes without SSE headers are encrypted', async (t) => {
  await s3.send(new CreateBucketCommand({ Bucket: 'sse-default' }));
  await t.rejects(s3.send(new GetBucketEncryptionCommand({ Bucket: 'sse-default' })), { name: 'ServerSideEncryptionConfigurationNotFoundError' });
  await s3.send(new PutBucketEncryptionCommand({
    Bucket: 'sse-default', ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
  }));
  const config = await s3.send(new GetBucketEncryptionCommand({ Bucket: 'sse-default' }));
  t.equal(config.ServerSideEncryptionConfiguration?.Rules?.[0]?.ApplyServerSideEncryptionByDefault?.SSEAlgorithm, 'AES256');
  const body = randomBytes(150_000);
  const put = await s3.send(new PutObjectCommand({ Bucket: 'sse-default', Key: 'by-default', Body: body }));
  t.equal(put.ServerSideEncryption, 'AES256', 'the bucket default applies');
  t.ok((await getBytes({ Bucket: 'sse-default', Key: 'by-default' })).body.equals(body));
  t.notOk(plaintextOnDisk(body), 'not on disk in plaintext');
  await s3.send(new PutObjectCommand({ Bucket: 'sse-default', Key: 'customer', Body: body, ...sseC(customerKey) }));
  t.ok((await getBytes({ Bucket: 'sse-default', Key: 'customer', ...sseC(customerKey) })).body.equals(body), 'SSE-C headers override the default');
  await s3.send(new DeleteBucketEncryptionCommand({ Bucket: 'sse-default' }));
  const after = await s3.send(new PutObjectCommand({ Bucket: 'sse-default', Key: 'after', Body: 'plain' }));
  t.equal(after.ServerSideEncryption, undefined, 'no default after DeleteBucketEncryption');
});

t.test('boto3: SSE-S3 and SSE-C round trips, multipart SSE-C', async (t) => {
  const script = `
import boto3, hashlib, json, os, sys
from botocore.exceptions import ClientError
s3 = boto3.client('s3', endpoint_url=os.environ['AWS_ENDPOINT_URL'])
key = os.urandom(32)
out = {}
body = os.urandom(300000)
s3.put_object(Bucket='sse', Key='py-s3', Body=body, ServerSideEncryption='AES256')
got = s3.get_object(Bucket='sse', Key='py-s3')
out['s3'] = [got['Body'].read() == body, got['ServerSideEncryption']]
s3.put_object(Bucket='sse', Key='py-c', Body=body, SSECustomerAlgorithm='AES256', SSECustomerKey=key)
got = s3.get_object(Bucket='sse', Key='py-c', SSECustomerAlgorithm='AES256', SSECustomerKey=key, Range='bytes=5-99999')
out['c'] = [got['Body'].read() == body[5:100000], got['SSECustomerAlgorithm']]
try:
    s3.head_object(Bucket='sse', Key='py-c', SSECustomerAlgorithm='AES256', SSECustomerKey=os.urandom(32))
    out['wrong'] = None
except ClientError as e:
    out['wrong'] = e.response['ResponseMetadata']['HTTPStatusCode']
mp = s3.create_multipart_upload(Bucket='sse', Key='py-mp', SSECustomerAlgorithm='AES256', SSECustomerKey=key)
parts = [os.urandom(5 * 1024 * 1024), os.urandom(1000)]
done = []
for i, p in enumerate(parts):
    r = s3.upload_part(Bucket='sse', Key='py-mp', UploadId=mp['UploadId'], PartNumber=i + 1, Body=p, SSECustomerAlgorithm='AES256', SSECustomerKey=key)
    done.append({'ETag': r['ETag'], 'PartNumber': i + 1})
try:
    s3.upload_part(Bucket='sse', Key='py-mp', UploadId=mp['UploadId'], PartNumber=3, Body=b'x')
    out['part-without-key'] = None
except ClientError as e:
    out['part-without-key'] = e.response['Error']['Code']
s3.complete_multipart_upload(Bucket='sse', Key='py-mp', UploadId=mp['UploadId'], MultipartUpload={'Parts': done})
got = s3.get_object(Bucket='sse', Key='py-mp', SSECustomerAlgorithm='AES256', SSECustomerKey=key)
out['mp'] = got['Body'].read() == b''.join(parts)
print(json.dumps(out))
`;
  const { stdout } = await execFileAsync('python3', ['-c', script], { env: cluster.clientEnv, maxBuffer: 1 << 20 });
  t.same(JSON.parse(stdout), { s3: [true, 'AES256'], c: [true, 'AES256'], wrong: 403, 'part-without-key': 'InvalidRequest', mp: true });
});
