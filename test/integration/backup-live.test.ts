// Live backup of a running VM: qemu-storage-daemon is the VM's block layer, a writer keeps
// changing the disk over NBD during the backups, and every snapshot must be exactly the disk at
// one instant (the checkpoint), which we can tell because each write carries a sequence number.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { runTessera } from '../lib/cluster.js';
import { startBackupStore } from '../lib/backup-store.js';
import { makeExt4Qcow2 } from '../lib/backup-images.js';
import { NbdClient } from '../../src/backup/nbd/client.js';

const BLOCK = 64 * 1024;
const MiB = 1024 * 1024;

const work = mkdtempSync(join(tmpdir(), 'tessera-backup-live-'));
const store = await startBackupStore();
let daemon: ChildProcess | undefined;
t.teardown(async () => {
  daemon?.kill('SIGKILL');
  await store.stop();
  rmSync(work, { recursive: true, force: true });
});

/** A guest that writes blocks stamped with an increasing sequence number, one at a time. */
class Writer {
  readonly log: Array<{ block: number; seq: number }> = [];
  private running = true;
  private done: Promise<void>;

  /** Writes go to `blocks` blocks from block `first` on, like a guest's busy files. */
  constructor(private readonly client: NbdClient, first: number, blocks: number) {
    this.done = (async () => {
      for (let seq = 1; this.running; seq++) {
        const block = first + ((seq * 7919) % blocks);
        const data = Buffer.alloc(BLOCK);
        for (let at = 0; at < BLOCK; at += 8) data.writeUInt32LE(seq, at);
        await client.write(block * BLOCK, data);
        this.log.push({ block, seq });
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }

  /** The disk at the instant after write `cut`: the original blocks with writes 1..cut applied. */
  expected(original: Buffer, cut: number): Buffer {
    const image = Buffer.from(original);
    for (const { block, seq } of this.log) {
      if (seq > cut) break;
      const data = Buffer.alloc(BLOCK);
      for (let at = 0; at < BLOCK; at += 8) data.writeUInt32LE(seq, at);
      data.copy(image, block * BLOCK);
    }
    return image;
  }
}

/** The largest sequence number stamped anywhere in an image (writes' first word). */
function lastWriteIn(image: Buffer, writer: Writer): number {
  let cut = 0;
  for (const { block, seq } of writer.log) if (image.readUInt32LE(block * BLOCK) === seq && image.readUInt32LE(block * BLOCK + BLOCK - 8) === seq) cut = Math.max(cut, seq);
  return cut;
}

t.test('live backups of a disk being written are each exactly the disk at their checkpoint', async (t) => {
  const image = makeExt4Qcow2(work, 'guest', 32, 8);
  const rawCopy = join(work, 'guest-original.raw');
  await new Promise<void>((resolve, reject) => {
    const convert = spawn('qemu-img', ['convert', '-O', 'raw', image, rawCopy]);
    convert.once('exit', (code) => (code === 0 ? resolve() : reject(new Error('qemu-img convert failed'))));
  });
  const original = readFileSync(rawCopy);
  const qmp = join(work, 'qmp.sock');
  const nbd = join(work, 'vm.sock');
  daemon = spawn('qemu-storage-daemon', [
    '--blockdev', `driver=file,node-name=file0,filename=${image}`,
    '--blockdev', 'driver=qcow2,node-name=disk0,file=file0',
    '--nbd-server', `addr.type=unix,addr.path=${nbd}`,
    '--export', 'type=nbd,id=guest,node-name=disk0,name=guest,writable=on',
    '--chardev', `socket,path=${qmp},server=on,wait=off,id=qmp0`, '--monitor', 'chardev=qmp0',
  ], { stdio: 'ignore' });
  while (!existsSync(qmp) || !existsSync(nbd)) await new Promise((resolve) => setTimeout(resolve, 20));

  const guest = await NbdClient.connect({ socketPath: nbd, exportName: 'guest' });
  t.teardown(() => guest.close());
  const writer = new Writer(guest, 8 * MiB / BLOCK, 48);
  const bucket = await store.createBucket('live');
  const backup = async () => {
    const result = await runTessera(['backup', '--bucket', bucket, '--disk', 'guest', '--qmp', qmp, '--nbd-server', `unix:${nbd}`, '--json', 'disk0'], store.env);
    if (result.code !== 0) throw new Error(result.stderr);
    return JSON.parse(result.stdout) as { snapshot: string; incremental: boolean; bytesRead: number };
  };
  while (writer.log.length < 20) await new Promise((resolve) => setTimeout(resolve, 10));
  const first = await backup();
  const afterFirst = writer.log.length;
  while (writer.log.length < afterFirst + 20) await new Promise((resolve) => setTimeout(resolve, 10));
  const second = await backup();
  await writer.stop();

  t.equal(first.incremental, false);
  t.equal(second.incremental, true, 'the second live backup follows the frozen checkpoint bitmap');
  t.ok(second.bytesRead <= 48 * BLOCK, `and reads only the blocks the guest wrote (${second.bytesRead} bytes)`);
  let previousCut = 0;
  for (const snapshot of [first, second]) {
    const to = join(work, `${snapshot.snapshot}.raw`);
    const restored = await runTessera(['restore', '--bucket', bucket, '--disk', 'guest', '--snapshot', snapshot.snapshot, '--to', to], store.env);
    t.equal(restored.code, 0, 'restore succeeds');
    const content = readFileSync(to);
    const cut = lastWriteIn(content, writer);
    t.ok(cut > previousCut, `snapshot ${snapshot.snapshot} holds writes up to #${cut}`);
    t.ok(content.equals(writer.expected(original, cut)), 'and is exactly the disk right after that write');
    previousCut = cut;
  }
  t.ok(previousCut < writer.log.length, 'writes went on after the last checkpoint');
});
