// Snapshot lifecycle against a real S3 store: serve a snapshot over NBD, prune by policy, gc
// (also while a backup runs), verify finding damage, and Object Lock retention (the gateway's).
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import t from 'tap';
import { runTessera, tesseraMain } from '../lib/cluster.js';
import { startBackupStore } from '../lib/backup-store.js';
import { fileSha256, imageSha256, makeExt4Qcow2 } from '../lib/backup-images.js';
import { NbdServer, type NbdExport } from '../../src/backup/nbd/server.js';

const MiB = 1024 * 1024;

interface Summary { snapshot: string; chunksNew: number; chunksReused: number; bytesUploaded: number }

const work = mkdtempSync(join(tmpdir(), 'tessera-backup-life-'));
const store = await startBackupStore();
t.teardown(async () => {
  await store.stop();
  rmSync(work, { recursive: true, force: true });
});

async function tessera(args: string[], okCodes = [0]): Promise<string> {
  const result = await runTessera(args, store.env);
  if (!okCodes.includes(result.code)) throw new Error(`tessera ${args.join(' ')} failed (${result.code}):\n${result.stderr}${result.stdout}`);
  return result.stdout;
}

function randomImage(name: string, mib: number): string {
  const path = join(work, name);
  execFileSync('dd', ['if=/dev/urandom', `of=${path}`, 'bs=1M', `count=${mib}`, 'status=none']);
  return path;
}

async function backup(bucket: string, disk: string, source: string, extra: string[] = []): Promise<Summary> {
  return JSON.parse(await tessera(['backup', '--bucket', bucket, '--disk', disk, '--json', ...extra, source])) as Summary;
}

t.test('serve-nbd: qemu-img and nbdinfo read a snapshot at once', async (t) => {
  const bucket = await store.createBucket('serve');
  const image = makeExt4Qcow2(work, 'served', 32, 6);
  const snap = await backup(bucket, 'web', image);
  const socket = join(work, 'serve.sock');
  const server = spawn(process.execPath, [tesseraMain, 'serve-nbd', '--bucket', bucket, '--disk', 'web', '--snapshot', snap.snapshot, '--listen', `unix:${socket}`],
    { env: { ...process.env, ...store.env }, stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => { server.kill('SIGKILL'); });
  await new Promise<void>((resolve, reject) => {
    server.stdout!.once('data', () => resolve());
    server.once('exit', (code) => reject(new Error(`serve-nbd exited ${code}`)));
  });
  const copy = join(work, 'served-copy.raw');
  execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', `nbd+unix:///web?socket=${socket}`, copy]);
  t.equal(fileSha256(copy), imageSha256(image, work), 'qemu-img convert through the export yields the image');
  const map = execFileSync('nbdinfo', ['--map', `nbd+unix:///?socket=${socket}`]).toString();
  t.match(map, /hole,zero/, 'the default export serves the disk too, with holes from base:allocation');
  server.kill('SIGTERM');
  await new Promise((resolve) => server.once('exit', resolve));
});

t.test('prune keeps what the policy says; gc frees the rest; verify stays clean', async (t) => {
  const bucket = await store.createBucket('prune');
  const snaps: Summary[] = [];
  for (let day = 0; day < 4; day++) snaps.push(await backup(bucket, 'db', randomImage(`day${day}.raw`, 2)));
  const dry = JSON.parse(await tessera(['prune', '--bucket', bucket, '--keep-last', '2', '--dry-run', '--json'])) as { removed: string[] };
  t.same(dry.removed.sort(), [snaps[0]!.snapshot, snaps[1]!.snapshot].sort(), 'dry run names the two oldest');
  t.equal((JSON.parse(await tessera(['snapshots', '--bucket', bucket, '--json'])) as unknown[]).length, 4, 'and removes nothing');
  await tessera(['prune', '--bucket', bucket, '--keep-last', '2']);
  const left = JSON.parse(await tessera(['snapshots', '--bucket', bucket, '--json'])) as Array<{ id: string }>;
  t.same(left.map((s) => s.id), [snaps[2]!.snapshot, snaps[3]!.snapshot]);

  const packsBefore = (await store.listKeys(bucket, 'packs/')).length;
  const first = JSON.parse(await tessera(['gc', '--bucket', bucket, '--grace', '0s', '--json'])) as { condemned: number; deleted: number };
  t.ok(first.condemned > 0 && first.deleted === 0, 'the first gc only condemns');
  const second = JSON.parse(await tessera(['gc', '--bucket', bucket, '--grace', '0s', '--json'])) as { deleted: number };
  t.equal(second.deleted, first.condemned, 'the next gc deletes what is still unneeded');
  t.ok((await store.listKeys(bucket, 'packs/')).length < packsBefore);
  await tessera(['verify', '--bucket', bucket]);
  const restored = join(work, 'day3-restored.raw');
  await tessera(['restore', '--bucket', bucket, '--disk', 'db', '--snapshot', snaps[3]!.snapshot, '--to', restored]);
  t.equal(fileSha256(restored), fileSha256(join(work, 'day3.raw')));
});

t.test('gc while a backup runs loses nothing the backup reuses', async (t) => {
  const bucket = await store.createBucket('gc-race');
  const image = randomImage('shared.raw', 4);
  const old = await backup(bucket, 'old-vm', image);
  // The old snapshot is forgotten; its chunks are garbage until the new backup references them.
  await store.deleteObject(bucket, `snapshots/old-vm/${old.snapshot}`);

  // The new backup reads through an NBD export that stalls until gc has run twice.
  const content = readFileSync(image);
  let release!: () => void;
  const released = new Promise<void>((resolve) => { release = resolve; });
  let reading!: () => void;
  const startedReading = new Promise<void>((resolve) => { reading = resolve; });
  const disk: NbdExport = {
    size: content.length,
    read: async (offset, length) => { reading(); await released; return content.subarray(offset, offset + length); },
    allocation: async (offset, length) => [{ offset, length, flags: 0 }],
  };
  const socket = join(work, 'stall.sock');
  const server = await NbdServer.listen({ path: socket }, new Map([['new-vm', disk]]), 'new-vm');
  t.teardown(() => server.close());
  const running = backup(bucket, 'new-vm', `nbd+unix:///new-vm?socket=${socket}`);
  await startedReading;
  const gc1 = JSON.parse(await tessera(['gc', '--bucket', bucket, '--grace', '0s', '--json'])) as { condemned: number };
  const gc2 = JSON.parse(await tessera(['gc', '--bucket', bucket, '--grace', '0s', '--json'])) as { deleted: number; waitingForBackups: number };
  t.ok(gc1.condemned > 0, 'gc condemns the forgotten snapshot\'s packs');
  t.equal(gc2.deleted, 0, 'but does not delete them while a backup that may reuse them runs');
  t.ok(gc2.waitingForBackups > 0);
  release();
  const next = await running;
  t.ok(next.chunksReused > 0, 'the backup reused the condemned chunks');
  await tessera(['gc', '--bucket', bucket, '--grace', '0s']);
  await tessera(['gc', '--bucket', bucket, '--grace', '0s']);
  await tessera(['verify', '--bucket', bucket]);
  const restored = join(work, 'race-restored.raw');
  await tessera(['restore', '--bucket', bucket, '--disk', 'new-vm', '--snapshot', next.snapshot, '--to', restored]);
  t.equal(fileSha256(restored), fileSha256(image), 'the snapshot restores after gc');
});

t.test('verify finds a deleted and a corrupted chunk', async (t) => {
  const bucket = await store.createBucket('verify');
  const snap = await backup(bucket, 'vm', randomImage('verify.raw', 3), ['--pack-size', '1048576']);
  t.equal(JSON.parse(await tessera(['verify', '--bucket', bucket, '--json'])).problems.length, 0, 'a fresh repository verifies clean');
  // Two packs of chunks (the small one holds the index page).
  const packs: Array<{ key: string; body: Buffer }> = [];
  for (const key of await store.listKeys(bucket, 'packs/')) packs.push({ key, body: await store.getObject(bucket, key) });
  const [deleted, corrupted] = packs.filter((p) => p.body.length >= MiB);
  t.ok(deleted && corrupted);
  await store.deleteObject(bucket, deleted!.key);
  const body = corrupted!.body;
  body[100] = body[100]! ^ 0xff;
  await store.putObject(bucket, corrupted!.key, body);
  const report = JSON.parse(await tessera(['verify', '--bucket', bucket, '--snapshot', snap.snapshot, '--json'], [1])) as { problems: Array<{ kind: string; snapshot: string }> };
  t.ok(report.problems.some((p) => p.kind === 'missing'), 'the chunks of the deleted pack are missing');
  t.ok(report.problems.some((p) => p.kind === 'corrupt'), 'the damaged chunk is corrupt');
  t.ok(report.problems.every((p) => p.snapshot === snap.snapshot));
});

t.test('Object Lock: --lock-days writes retained objects; prune and gc leave them alone', async (t) => {
  const bucket = await store.createBucket('locked', { objectLock: true });
  const run = (name: string) => backup(bucket, 'vm', randomImage(name, 1), ['--lock-days', '1']);
  const first = await run('lock1.raw');
  await run('lock2.raw');
  const s3 = new S3Client({ endpoint: store.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: store.env.AWS_ACCESS_KEY_ID!, secretAccessKey: store.env.AWS_SECRET_ACCESS_KEY! } });
  t.teardown(() => s3.destroy());
  const [pack] = await store.listKeys(bucket, 'packs/');
  const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: pack! }));
  t.equal(head.ObjectLockMode, 'COMPLIANCE', 'packs carry COMPLIANCE retention');
  t.ok(head.ObjectLockRetainUntilDate!.getTime() > Date.now() + 23 * 3600e3, 'for the days asked');
  const pruned = JSON.parse(await tessera(['prune', '--bucket', bucket, '--keep-last', '1', '--json'])) as { removed: string[]; locked: string[] };
  t.same(pruned.removed, [], 'prune removes no locked snapshot');
  t.same(pruned.locked, [first.snapshot]);
  await tessera(['gc', '--bucket', bucket, '--grace', '0s']);
  await tessera(['gc', '--bucket', bucket, '--grace', '0s']);
  await tessera(['verify', '--bucket', bucket]);
  t.equal((JSON.parse(await tessera(['snapshots', '--bucket', bucket, '--json'])) as unknown[]).length, 2);
});

t.test('credentials from a --profile of the shared credentials file, as the AWS tools take them', async (t) => {
  const bucket = await store.createBucket('profile');
  await backup(bucket, 'vm', randomImage('profile.raw', 1));
  const credentials = join(work, 'credentials');
  writeFileSync(credentials, `[backup]\naws_access_key_id = ${store.env.AWS_ACCESS_KEY_ID}\naws_secret_access_key = ${store.env.AWS_SECRET_ACCESS_KEY}\n`);
  const env = { ...store.env, AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined, AWS_SHARED_CREDENTIALS_FILE: credentials };
  const listed = await runTessera(['snapshots', '--bucket', bucket, '--profile', 'backup', '--json'], env);
  t.equal(listed.code, 0, listed.stderr);
  t.equal((JSON.parse(listed.stdout) as unknown[]).length, 1, 'the snapshot is listed');
  const without = await runTessera(['snapshots', '--bucket', bucket, '--json'], env);
  t.not(without.code, 0, 'with neither keys nor a profile there are no credentials');
});
