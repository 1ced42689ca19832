// The QEMU command-line tools the agent drives for image files: qemu-img (inspect, create,
// manage persistent dirty bitmaps) and qemu-nbd (serve an image so one NBD client reads them all).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { NbdAddress } from './nbd/client.js';

const run = promisify(execFile);

export interface ImageBitmap {
  name: string;
  granularity: number;
  /** qcow2 bitmap flags: 'auto' = enabled (tracks writes), 'in-use' = not saved cleanly. */
  flags: string[];
}

export interface ImageInfo {
  format: string;
  virtualSize: number;
  bitmaps: ImageBitmap[];
}

export async function imageInfo(path: string): Promise<ImageInfo> {
  const { stdout } = await run('qemu-img', ['info', '--output=json', '-U', path]);
  const info = JSON.parse(stdout) as {
    format: string;
    'virtual-size': number;
    'format-specific'?: { type: string; data?: { bitmaps?: ImageBitmap[] } };
  };
  return { format: info.format, virtualSize: info['virtual-size'], bitmaps: info['format-specific']?.data?.bitmaps ?? [] };
}

export async function qemuImg(args: string[]): Promise<void> {
  await run('qemu-img', args);
}

export interface BitmapRemover {
  /** Removes the bitmaps one after another (none: the process just ends); once only. */
  remove(names: string[]): Promise<void>;
}

/**
 * A `qemu-img bitmap --remove` process started now for bitmaps named later: forking from a
 * process costs time in proportion to its memory, and a backup's end, when its buffers have grown,
 * is the worst moment for it (10-40 ms). If the agent dies first, its pipe closes and nothing is removed.
 */
export function bitmapRemover(path: string): BitmapRemover {
  const child = spawn('sh', ['-c', 'while IFS= read -r name; do qemu-img bitmap --remove "$1" "$name" || exit 1; done', 'qemu-img', path], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  });
  exited.catch(() => undefined); // awaited by remove()
  child.stdin!.on('error', () => undefined); // a shell that failed early: its exit status tells
  return {
    async remove(names) {
      const lines = names.filter((name) => !name.includes('\n'));
      child.stdin!.end(lines.map((name) => `${name}\n`).join(''));
      const code = await exited;
      if (code !== 0) throw new Error(`qemu-img bitmap --remove failed: ${stderr.trim()}`);
      if (lines.length < names.length) throw new Error('bitmap names with a line break cannot be removed');
    },
  };
}

export interface QemuNbdOptions {
  format: string;
  readOnly: boolean;
  /** Persistent bitmap to export as qemu:dirty-bitmap:NAME. */
  bitmap?: string;
  /**
   * Persistent bitmap to add to the image right before serving it: `qemu-img bitmap --add` and
   * qemu-nbd run as one process chain, so the server starts without a round trip through Node.
   */
  addBitmap?: string;
  exportName?: string;
}

export interface ServedImage {
  address: NbdAddress;
  stop(): Promise<void>;
}

/**
 * Serves an image file with qemu-nbd on a private unix socket until stop(). Without --persistent,
 * qemu-nbd exits when its client disconnects, so it does not outlive an agent that was killed.
 */
export async function serveImage(path: string, options: QemuNbdOptions): Promise<ServedImage> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-nbd-'));
  const socketPath = join(dir, 'nbd.sock');
  const exportName = options.exportName ?? 'disk';
  const args = [
    `--format=${options.format}`, `--socket=${socketPath}`, `--export-name=${exportName}`, '--shared=8',
    '--discard=unmap',
    ...(options.readOnly ? ['--read-only'] : ['--detect-zeroes=unmap']),
    ...(options.bitmap ? [`--bitmap=${options.bitmap}`] : []),
    path,
  ];
  const child = options.addBitmap
    ? spawn('sh', ['-c', 'qemu-img bitmap --add "$1" "$2" && shift 2 && exec qemu-nbd "$@"', 'qemu-nbd', path, options.addBitmap, ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn('qemu-nbd', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const stop = async () => {
    await stopProcess(child);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(() => isListening(socketPath) || child.exitCode !== null, 20_000);
    if (child.exitCode !== null) throw new Error(`${options.addBitmap ? 'qemu-img bitmap --add or ' : ''}qemu-nbd failed: ${stderr.trim()}`);
  } catch (err) {
    await stop();
    throw err;
  }
  return { address: { socketPath, exportName }, stop };
}

export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/**
 * Whether a unix socket listens at `path`, without connecting to it: qemu-nbd exits when its last
 * client goes, and its socket file appears at bind(), before listen() (a connect then is refused).
 * Linux lists listening sockets in /proc/net/unix with the __SO_ACCEPTCON flag (0x10000).
 */
function isListening(path: string): boolean {
  let table: string;
  try {
    table = readFileSync('/proc/net/unix', 'utf8');
  } catch {
    return existsSync(path); // no procfs: the file is the best sign there is
  }
  return table.split('\n').some((line) => {
    const fields = line.trim().split(/\s+/);
    return fields[7] === path && (Number.parseInt(fields[3] ?? '0', 16) & 0x10000) !== 0;
  });
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for qemu-nbd');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
