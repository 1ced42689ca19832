// `tessera restore-bucket` against a real cluster over S3 (credentials and endpoint from the aws
// environment variables), with history written by the aws CLI: dry run, in-place restore of a
// prefix, restore into another bucket, relative times, and refusal of an unversioned bucket.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CreateBucketCommand, GetObjectCommand, ListObjectVersionsCommand } from '@aws-sdk/client-s3';
import t from 'tap';
import { runTessera, startCluster } from '../lib/cluster.js';
import { s3Client, s3Failure } from '../lib/s3-sdk.js';

const execFileAsync = promisify(execFile);
const cluster = await startCluster({ nodes: 4 });
t.teardown(() => cluster.stop());
const s3 = s3Client(t, cluster.endpoint, { accessKeyId: cluster.accessKeyId, secretAccessKey: cluster.secretAccessKey });

async function aws(...args: string[]): Promise<void> {
  await execFileAsync('aws', ['--endpoint-url', cluster.endpoint, ...args], { env: cluster.clientEnv, shell: false });
}
const put = (bucket: string, key: string, body: string) => execFileAsync('sh', ['-c', `printf %s "$BODY" | aws --endpoint-url ${cluster.endpoint} s3 cp - s3://${bucket}/${key}`],
  { env: { ...cluster.clientEnv, BODY: body } });
const restore = (...args: string[]) => runTessera(['restore-bucket', ...args], cluster.clientEnv);
const read = async (bucket: string, key: string) => (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToString();
const pause = () => new Promise((r) => setTimeout(r, 1200));

const BUCKET = 'history';
await aws('s3api', 'create-bucket', '--bucket', BUCKET);
await aws('s3api', 'put-bucket-versioning', '--bucket', BUCKET, '--versioning-configuration', 'Status=Enabled');
await put(BUCKET, 'docs/a.txt', 'a-v1');
await put(BUCKET, 'docs/b.txt', 'b-v1');
await put(BUCKET, 'other/z.txt', 'z-v1');
await pause();
const checkpoint = new Date().toISOString();
await pause();
await put(BUCKET, 'docs/a.txt', 'a-v2');
await aws('s3', 'rm', `s3://${BUCKET}/docs/b.txt`);
await put(BUCKET, 'docs/c.txt', 'c-v1');
await put(BUCKET, 'other/z.txt', 'z-v2');

t.test('dry run lists the plan and changes nothing', async (t) => {
  const result = await restore('--bucket', BUCKET, '--prefix', 'docs/', '--at', checkpoint, '--dry-run');
  t.equal(result.code, 0, result.stderr);
  t.match(result.stdout, /restore docs\/a\.txt \(version \w+\)/);
  t.match(result.stdout, /restore docs\/b\.txt/);
  t.match(result.stdout, /delete {2}docs\/c\.txt/);
  t.match(result.stdout, /would restore history\/docs\/ to .*: 2 to restore, 1 to delete, 0 unchanged/);
  t.equal(await read(BUCKET, 'docs/a.txt'), 'a-v2', 'nothing changed');
});

t.test('restore a prefix in place', async (t) => {
  const result = await restore('--bucket', BUCKET, '--prefix', 'docs/', '--at', checkpoint);
  t.equal(result.code, 0, result.stderr);
  t.match(result.stdout, /restored history\/docs\/ to .*: 2 restored, 1 deleted, 0 unchanged/);
  t.same([await read(BUCKET, 'docs/a.txt'), await read(BUCKET, 'docs/b.txt')], ['a-v1', 'b-v1']);
  t.same(await s3Failure(s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'docs/c.txt' }))), { code: 'NoSuchKey', status: 404 });
  t.equal(await read(BUCKET, 'other/z.txt'), 'z-v2', 'keys outside the prefix are untouched');
  const c = await s3.send(new ListObjectVersionsCommand({ Bucket: BUCKET, Prefix: 'docs/c.txt' }));
  t.same([c.Versions?.length, c.DeleteMarkers?.length], [1, 1], 'the later object is delete-marked, not destroyed');

  const again = await restore('--bucket', BUCKET, '--prefix', 'docs/', '--at', checkpoint);
  t.match(again.stdout, /0 restored, 0 deleted, 3 unchanged/, 'a second run has nothing to do');
});

t.test('restore into another bucket, and relative times', async (t) => {
  await s3.send(new CreateBucketCommand({ Bucket: 'history-copy' }));
  await put('history-copy', 'stray.txt', 'not from then');
  const result = await restore('--bucket', BUCKET, '--at', checkpoint, '--to-bucket', 'history-copy');
  t.equal(result.code, 0, result.stderr);
  t.same([await read('history-copy', 'docs/a.txt'), await read('history-copy', 'docs/b.txt'), await read('history-copy', 'other/z.txt')], ['a-v1', 'b-v1', 'z-v1']);
  t.same(await s3Failure(s3.send(new GetObjectCommand({ Bucket: 'history-copy', Key: 'stray.txt' }))), { code: 'NoSuchKey', status: 404 });
  t.equal(await read(BUCKET, 'other/z.txt'), 'z-v2', 'the source is untouched');

  const beforeEverything = await restore('--bucket', BUCKET, '--at', '1h', '--dry-run');
  t.match(beforeEverything.stdout, /0 to restore, 3 to delete/, 'an hour ago the bucket was empty');
});

t.test('refusals', async (t) => {
  await s3.send(new CreateBucketCommand({ Bucket: 'never-versioned' }));
  const unversioned = await restore('--bucket', 'never-versioned', '--at', '1h');
  t.equal(unversioned.code, 1);
  t.match(unversioned.stderr, /never been versioned/);
  const badTime = await restore('--bucket', BUCKET, '--at', 'yesterday-ish');
  t.not(badTime.code, 0);
  t.match(badTime.stderr, /ISO 8601/);
});
