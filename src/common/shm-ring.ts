// Shared-memory rings of the bulk channel. When a gateway and a storage node run on one host, a
// bulk connection may carry shard blocks through a file in /dev/shm that both map (native addon,
// mapSharedFile) instead of through the socket: the gateway copies a block into the ring and sends
// only its position; the node reads it in place and says how far it is done. Loopback TCP had cost
// the kernel a copy each way plus a wakeup per 128 KiB read on both ends (the gateway's `writev`
// alone was a third of its CPU in 64 MiB PUTs).
//
// The gateway makes the file (mode 0600, a random name) and offers it on its authenticated bulk
// connection with a random nonce written at the file's start; the node maps it only if the nonce
// matches, so it never maps a file it was not handed. Each side unlinks the file once it has it
// mapped or the node refused it (whichever comes first), so only a gateway that dies in between
// leaves one behind; the file name carries the gateway's pid, and the next gateway on the host
// removes files of processes that are gone. A ring belongs to one connection and dies with it.
//
// Layout: [0, 16) the nonce; [16, 24) how far the node has consumed (a float64 position, written
// only by the node, read by the gateway; an aligned 8-byte store is atomic on x86-64 and arm64);
// blocks from RING_HEADER on (page-aligned). Positions grow without wrapping; a block sits at
// position modulo the block area, whole (a block that would wrap starts the next lap instead).
import { randomBytes } from 'node:crypto';
import { readdirSync, unlinkSync } from 'node:fs';
import { StoreError } from './errors.js';
import { nativeAddon } from './native-addon.js';

const RING_DIR = '/dev/shm';
const RING_PATH = /^\/dev\/shm\/tessera-ring-\d+-[0-9a-f]{32}$/;
const RING_FILE_PID = /^tessera-ring-(\d+)-/;
export const RING_NONCE_BYTES = 16;
const CONSUMED_OFFSET = 16;
const RING_HEADER = 4096;
/** Blocks start on page boundaries, as direct I/O and the kernel's copy routines like. */
const SLOT_ALIGN = 4096;
/**
 * Block area of a ring: enough blocks in flight that encoding runs ahead of the node's disk writes
 * (64 MiB PUTs at 4+2 found a 2 MiB ring full for 0.1 % of blocks, a 1 MiB one for 0.6 %; each
 * MiB of ring is a MiB of memory per connection that holds one). The client sends frames 2 MiB
 * of blocks at a time (bulk-client.ts, RING_BYTES_PER_SEND) and the node holds blocks until it
 * has written them to disk from the ring, so room for three sends: one held by the client, one
 * being written, one waiting behind it (64 MiB PUTs c4 found a 6 MiB ring full for none of
 * 33,000 blocks, a 4 MiB one for 102 of 30,000).
 */
export const RING_BLOCK_BYTES = 6 * 1024 * 1024;

function unlinkRing(path: string): void {
  try { unlinkSync(path); } catch { /* the other side was first */ }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes ring files left by gateways that died between making one and the node's answer. */
export function sweepOrphanRings(): void {
  let names: string[];
  try { names = readdirSync(RING_DIR); } catch { return; }
  for (const name of names) {
    const pid = Number(RING_FILE_PID.exec(name)?.[1]);
    if (pid && !isAlive(pid)) unlinkRing(`${RING_DIR}/${name}`);
  }
}

function consumedCounter(memory: Buffer): Float64Array {
  return new Float64Array(memory.buffer, memory.byteOffset + CONSUMED_OFFSET, 1);
}

let swept = false;

/** The gateway's end: places blocks in the ring while the node has consumed enough of it. */
export class RingWriter {
  private head = 0;
  private readonly consumed: Float64Array;

  private constructor(readonly path: string, readonly nonce: Buffer, private readonly memory: Buffer) {
    this.consumed = consumedCounter(memory);
  }

  /** A new ring, or undefined where this host offers no shared memory. */
  static create(): RingWriter | undefined {
    if (!swept) {
      swept = true;
      sweepOrphanRings();
    }
    const path = `${RING_DIR}/tessera-ring-${process.pid}-${randomBytes(16).toString('hex')}`;
    try {
      const memory = nativeAddon.mapSharedFile(path, RING_HEADER + RING_BLOCK_BYTES, true);
      const nonce = randomBytes(RING_NONCE_BYTES);
      nonce.copy(memory, 0);
      return new RingWriter(path, nonce, memory);
    } catch {
      return undefined;
    }
  }

  get size(): number {
    return this.memory.length;
  }

  /** Removes the file (the node has mapped it, or never will); the mappings stay. */
  unlink(): void {
    unlinkRing(this.path);
  }

  /** Copies `bytes` into the ring and returns their position; undefined when the ring has no room. */
  put(bytes: Uint8Array): number | undefined {
    let start = Math.ceil(this.head / SLOT_ALIGN) * SLOT_ALIGN;
    if ((start % RING_BLOCK_BYTES) + bytes.length > RING_BLOCK_BYTES) start = Math.ceil(start / RING_BLOCK_BYTES) * RING_BLOCK_BYTES;
    if (bytes.length === 0 || start + bytes.length - this.consumed[0]! > RING_BLOCK_BYTES) return undefined;
    this.memory.set(bytes, RING_HEADER + (start % RING_BLOCK_BYTES));
    this.head = start + bytes.length;
    return start;
  }
}

/** The node's end: views of the blocks the gateway placed, handed back in order. */
export class RingReader {
  private readonly consumed: Float64Array;

  private constructor(private readonly memory: Buffer) {
    this.consumed = consumedCounter(memory);
  }

  /** Maps the ring at `path`; refused unless it is a ring file holding `nonce`. */
  static attach(path: string, nonce: Buffer, size: number): RingReader {
    if (!RING_PATH.test(path) || size !== RING_HEADER + RING_BLOCK_BYTES) {
      throw new StoreError('InvalidArgument', 'not a bulk ring');
    }
    let memory: Buffer;
    try {
      memory = nativeAddon.mapSharedFile(path, size, false);
    } catch (err) {
      throw new StoreError('Unavailable', `bulk ring not mappable here: ${(err as Error).message}`);
    }
    if (!memory.subarray(0, RING_NONCE_BYTES).equals(nonce)) throw new StoreError('Unauthenticated', 'bulk ring nonce mismatch');
    unlinkRing(path);
    return new RingReader(memory);
  }

  /** The block at `position`; valid until release(). */
  view(position: number, length: number): Buffer {
    const offset = position % RING_BLOCK_BYTES;
    if (length === 0 || position < this.consumed[0]! || offset + length > RING_BLOCK_BYTES) {
      throw new StoreError('InvalidArgument', `bulk ring block ${position}+${length} out of bounds`);
    }
    return this.memory.subarray(RING_HEADER + offset, RING_HEADER + offset + length);
  }

  /** Everything before `end` may be overwritten by the gateway. */
  release(end: number): void {
    this.consumed[0] = end;
  }
}
