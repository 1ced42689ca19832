// The gateway through the aws CLI and boto3 against a real multi-process cluster, plus a second
// gateway on the same cluster serving HTTPS (boto3 then streams aws-chunked bodies with trailing
// checksums) with a self-signed certificate.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { startGateway } from '../../src/gateway/server.js';
import { createClusterClient } from '../../src/replication/cluster-client.js';
import { startCluster } from '../lib/cluster.js';
import { signedSend } from '../lib/s3-request.js';

const execFileAsync = promisify(execFile);

const cluster = await startCluster({ nodes: 4 });
t.teardown(() => cluster.stop());
const workDir = mkdtempSync(join(tmpdir(), 'tessera-python-clients-'));
t.teardown(() => rmSync(workDir, { recursive: true, force: true }));

async function aws(...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('aws', ['--endpoint-url', cluster.endpoint, ...args], { env: cluster.clientEnv });
  return stdout;
}

/** aws CLI exit status and stderr for a command that should fail. */
async function awsFailure(...args: string[]): Promise<string> {
  try {
    await aws(...args);
  } catch (err) {
    return String((err as { stderr?: string }).stderr);
  }
  throw new Error(`aws ${args.join(' ')} succeeded`);
}

async function python(script: string, ...args: string[]): Promise<unknown> {
  const { stdout } = await execFileAsync('python3', ['-c', script, ...args], { env: cluster.clientEnv, maxBuffer: 16 * 1024 * 1024 });
  return JSON.parse(stdout);
}

t.test('aws CLI: s3api and s3 commands', async (t) => {
  await aws('s3api', 'create-bucket', '--bucket', 'cli-bucket');
  const file = join(workDir, 'upload.bin');
  const content = Buffer.from(Array.from({ length: 1_500_000 }, (_, i) => (i * 13) & 0xff));
  writeFileSync(file, content);
  const put = JSON.parse(await aws('s3api', 'put-object', '--bucket', 'cli-bucket', '--key', 'docs/report 2024.bin', '--body', file,
    '--content-type', 'application/x-report', '--metadata', 'owner=alice,team=storage')) as { ETag: string };
  t.match(put.ETag, /^"[0-9a-f]{32}"$/);
  const head = JSON.parse(await aws('s3api', 'head-object', '--bucket', 'cli-bucket', '--key', 'docs/report 2024.bin')) as Record<string, unknown>;
  t.same([head.ContentLength, head.ContentType, head.Metadata], [content.length, 'application/x-report', { owner: 'alice', team: 'storage' }]);

  const ranged = join(workDir, 'ranged.bin');
  await aws('s3api', 'get-object', '--bucket', 'cli-bucket', '--key', 'docs/report 2024.bin', '--range', 'bytes=1000-1999', ranged);
  t.ok(readFileSync(ranged).equals(content.subarray(1000, 2000)), 'ranged get-object');

  await aws('s3', 'cp', file, 's3://cli-bucket/copy/a.bin');
  await aws('s3', 'cp', file, 's3://cli-bucket/copy/b.bin');
  const downloaded = join(workDir, 'downloaded.bin');
  await aws('s3', 'cp', 's3://cli-bucket/copy/b.bin', downloaded);
  t.ok(readFileSync(downloaded).equals(content), 's3 cp round trip');
  const listing = await aws('s3', 'ls', 's3://cli-bucket/', '--recursive');
  t.match(listing, /copy\/a\.bin/);
  t.match(listing, /docs\/report 2024\.bin/);
  const v2 = JSON.parse(await aws('s3api', 'list-objects-v2', '--bucket', 'cli-bucket', '--delimiter', '/')) as { CommonPrefixes: Array<{ Prefix: string }> };
  t.same(v2.CommonPrefixes.map((p) => p.Prefix), ['copy/', 'docs/']);

  const presigned = (await aws('s3', 'presign', 's3://cli-bucket/copy/a.bin', '--expires-in', '120')).trim();
  const fetched = await fetch(presigned);
  t.equal(fetched.status, 200, 'aws s3 presign URL works');
  t.ok(Buffer.from(await fetched.arrayBuffer()).equals(content));

  await aws('s3', 'rm', 's3://cli-bucket/', '--recursive');
  t.equal((await aws('s3', 'ls', 's3://cli-bucket/', '--recursive')).trim(), '');
  await aws('s3api', 'delete-bucket', '--bucket', 'cli-bucket');

  t.match(await awsFailure('s3api', 'head-bucket', '--bucket', 'cli-bucket'), /404/);
  t.match(await awsFailure('s3api', 'get-object', '--bucket', 'no-such-bucket-here', '--key', 'k', join(workDir, 'x')), /NoSuchBucket/);
  t.match(await awsFailure('s3api', 'create-bucket', '--bucket', 'Bad_Name'), /InvalidBucketName|Invalid bucket name/);
});

const BOTO_SCRIPT = `
import io, json, sys, urllib.request, ssl, boto3
from botocore.config import Config
from botocore.exceptions import ClientError
endpoint, verify = sys.argv[1], sys.argv[2] == 'verify'
def client(**config):
    return boto3.client('s3', endpoint_url=endpoint, verify=verify, config=Config(retries={'max_attempts': 1}, **config))
s3 = client()
out = {'payload_modes': []}
def note_payload_mode(request, **kwargs):
    mode = request.headers.get('x-amz-content-sha256')
    out['payload_modes'].append(mode.decode() if isinstance(mode, bytes) else mode)
s3.meta.events.register('before-send.s3.PutObject', note_payload_mode)
def code(fn):
    try:
        fn()
        return None
    except ClientError as e:
        return e.response['Error']['Code']
bucket = sys.argv[3]
s3.create_bucket(Bucket=bucket)
data = bytes(range(256)) * 4000
s3.put_object(Bucket=bucket, Key='bytes.bin', Body=data, Metadata={'note': 'plain ascii'})
s3.upload_fileobj(io.BytesIO(data), bucket, 'streamed.bin')
got = s3.get_object(Bucket=bucket, Key='streamed.bin', ChecksumMode='ENABLED')
out['streamed_ok'] = got['Body'].read() == data
out['checksum'] = sorted(k for k in got if k.startswith('Checksum') and k != 'ChecksumType')
out['content_encoding'] = got.get('ContentEncoding')
head = s3.head_object(Bucket=bucket, Key='bytes.bin')
out['metadata'] = head['Metadata']
out['range'] = s3.get_object(Bucket=bucket, Key='bytes.bin', Range='bytes=256-511')['Body'].read() == data[256:512]
for i in range(5):
    s3.put_object(Bucket=bucket, Key='many/%d' % i, Body=b'x')
keys = []
for page in s3.get_paginator('list_objects_v2').paginate(Bucket=bucket, Prefix='many/', PaginationConfig={'PageSize': 2}):
    keys += [c['Key'] for c in page.get('Contents', [])]
out['paged'] = keys
v1 = []
for page in s3.get_paginator('list_objects').paginate(Bucket=bucket, Prefix='many/', PaginationConfig={'PageSize': 2}):
    v1 += [c['Key'] for c in page.get('Contents', [])]
out['paged_v1'] = v1
deleted = s3.delete_objects(Bucket=bucket, Delete={'Objects': [{'Key': 'many/%d' % i} for i in range(5)]})
out['deleted'] = len(deleted['Deleted'])
out['versions'] = [v['VersionId'] for v in s3.list_object_versions(Bucket=bucket).get('Versions', [])]
for version in ['s3v4', 's3']:
    url = client(signature_version=version).generate_presigned_url('get_object', Params={'Bucket': bucket, 'Key': 'bytes.bin'}, ExpiresIn=60)
    context = None if verify else ssl._create_unverified_context()
    with urllib.request.urlopen(url, context=context) as r:
        out['presigned_' + version] = r.status == 200 and r.read() == data
sigv2 = client(signature_version='s3')
sigv2.put_object(Bucket=bucket, Key='sigv2.txt', Body=b'v2')
out['sigv2_roundtrip'] = sigv2.get_object(Bucket=bucket, Key='sigv2.txt')['Body'].read() == b'v2'
out['errors'] = {
    'NoSuchKey': code(lambda: s3.get_object(Bucket=bucket, Key='missing')),
    'NoSuchBucket': code(lambda: s3.list_objects_v2(Bucket='no-such-bucket-anywhere')),
    'BucketAlreadyOwnedByYou': code(lambda: s3.create_bucket(Bucket=bucket)),
    'InvalidRange': code(lambda: s3.get_object(Bucket=bucket, Key='bytes.bin', Range='bytes=99999999-')),
    'PreconditionFailed': code(lambda: s3.get_object(Bucket=bucket, Key='bytes.bin', IfMatch='"nope"')),
    'BucketNotEmpty': code(lambda: s3.delete_bucket(Bucket=bucket)),
}
print(json.dumps(out))
`;

function checkBotoResults(t: Test, results: Record<string, unknown>): void {
  t.equal(results.streamed_ok, true, 'upload_fileobj / get_object round trip');
  t.ok((results.checksum as string[]).length > 0, 'checksums come back with ChecksumMode=ENABLED');
  t.same(results.metadata, { note: 'plain ascii' }, 'metadata round-trips');
  t.equal(results.content_encoding, null, 'aws-chunked framing is not stored as a content encoding');
  t.equal(results.range, true);
  t.same(results.paged, ['many/0', 'many/1', 'many/2', 'many/3', 'many/4'], 'ListObjectsV2 paginator');
  t.same(results.paged_v1, ['many/0', 'many/1', 'many/2', 'many/3', 'many/4'], 'ListObjects (v1) paginator with markers');
  t.equal(results.deleted, 5);
  t.ok((results.versions as string[]).every((v) => v === 'null'), 'an unversioned bucket keeps null versions');
  t.equal(results.presigned_s3v4, true, 'SigV4 presigned URL');
  t.equal(results.presigned_s3, true, 'SigV2 presigned URL');
  t.equal(results.sigv2_roundtrip, true, 'SigV2 header auth');
  const errors = results.errors as Record<string, string>;
  for (const [expected, actual] of Object.entries(errors)) t.equal(actual, expected);
}

t.test('boto3 over HTTP', async (t) => {
  const results = await python(BOTO_SCRIPT, cluster.endpoint, 'verify', 'boto-plain') as Record<string, unknown>;
  checkBotoResults(t, results);
});

t.test('boto3 over HTTPS to a second gateway with a self-signed certificate', async (t) => {
  const certFile = join(workDir, 'cert.pem');
  const keyFile = join(workDir, 'key.pem');
  await execFileAsync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-days', '1',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyFile, '-out', certFile]);
  const clusterFile = JSON.parse(readFileSync(join(cluster.dataDir, 'cluster.json'), 'utf8')) as { secret: string; nodes: Array<{ address: string }> };
  const store = await createClusterClient({ seeds: clusterFile.nodes.map((n) => n.address), secret: clusterFile.secret });
  t.teardown(() => store.close());
  const gateway = await startGateway({
    store, host: '127.0.0.1', port: 0,
    rootCredentials: { accessKeyId: cluster.accessKeyId, secretAccessKey: cluster.secretAccessKey },
    tls: { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') },
    baseDomain: 's3.test',
  });
  t.teardown(() => gateway.close());
  t.match(gateway.url, /^https:\/\//);
  const results = await python(BOTO_SCRIPT, gateway.url, 'no-verify', 'boto-tls') as Record<string, unknown>;
  checkBotoResults(t, results);

  // Virtual-hosted-style addressing: the bucket comes from the Host header under the base domain.
  const credentials = { accessKeyId: cluster.accessKeyId, secretAccessKey: cluster.secretAccessKey };
  const virtual = await signedSend(gateway.url, credentials, { method: 'GET', path: '/sigv2.txt', headers: { host: 'boto-tls.s3.test' } });
  t.same([virtual.status, virtual.body], [200, 'v2'], 'bucket.s3.test/key reads bucket/key');
  t.ok((results.payload_modes as string[]).includes('STREAMING-UNSIGNED-PAYLOAD-TRAILER'), 'boto3 sent aws-chunked bodies with trailing checksums');
});
