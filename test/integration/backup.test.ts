// Backup and restore of VM disks end to end: real images (ext4 of real files in qcow2), real
// qemu tools, the `tessera` CLI as a separate process, and an S3 store (test/lib/backup-store.ts).
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runTessera, tesseraMain } from '../lib/cluster.js';
import { startBackupStore } from '../lib/backup-store.js';
import { imageSha256, makeExt4Qcow2, qemuIoWrite } from '../lib/backup-images.js';
import { NbdClient } from '../../src/backup/nbd/client.js';
import { imageInfo, serveImage } from '../../src/backup/qemu-tools.js';

const MiB = 1024 * 1024;
const CHUNK = 64 * 1024;

interface Summary {
  snapshot: string;
  incremental: boolean;
  bytesRead: number;
  bytesChanged: number;
  bytesUploaded: number;
  chunksNew: number;
  chunksReused: number;
}

const work = mkdtempSync(join(tmpdir(), 'tessera-backup-test-'));
const store = await startBackupStore();
t.teardown(async () => {
  await store.stop();
  rmSync(work, { recursive: true, force: true });
});

async function tessera(args: string[]): Promise<string> {
  const result = await runTessera(args, store.env);
  if (result.code !== 0) throw new Error(`tessera ${args.join(' ')} failed (${result.code}):\n${result.stderr}`);
  return result.stdout;
}

async function backup(bucket: string, disk: string, source: string, extra: string[] = []): Promise<Summary> {
  return JSON.parse(await tessera(['backup', '--bucket', bucket, '--disk', disk, '--json', ...extra, source])) as Summary;
}

async function restoredSha(bucket: string, disk: string, select: string[], format = 'raw'): Promise<string> {
  const to = join(work, `restore-${Math.random().toString(36).slice(2)}.${format}`);
  await tessera(['restore', '--bucket', bucket, '--disk', disk, ...select, '--to', to, '--format', format]);
  const digest = imageSha256(to, work);
  rmSync(to, { force: true });
  return digest;
}

t.test('qcow2 image: agent-managed bitmaps make every later backup incremental; every snapshot restores exactly', async (t) => {
  const bucket = await store.createBucket('vm-qcow2');
  const image = makeExt4Qcow2(work, 'vm1', 48, 12);
  const day0 = imageSha256(image, work);

  // Small jobs run their codec work inline; --threads puts it on worker threads as large ones do.
  const full = await backup(bucket, 'vm1', image, ['--threads', '2']);
  t.equal(full.incremental, false, 'the first backup reads everything');
  t.ok(full.bytesRead < 24 * MiB, `a full backup reads only allocated data (${full.bytesRead} of ${48 * MiB})`);
  t.ok(full.chunksNew > 0);
  const bitmaps = (await imageInfo(image)).bitmaps;
  t.same(bitmaps.map((b) => b.name), [`tessera-vm1-${full.snapshot}`], 'a checkpoint bitmap tracks changes from the snapshot on');

  const writes = [
    { offset: 3 * MiB + 4096, length: 4096, pattern: 0x11 },
    { offset: 20 * MiB, length: 192 * 1024, pattern: 0x22 },
    { offset: 40 * MiB + CHUNK / 2, length: CHUNK, pattern: 0x33 },
  ];
  qemuIoWrite(image, writes);
  const day1 = imageSha256(image, work);
  const incremental = await backup(bucket, 'vm1', image);
  t.equal(incremental.incremental, true, 'the second backup follows the checkpoint bitmap with no flag');
  t.equal(incremental.bytesRead, 1 * CHUNK + 3 * CHUNK + 2 * CHUNK, 'it reads exactly the dirty chunks');
  t.ok(incremental.bytesChanged <= incremental.bytesRead);

  qemuIoWrite(image, [{ offset: 20 * MiB, length: 128 * 1024, zero: true }]);
  const day2 = imageSha256(image, work);
  const third = await backup(bucket, 'vm1', image);
  t.equal(third.incremental, true);
  t.equal(third.bytesRead, 0, 'dirty extents that now read as zero are recorded as zero without reading');

  const listed = JSON.parse(await tessera(['snapshots', '--bucket', bucket, '--disk', 'vm1', '--json'])) as Array<{ id: string; time: string }>;
  t.same(listed.map((s) => s.id), [full.snapshot, incremental.snapshot, third.snapshot]);

  t.equal(await restoredSha(bucket, 'vm1', ['--snapshot', full.snapshot, '--threads', '2']), day0, 'snapshot 1 by id');
  t.equal(await restoredSha(bucket, 'vm1', ['--snapshot', incremental.snapshot]), day1, 'snapshot 2 by id');
  t.equal(await restoredSha(bucket, 'vm1', ['--at', listed[1]!.time]), day1, 'snapshot 2 by time');
  t.equal(await restoredSha(bucket, 'vm1', ['--at', '0s']), day2, 'the latest by relative time');
  t.equal(await restoredSha(bucket, 'vm1', ['--snapshot', full.snapshot], 'qcow2'), day0, 'restore to qcow2');

  const over = join(work, 'over.raw');
  await tessera(['restore', '--bucket', bucket, '--disk', 'vm1', '--snapshot', full.snapshot, '--to', over]);
  const again = JSON.parse(await tessera(['restore', '--bucket', bucket, '--disk', 'vm1', '--snapshot', incremental.snapshot, '--to', over, '--json', '--threads', '2'])) as { bytesWritten: number };
  t.equal(again.bytesWritten, 6 * CHUNK, 'restoring over an existing image writes only the chunks that differ');
  t.equal(imageSha256(over, work), day1);
});

t.test('NBD export with qemu-nbd --bitmap: the incremental reads only the dirty extents', async (t) => {
  const bucket = await store.createBucket('vm-nbd');
  const image = makeExt4Qcow2(work, 'vm2', 32, 6);
  execFileSync('qemu-img', ['bitmap', '--add', image, 'bm0']);
  const backupThroughNbd = async () => {
    const served = await serveImage(image, { format: 'qcow2', readOnly: true, bitmap: 'bm0', exportName: 'vm2' });
    try {
      const url = `nbd+unix:///vm2?socket=${served.address.socketPath}`;
      return await backup(bucket, 'vm2', url, ['--bitmap', 'bm0']);
    } finally {
      await served.stop();
    }
  };
  const full = await backupThroughNbd();
  t.equal(full.incremental, false);
  qemuIoWrite(image, [{ offset: 1 * MiB, length: 8192, pattern: 0x44 }, { offset: 17 * MiB, length: 3 * CHUNK, pattern: 0x45 }]);
  const next = await backupThroughNbd();
  t.equal(next.incremental, true);
  t.equal(next.bytesRead, 4 * CHUNK, 'only the dirty extents are read');
  t.equal(await restoredSha(bucket, 'vm2', ['--snapshot', next.snapshot]), imageSha256(image, work));
});

t.test('a leftover checkpoint newer than the parent\'s (a backup that never saved its snapshot) still gives an incremental', async (t) => {
  const bucket = await store.createBucket('vm-leftover');
  const image = makeExt4Qcow2(work, 'vm4', 32, 6);
  await backup(bucket, 'vm4', image);
  // qemu-nbd starts with the newest checkpoint of ours before the parent is known; here it is not the parent's.
  execFileSync('qemu-img', ['bitmap', '--add', image, 'tessera-vm4-99991231T235959999Z-ffffffff']);
  qemuIoWrite(image, [{ offset: 3 * MiB + 4096, length: 4096, pattern: 0x44 }]);
  const next = await backup(bucket, 'vm4', image);
  t.equal(next.incremental, true, 'the parent\'s checkpoint is followed');
  t.equal(next.bytesRead, CHUNK, 'reading only the dirty chunk');
  t.equal(await restoredSha(bucket, 'vm4', ['--snapshot', next.snapshot]), imageSha256(image, work));
  t.same((await imageInfo(image)).bitmaps.map((b) => b.name), [`tessera-vm4-${next.snapshot}`], 'the leftover is retired with the old checkpoint');
});

t.test('an in-use bitmap (unclean exit) forces a full read that still uploads only what is missing', async (t) => {
  const bucket = await store.createBucket('vm-inuse');
  const image = makeExt4Qcow2(work, 'vm3', 32, 6);
  const full = await backup(bucket, 'vm3', image);
  // A writer that dies without closing the image leaves the persistent bitmap marked in-use.
  const socket = join(work, 'inuse.sock');
  const writer = spawn('qemu-nbd', ['--format=qcow2', `--socket=${socket}`, image], { stdio: 'ignore' });
  while (!existsSync(socket)) await new Promise((resolve) => setTimeout(resolve, 20));
  const client = await NbdClient.connect({ socketPath: socket, exportName: '' });
  await client.write(5 * MiB, Buffer.alloc(CHUNK, 0x66));
  await client.flush();
  writer.kill('SIGKILL');
  await new Promise((resolve) => writer.once('exit', resolve));
  const bitmap = (await imageInfo(image)).bitmaps.find((b) => b.name === `tessera-vm3-${full.snapshot}`);
  t.ok(bitmap?.flags.includes('in-use'), 'the checkpoint bitmap is in-use');

  const result = await runTessera(['backup', '--bucket', bucket, '--disk', 'vm3', '--json', image], store.env);
  t.equal(result.code, 0, 'the backup succeeds');
  const next = JSON.parse(result.stdout) as Summary;
  t.equal(next.incremental, false, 'the agent falls back to a full read');
  t.match(result.stderr, /in-use/, 'and says why');
  t.equal(next.chunksNew, 1, 'only the changed chunk is uploaded');
  t.equal(await restoredSha(bucket, 'vm3', ['--snapshot', next.snapshot]), imageSha256(image, work));
  const names = (await imageInfo(image)).bitmaps.map((b) => b.name);
  t.same(names, [`tessera-vm3-${next.snapshot}`], 'the broken bitmap is replaced by a fresh checkpoint');
});

t.test('an agent killed mid-backup resumes without re-uploading what is stored', async (t) => {
  const bucket = await store.createBucket('vm-resume');
  const image = join(work, 'random.raw');
  execFileSync('dd', ['if=/dev/urandom', `of=${image}`, 'bs=1M', 'count=24', 'status=none']);
  const agent = spawn(process.execPath, [tesseraMain, 'backup', '--bucket', bucket, '--disk', 'vm4', '--pack-size', '1048576', '--uploads', '1', '--json', image],
    { env: { ...process.env, ...store.env }, stdio: 'ignore' });
  let exitCode: number | null | undefined;
  const exited = new Promise((resolve) => agent.once('exit', (code) => { exitCode = code; resolve(code); }));
  t.teardown(() => { agent.kill('SIGKILL'); });
  // Kill it once a few packs are stored but before the snapshot is (an agent that ended on its
  // own, having failed, must fail the test rather than leave it waiting for packs).
  for (let packs = 0; packs < 4;) {
    await new Promise((resolve) => setTimeout(resolve, 25));
    if (exitCode !== undefined && exitCode !== 0) throw new Error(`the agent failed before storing 4 packs (exit ${exitCode})`);
    packs = (await store.listKeys(bucket, 'packs/')).length;
  }
  agent.kill('SIGKILL');
  await exited;
  const before = JSON.parse(await tessera(['snapshots', '--bucket', bucket, '--json'])) as unknown[];
  t.equal(before.length, 0, 'no snapshot is visible from the killed backup');
  const resumed = await backup(bucket, 'vm4', image, ['--pack-size', '1048576']);
  t.ok(resumed.chunksReused >= 4 * 1048576 / CHUNK - 16, `chunks of the killed run are reused (${resumed.chunksReused})`);
  t.ok(resumed.bytesUploaded < 22 * MiB, `less than the whole disk is uploaded again (${resumed.bytesUploaded})`);
  t.equal(await restoredSha(bucket, 'vm4', ['--snapshot', resumed.snapshot]), imageSha256(image, work));
});

t.test('encrypted repository: packs hold no plaintext and restore needs the key', async (t) => {
  const bucket = await store.createBucket('vm-crypt');
  const image = join(work, 'secret.raw');
  const marker = 'TESSERA-PLAINTEXT-MARKER-';
  execFileSync('sh', ['-c', `yes '${marker}0123456789' | head -c ${4 * MiB} > ${image}`]);
  const key = join(work, 'key');
  execFileSync('sh', ['-c', `openssl rand -hex 32 > ${key}`]);
  const first = await backup(bucket, 'vm5', image, ['--encrypt', '--key-file', key]);
  const keys = await store.listKeys(bucket, '');
  t.ok(keys.some((k) => k.startsWith('packs/')), 'packs were written');
  for (const key of keys) {
    const body = await store.getObject(bucket, key);
    t.notOk(body.includes(marker) || body.includes('0123456789'), `${key} holds no plaintext`);
  }
  const denied = await runTessera(['snapshots', '--bucket', bucket], store.env);
  t.not(denied.code, 0, 'without the key the repository does not open');
  t.equal(await restoredSha(bucket, 'vm5', ['--snapshot', first.snapshot, '--key-file', key]), imageSha256(image, work));

  // The seal, which binds each blob's id, catches damage where the plaintext is no longer hashed.
  const [pack] = keys.filter((k) => k.startsWith('packs/'));
  const body = await store.getObject(bucket, pack!);
  body[40] = body[40]! ^ 0xff;
  await store.putObject(bucket, pack!, body);
  const damaged = await runTessera(['restore', '--bucket', bucket, '--disk', 'vm5', '--snapshot', first.snapshot, '--key-file', key, '--to', join(work, 'damaged.raw')], store.env);
  t.not(damaged.code, 0, 'a restore meeting a damaged blob fails');
  t.match(damaged.stderr, /authentication|does not match/, 'and says the data is damaged');
});
