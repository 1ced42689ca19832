// The gateway through the tools people point at S3 for files and backups: rclone (aws-sdk-go),
// s3cmd (SigV4 and SigV2) and restic (minio-go, signed streaming uploads), against a real
// multi-process cluster.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { startCluster } from '../lib/cluster.js';

const execFileAsync = promisify(execFile);

const cluster = await startCluster({ nodes: 4 });
t.teardown(() => cluster.stop());
const workDir = mkdtempSync(join(tmpdir(), 'tessera-backup-clients-'));
t.teardown(() => rmSync(workDir, { recursive: true, force: true }));

// A custom CA bundle from the environment makes rclone refuse plain-HTTP endpoints.
const env: NodeJS.ProcessEnv = { ...cluster.clientEnv, RESTIC_PASSWORD: 'restic-test-password' };
delete env.AWS_CA_BUNDLE;
const hostPort = new URL(cluster.endpoint).host;

async function run(command: string, ...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(command, args, { env, maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

/** A small tree of files with awkward names. */
function makeTree(root: string): Map<string, Buffer> {
  const files = new Map<string, Buffer>([
    ['big.bin', Buffer.from(Array.from({ length: 700_000 }, (_, i) => (i * 7 + 3) & 0xff))],
    ['notes/read me.txt', Buffer.from('hello from tessera\n')],
    ['notes/ünïcode/ßpecial+chars (1).txt', Buffer.from('unicode path\n')],
    ['empty.txt', Buffer.alloc(0)],
  ]);
  for (const [path, content] of files) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  return files;
}

function checkTree(t: Test, root: string, files: Map<string, Buffer>): void {
  for (const [path, content] of files) t.ok(readFileSync(join(root, path)).equals(content), `${path} restored intact`);
}

t.test('rclone: copy, check, list, sync back, delete', async (t) => {
  const config = join(workDir, 'rclone.conf');
  writeFileSync(config, `[tessera]\ntype = s3\nprovider = Other\naccess_key_id = ${cluster.accessKeyId}\n` +
    `secret_access_key = ${cluster.secretAccessKey}\nendpoint = ${cluster.endpoint}\nregion = us-east-1\n`);
  const rclone = (...args: string[]) => run('rclone', '--config', config, ...args);
  const source = join(workDir, 'rclone-source');
  const files = makeTree(source);
  await rclone('mkdir', 'tessera:rclone-bucket');
  await rclone('copy', source, 'tessera:rclone-bucket/tree');
  t.match(await rclone('check', source, 'tessera:rclone-bucket/tree'), '', 'rclone check finds no differences');
  const listing = await rclone('lsf', '-R', 'tessera:rclone-bucket/tree');
  for (const path of files.keys()) t.match(listing, path);
  const back = join(workDir, 'rclone-back');
  await rclone('copy', 'tessera:rclone-bucket/tree', back);
  checkTree(t, back, files);
  await rclone('purge', 'tessera:rclone-bucket');
  t.equal((await rclone('lsd', 'tessera:')).includes('rclone-bucket'), false, 'purged');
});

t.test('s3cmd: SigV4 and SigV2', async (t) => {
  const config = join(workDir, 's3cfg');
  writeFileSync(config, `[default]\naccess_key = ${cluster.accessKeyId}\nsecret_key = ${cluster.secretAccessKey}\n` +
    `host_base = ${hostPort}\nhost_bucket = ${hostPort}\nuse_https = False\n`);
  const s3cmd = (...args: string[]) => run('s3cmd', '-c', config, ...args);
  const source = join(workDir, 's3cmd-source');
  const files = makeTree(source);
  await s3cmd('mb', 's3://s3cmd-bucket');
  await s3cmd('put', '--recursive', `${source}/`, 's3://s3cmd-bucket/v4/');
  await s3cmd('--signature-v2', 'put', join(source, 'big.bin'), 's3://s3cmd-bucket/v2/big.bin');
  const listing = await s3cmd('ls', '--recursive', 's3://s3cmd-bucket');
  t.match(listing, 's3://s3cmd-bucket/v4/notes/read me.txt');
  t.match(listing, 's3://s3cmd-bucket/v2/big.bin');
  const info = await s3cmd('--signature-v2', 'info', 's3://s3cmd-bucket/v2/big.bin');
  t.match(info, /File size: 700000/);
  t.match(await s3cmd('info', 's3://s3cmd-bucket'), /Payer:\s+BucketOwner/, 'bucket info reads every setting');
  const back = join(workDir, 's3cmd-back');
  mkdirSync(back);
  await s3cmd('get', '--recursive', 's3://s3cmd-bucket/v4/', `${back}/`);
  checkTree(t, back, files);
  await s3cmd('del', '--recursive', '--force', 's3://s3cmd-bucket');
  await s3cmd('rb', 's3://s3cmd-bucket');
});

t.test('restic: init, backup, check --read-data, restore', async (t) => {
  const repository = `s3:${cluster.endpoint}/restic-repo`;
  const restic = (...args: string[]) => run('restic', '--no-cache', '-r', repository, ...args);
  const source = join(workDir, 'restic-source');
  const files = makeTree(source);
  await restic('init');
  await restic('backup', source);
  await restic('check', '--read-data');
  const target = join(workDir, 'restic-restore');
  await restic('restore', 'latest', '--target', target);
  checkTree(t, join(target, source), files);
});
