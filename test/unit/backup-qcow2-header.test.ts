// The qcow2 header reader tells what `qemu-img info` tells of an image's size and bitmaps
// (real images made and changed by qemu-img and qemu-nbd), so the backup can do without it.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { readQcow2Info } from '../../src/backup/qcow2-header.js';
import { imageInfo, type ImageInfo } from '../../src/backup/qemu-tools.js';

const work = mkdtempSync(join(tmpdir(), 'tessera-qcow2-header-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));

const qemuImg = (...args: string[]) => execFileSync('qemu-img', args, { stdio: 'pipe' });
const sorted = (info: ImageInfo | undefined) => info && {
  ...info,
  bitmaps: info.bitmaps.map((b) => ({ name: b.name, granularity: b.granularity, flags: [...b.flags].sort() })).sort((a, b) => a.name.localeCompare(b.name)),
};

async function sameAsQemuImg(t: Test, image: string, what: string): Promise<ImageInfo> {
  const read = await readQcow2Info(image);
  t.same(sorted(read), sorted(await imageInfo(image)), what);
  return read!;
}

t.test('size and bitmaps as qemu-img info reports them: none, enabled, disabled, other granularity', async (t) => {
  const image = join(work, 'a.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', image, '3G');
  t.same((await sameAsQemuImg(t, image, 'no bitmaps')).virtualSize, 3 * 1024 ** 3);
  qemuImg('bitmap', '--add', image, 'tessera-vm-1');
  qemuImg('bitmap', '--add', '-g', '131072', image, 'a-longer-name-that-pads-its-entry-differently');
  qemuImg('bitmap', '--add', '--disable', image, 'frozen');
  const info = await sameAsQemuImg(t, image, 'three bitmaps');
  t.same(info.bitmaps.map((b) => b.name).sort(), ['a-longer-name-that-pads-its-entry-differently', 'frozen', 'tessera-vm-1']);
  qemuImg('bitmap', '--remove', image, 'tessera-vm-1');
  await sameAsQemuImg(t, image, 'after a removal');
});

t.test('a bitmap left in-use by a server that was killed reads as in-use', async (t) => {
  const image = join(work, 'b.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', image, '64M');
  qemuImg('bitmap', '--add', image, 'tracked');
  const socket = join(work, 'b.sock');
  // A writable qemu-nbd marks the image's enabled bitmaps in-use until it closes it cleanly.
  const server = spawn('qemu-nbd', ['--format=qcow2', `--socket=${socket}`, image], { stdio: 'ignore' });
  t.teardown(() => { server.kill('SIGKILL'); });
  for (let i = 0; i < 400 && !(await readQcow2Info(image))!.bitmaps[0]!.flags.includes('in-use'); i++) await new Promise((r) => setTimeout(r, 25));
  server.kill('SIGKILL');
  await new Promise((resolve) => server.once('exit', resolve));
  const info = await sameAsQemuImg(t, image, 'after the kill');
  t.same(info.bitmaps[0]!.flags.sort(), ['auto', 'in-use']);
});

t.test('images that are not qcow2 v3 with bitmaps', async (t) => {
  const raw = join(work, 'c.raw');
  writeFileSync(raw, Buffer.alloc(1024 * 1024));
  t.equal(await readQcow2Info(raw), undefined, 'a raw image is not qcow2 (qemu-img info is asked instead)');
  const empty = join(work, 'empty');
  writeFileSync(empty, '');
  t.equal(await readQcow2Info(empty), undefined, 'nor is an empty file');
  const v2 = join(work, 'd.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', v2, '1G');
  await sameAsQemuImg(t, v2, 'a version 2 image: size, no bitmaps');
  await t.rejects(readQcow2Info(join(work, 'missing.qcow2')), 'a missing file fails');
});
