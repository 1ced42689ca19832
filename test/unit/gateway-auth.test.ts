// Gateway authentication and body verification against signatures made by real clients:
// @aws-sdk/client-s3, @smithy/signature-v4 (the SDK's signer), botocore (python3), and the
// worked aws-chunked example of the S3 API reference.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import t from 'tap';
import type { AccessKey } from '../../src/gateway/auth/keys.js';
import { keysOf, startAuthServer, TEST_KEY } from '../lib/gateway-auth-server.js';
import { errorCode, send, sha256Hex, signedRequest, signer } from '../lib/s3-request.js';

const execFileAsync = promisify(execFile);

t.test('aws-sdk client-s3 requests authenticate (header signature, CRC32 checksums, aws-chunked trailers)', async (t) => {
  const server = await startAuthServer();
  t.teardown(() => server.close());
  const client = new S3Client({
    endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true,
    credentials: { accessKeyId: TEST_KEY.accessKeyId, secretAccessKey: TEST_KEY.secretAccessKey },
  });
  t.teardown(() => client.destroy());
  const body = Buffer.from('hello tessera '.repeat(1000));
  const key = 'dir/ünïcødé key+with (special) chars!*~.txt';
  const put = await client.send(new PutObjectCommand({ Bucket: 'bucket-one', Key: key, Body: body }));
  t.equal(put.ETag, `"${sha256Hex(body)}"`, 'the body arrived intact');

  const streamed = Buffer.alloc(300_000, 7);
  const chunks = [streamed.subarray(0, 100_000), streamed.subarray(100_000)];
  const viaStream = await client.send(new PutObjectCommand({ Bucket: 'bucket-one', Key: 'streamed', Body: Readable.from(chunks), ContentLength: streamed.length, ChecksumAlgorithm: 'CRC32C' }));
  t.equal(viaStream.ETag, `"${sha256Hex(streamed)}"`, 'a streamed body with a trailing checksum decodes to the original bytes');

  const wrongSecret = new S3Client({
    endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true, maxAttempts: 1,
    credentials: { accessKeyId: TEST_KEY.accessKeyId, secretAccessKey: 'not-the-secret' },
  });
  t.teardown(() => wrongSecret.destroy());
  await t.rejects(wrongSecret.send(new PutObjectCommand({ Bucket: 'bucket-one', Key: 'x', Body: 'x' })), { name: 'SignatureDoesNotMatch' });
  const unknownKey = new S3Client({
    endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true, maxAttempts: 1,
    credentials: { accessKeyId: 'AKIDUNKNOWN', secretAccessKey: 'whatever' },
  });
  t.teardown(() => unknownKey.destroy());
  await t.rejects(unknownKey.send(new PutObjectCommand({ Bucket: 'bucket-one', Key: 'x', Body: 'x' })), { name: 'InvalidAccessKeyId' });
});

t.test('signed payload hashes are verified while streaming', async (t) => {
  const server = await startAuthServer();
  t.teardown(() => server.close());
  const good = await signedRequest(server.endpoint, TEST_KEY, { method: 'PUT', path: '/b/k', body: 'payload' });
  t.equal((await send(server.endpoint, { method: 'PUT', path: good.path, headers: good.headers, body: 'payload' })).status, 200);

  const lying = await signedRequest(server.endpoint, TEST_KEY, { method: 'PUT', path: '/b/k', payloadHash: sha256Hex('something else') });
  const reply = await send(server.endpoint, { method: 'PUT', path: lying.path, headers: lying.headers, body: 'payload' });
  t.equal(reply.status, 400);
  t.equal(errorCode(reply), 'XAmzContentSHA256Mismatch');

  const tampered = await signedRequest(server.endpoint, TEST_KEY, { method: 'PUT', path: '/b/k', body: 'payload' });
  const changed = await send(server.endpoint, { method: 'PUT', path: '/b/other', headers: tampered.headers, body: 'payload' });
  t.equal(errorCode(changed), 'SignatureDoesNotMatch', 'a signature covers the path');

  const unsigned = await signedRequest(server.endpoint, TEST_KEY, { method: 'PUT', path: '/b/k?tagging=&x-id=1', payloadHash: 'UNSIGNED-PAYLOAD' });
  t.equal((await send(server.endpoint, { method: 'PUT', path: unsigned.path, headers: unsigned.headers, body: 'anything' })).status, 200, 'UNSIGNED-PAYLOAD with a query string');
});

t.test('clock skew beyond 15 minutes is refused', async (t) => {
  const server = await startAuthServer();
  t.teardown(() => server.close());
  const old = await signedRequest(server.endpoint, TEST_KEY, { method: 'GET', path: '/b/k', signingDate: new Date(Date.now() - 16 * 60_000) });
  const reply = await send(server.endpoint, { method: 'GET', path: old.path, headers: old.headers });
  t.equal(reply.status, 403);
  t.equal(errorCode(reply), 'RequestTimeTooSkewed');
  const recent = await signedRequest(server.endpoint, TEST_KEY, { method: 'GET', path: '/b/k', signingDate: new Date(Date.now() - 10 * 60_000) });
  t.equal((await send(server.endpoint, { method: 'GET', path: recent.path, headers: recent.headers })).status, 200);
});

t.test('presigned URLs honour X-Amz-Expires', async (t) => {
  let now = Date.now();
  const server = await startAuthServer({ now: () => now });
  t.teardown(() => server.close());
  const url = new URL(`${server.endpoint}/bucket/some%20key.txt`);
  const presigned = await signer(TEST_KEY).presign({
    method: 'GET', protocol: 'http:', hostname: url.hostname, port: Number(url.port), path: '/bucket/some%20key.txt', query: {},
    // As @aws-sdk/s3-request-presigner does: hoisted into the query as X-Amz-Content-Sha256.
    headers: { host: url.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
  }, { expiresIn: 60 });
  const query = new URLSearchParams(presigned.query as Record<string, string>).toString();
  const ok = await send(server.endpoint, { method: 'GET', path: `/bucket/some%20key.txt?${query}`, headers: {} });
  t.equal(ok.status, 200);
  t.equal(ok.headers['x-test-key'], encodeURIComponent('some key.txt'));
  now += 61_000;
  const expired = await send(server.endpoint, { method: 'GET', path: `/bucket/some%20key.txt?${query}`, headers: {} });
  t.equal(expired.status, 403);
  t.equal(errorCode(expired), 'AccessDenied');
  t.match(expired.body, /expired/);
});

// The worked example of https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html
t.test('STREAMING-AWS4-HMAC-SHA256-PAYLOAD: the S3 reference example verifies chunk by chunk', async (t) => {
  const exampleKey: AccessKey = {
    accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    principal: { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', userId: 'example', displayName: 'example', isRoot: false },
  };
  const server = await startAuthServer({ keys: keysOf(exampleKey), now: () => Date.UTC(2013, 4, 24, 0, 5) });
  t.teardown(() => server.close());
  const seed = '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9';
  const chunkSignatures = [
    'ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648',
    '0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497',
    'b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9',
  ];
  const frame = (data: Buffer, signature: string) => Buffer.concat([Buffer.from(`${data.length.toString(16)};chunk-signature=${signature}\r\n`), data, Buffer.from('\r\n')]);
  const encode = (first: Buffer) => Buffer.concat([frame(first, chunkSignatures[0]!), frame(Buffer.alloc(1024, 'a'), chunkSignatures[1]!), frame(Buffer.alloc(0), chunkSignatures[2]!)]);
  const headers = (length: number) => ({
    Host: 's3.amazonaws.com',
    'x-amz-date': '20130524T000000Z',
    'x-amz-storage-class': 'REDUCED_REDUNDANCY',
    Authorization: `AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=${seed}`,
    'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
    'Content-Encoding': 'aws-chunked',
    'x-amz-decoded-content-length': '66560',
    'Content-Length': String(length),
  });
  const body = encode(Buffer.alloc(65536, 'a'));
  t.equal(body.length, 66824, 'framing matches the reference');
  const ok = await send(server.endpoint, { method: 'PUT', path: '/examplebucket/chunkObject.txt', headers: headers(body.length), body });
  t.equal(ok.status, 200, ok.body);
  t.equal(ok.headers.etag, `"${sha256Hex(Buffer.alloc(66560, 'a'))}"`, 'only the data bytes come out');

  const altered = Buffer.alloc(65536, 'a');
  altered[100] = 0x62;
  const bad = encode(altered);
  const rejected = await send(server.endpoint, { method: 'PUT', path: '/examplebucket/chunkObject.txt', headers: headers(bad.length), body: bad });
  t.equal(rejected.status, 403);
  t.equal(errorCode(rejected), 'SignatureDoesNotMatch', 'an altered chunk is caught');
});

t.test('flexible checksums and Content-MD5 are verified', async (t) => {
  const server = await startAuthServer();
  t.teardown(() => server.close());
  const body = 'checksummed body';
  const md5 = createHash('md5').update(body).digest('base64');
  const put = async (headers: Record<string, string>, sent = body) => {
    const signed = await signedRequest(server.endpoint, TEST_KEY, { method: 'PUT', path: '/b/k', payloadHash: 'UNSIGNED-PAYLOAD', headers });
    return send(server.endpoint, { method: 'PUT', path: signed.path, headers: signed.headers, body: sent });
  };
  t.equal((await put({ 'content-md5': md5 })).status, 200);
  t.equal(errorCode(await put({ 'content-md5': md5 }, 'other body')), 'BadDigest');
  t.equal(errorCode(await put({ 'content-md5': 'not-md5' })), 'InvalidDigest');
  const sha1 = createHash('sha1').update(body).digest('base64');
  const ok = await put({ 'x-amz-checksum-sha1': sha1 });
  t.same(JSON.parse(String(ok.headers['x-test-checksums'])), { SHA1: sha1 });
  const wrong = await put({ 'x-amz-checksum-sha1': createHash('sha1').update('x').digest('base64') });
  t.equal(errorCode(wrong), 'BadDigest');

  // An unsigned aws-chunked body whose trailing checksum is wrong.
  const framed = `${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n`;
  const signed = await signedRequest(server.endpoint, TEST_KEY, {
    method: 'PUT', path: '/b/k', payloadHash: 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
    headers: { 'content-encoding': 'aws-chunked', 'x-amz-trailer': 'x-amz-checksum-crc32', 'x-amz-decoded-content-length': String(Buffer.byteLength(body)) },
  });
  const trailerReply = await send(server.endpoint, { method: 'PUT', path: signed.path, headers: signed.headers, body: framed });
  t.equal(errorCode(trailerReply), 'BadDigest');
});

t.test('botocore signatures: SigV4 and SigV2 (signature_version=\'s3\'), header and presigned query', async (t) => {
  const server = await startAuthServer();
  t.teardown(() => server.close());
  const script = `
import sys, json, urllib.request, boto3
from botocore.config import Config
endpoint, key, secret = sys.argv[1:4]
results = {}
for name, version, style in [('v4', 's3v4', 'path'), ('v2', 's3', 'path')]:
    s3 = boto3.client('s3', endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret, region_name='us-east-1',
                      config=Config(signature_version=version, s3={'addressing_style': style}, retries={'max_attempts': 1}))
    put = s3.put_object(Bucket='bucket-two', Key='päth/to file+1.txt', Body=b'boto body', Metadata={'a': 'b'})
    url = s3.generate_presigned_url('get_object', Params={'Bucket': 'bucket-two', 'Key': 'päth/to file+1.txt', 'ResponseContentType': 'text/plain'}, ExpiresIn=300)
    with urllib.request.urlopen(url) as r:
        presigned = (r.status, r.headers['x-test-key'], r.headers['x-test-bucket'])
    results[name] = {'put': put['ETag'], 'presigned': presigned}
print(json.dumps(results))
`;
  const { stdout } = await execFileAsync('python3', ['-c', script, server.endpoint, TEST_KEY.accessKeyId, TEST_KEY.secretAccessKey]);
  const results = JSON.parse(stdout) as Record<string, { put: string; presigned: [number, string, string] }>;
  for (const [name, result] of Object.entries(results)) {
    t.equal(result.put, `"${sha256Hex('boto body')}"`, `${name}: put authenticated`);
    t.same(result.presigned, [200, encodeURIComponent('päth/to file+1.txt'), 'bucket-two'], `${name}: presigned GET authenticated and addressed`);
  }
});

t.test('virtual-hosted-style requests are signed over the Host header', async (t) => {
  const server = await startAuthServer({ baseDomain: 's3.test' });
  t.teardown(() => server.close());
  const signed = await signedRequest(server.endpoint, TEST_KEY, { method: 'PUT', path: '/nested//key/', body: 'v', headers: { host: 'my-bucket.s3.test' } });
  const reply = await send(server.endpoint, { method: 'PUT', path: signed.path, headers: signed.headers, body: 'v' });
  t.equal(reply.status, 200, reply.body);
  t.equal(reply.headers['x-test-bucket'], 'my-bucket');
  t.equal(reply.headers['x-test-key'], encodeURIComponent('nested//key/'), 'double and trailing slashes are key bytes');
});
