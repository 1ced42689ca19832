// The bulk shard channel: a plain TCP protocol beside gRPC for the two calls that move shard
// bytes (put and get). gRPC copies every block twice (protobuf, then its framing) and costs
// ~2 CPU-s per GB each way; raw frames on a socket let the kernel do the copy. The node's gRPC
// service stays the contract (PutShard/GetShard do the same work); a node advertises its bulk
// address in Health and clients fall back to gRPC where it has none.
//
// Connection:  client "TSB1" u16 token-length token   ->   server u8 status [u16 len message]
// Put:         u8 1, ref, u32 block size, frames..., empty frame
//              <- status, message, u64 bytes, u32 blocks
// Get:         u8 2, ref, u64 offset, u64 length (0: to the end)
//              <- status, message, then frames..., empty frame (or ERROR_FRAME, status, message)
// Ring:        u8 3, u16 path length, path, 16-byte nonce, u32 size   <- status, message
//              (offered only to nodes that say so in Health.bulk_shared_memory; a refusal leaves
//              the connection as it was; see src/common/shm-ring.ts)
// ref:         u16 data-id length, data id, u16 shard index
// frame:       u32 length, bytes (length 0 ends a stream). All integers big-endian.
//              In a put on a connection with a ring, also RING_FRAME, u64 position, u32 length:
//              a block the client placed in the ring.
import { Socket } from 'node:net';
import { StoreError, type StoreErrorKind } from './errors.js';

export const BULK_MAGIC = Buffer.from('TSB1');
export const OP_PUT = 1;
export const OP_GET = 2;
export const OP_RING = 3;
export const ERROR_FRAME = 0xffffffff;
export const RING_FRAME = 0xfffffffe;
export const MAX_FRAME = 16 * 1024 * 1024;

const KINDS: StoreErrorKind[] = ['Internal', 'NotFound', 'Corrupt', 'DiskFull', 'InvalidArgument', 'Unauthenticated', 'Unavailable', 'Conflict'];

/** 0 for success; otherwise the error's kind as a status byte. */
export function statusOf(err: unknown): number {
  const kind = err instanceof StoreError ? err.kind : 'Internal';
  return Math.max(KINDS.indexOf(kind), 0) || KINDS.indexOf('Internal');
}

export function statusMessage(status: number, message: string): Buffer {
  const text = Buffer.from(message.slice(0, 1000));
  const out = Buffer.allocUnsafe(3 + text.length);
  out.writeUInt8(status, 0);
  out.writeUInt16BE(text.length, 1);
  text.copy(out, 3);
  return out;
}

export function errorFromStatus(status: number, message: string, nodeId: string): StoreError {
  return new StoreError(KINDS[status] ?? 'Internal', `node ${nodeId}: ${message}`, { nodeId });
}

export function encodeRef(op: number, dataId: string, shardIndex: number): Buffer {
  const id = Buffer.from(dataId);
  const out = Buffer.allocUnsafe(5 + id.length);
  out.writeUInt8(op, 0);
  out.writeUInt16BE(id.length, 1);
  id.copy(out, 3);
  out.writeUInt16BE(shardIndex, 3 + id.length);
  return out;
}

/** A client's opening: the magic and its cluster token (the node answers with a status). */
export function hello(token: string): Buffer {
  const tokenBytes = Buffer.from(token);
  return Buffer.concat([BULK_MAGIC, u16(tokenBytes.length), tokenBytes]);
}

/** A ring offer (OP_RING): the file's path, the nonce at its start and its size. */
export function ringOffer(ring: { path: string; nonce: Buffer; size: number }): Buffer {
  const path = Buffer.from(ring.path);
  const size = Buffer.allocUnsafe(4);
  size.writeUInt32BE(ring.size, 0);
  return Buffer.concat([Buffer.from([OP_RING]), u16(path.length), path, ring.nonce, size]);
}

function u16(n: number): Buffer {
  const out = Buffer.allocUnsafe(2);
  out.writeUInt16BE(n, 0);
  return out;
}

/** The frame of a put's block that the client placed in the connection's ring. */
export function ringFrame(position: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(RING_FRAME_BYTES);
  out.writeUInt32BE(RING_FRAME, 0);
  out.writeBigUInt64BE(BigInt(position), 4);
  out.writeUInt32BE(length, 12);
  return out;
}

/** Blocks of a connection's ring, as the receiving end sees them (RingReader). */
export interface RingBlocks {
  view(position: number, length: number): Buffer;
  release(end: number): void;
}

export function frameHeader(length: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt32BE(length, 0);
  return out;
}

/**
 * Queue one frame, header and payload in a single system call; `flushed` runs once the payload
 * is handed to the kernel. False when the socket's buffer is over its high-water mark.
 */
export function writeFrame(socket: Socket, payload: Uint8Array, flushed?: () => void): boolean {
  socket.cork();
  socket.write(frameHeader(payload.length));
  const belowHighWater = socket.write(payload, flushed);
  socket.uncork();
  return belowHighWater;
}

/**
 * A piece of a put's payload: socket bytes, valid until the reader is asked for more, or a block
 * in the connection's ring (`lentEnd` set), valid until the ring is released up to `lentEnd`.
 * Ring blocks start on page boundaries (see shm-ring.ts), so they can be written out directly.
 */
export interface FramePiece {
  bytes: Buffer;
  lentEnd?: number;
}

/**
 * Reads exact byte counts and frames from a socket's chunk stream. A chunk may be reused by its
 * source once the next one is asked for, so what this returns is valid until the next call.
 */
export class ByteReader {
  private pending: Buffer[] = [];
  private buffered = 0;
  /** Payload bytes still to come of the socket frame putPieces() is in. */
  private frameLeft = 0;

  constructor(private readonly chunks: AsyncIterator<Buffer>) {}

  async exact(n: number): Promise<Buffer> {
    while (this.buffered < n) await this.more();
    return n === 0 ? NOTHING : this.peek(n)!.subarray(0, this.skip(n));
  }

  /** The next `n` bytes (or more) in one buffer without taking them; undefined when fewer are buffered. */
  private peek(n: number): Buffer | undefined {
    if (this.buffered < n) return undefined;
    if (this.pending[0]!.length < n) this.pending = [Buffer.concat(this.pending, this.buffered)];
    return this.pending[0];
  }

  /** Takes `n` bytes that peek(n) has seen; returns n. */
  private skip(n: number): number {
    const first = this.pending[0]!;
    if (first.length > n) this.pending[0] = first.subarray(n);
    else this.pending.shift();
    this.buffered -= n;
    return n;
  }

  /** Adds the next chunk; the few bytes still pending are copied first (the source may overwrite them). */
  private async more(): Promise<void> {
    if (this.pending.length) this.pending = [Buffer.concat(this.pending, this.buffered)];
    const next = await this.chunks.next();
    if (next.done) throw new StoreError('Unavailable', 'bulk connection closed mid-message');
    this.pending.push(next.value);
    this.buffered += next.value.length;
  }

  /** Between 1 and n bytes: the start of what is buffered, else of the next chunk (never a copy). */
  private async upTo(n: number): Promise<Buffer> {
    if (this.buffered === 0) await this.more();
    return this.bufferedUpTo(n);
  }

  /** Between 1 and n of the bytes buffered (at least one must be). */
  private bufferedUpTo(n: number): Buffer {
    const first = this.pending[0]!;
    return first.subarray(0, this.skip(Math.min(first.length, n)));
  }

  async u8(): Promise<number> { return (await this.exact(1)).readUInt8(0); }
  async u16(): Promise<number> { return (await this.exact(2)).readUInt16BE(0); }
  async u32(): Promise<number> { return (await this.exact(4)).readUInt32BE(0); }
  async u64(): Promise<number> { return Number((await this.exact(8)).readBigUInt64BE(0)); }
  async text(): Promise<string> { return (await this.exact(await this.u16())).toString(); }

  async status(): Promise<{ status: number; message: string }> {
    const status = await this.u8();
    return { status, message: await this.text() };
  }

  /**
   * The payload of a stream's frames until the empty frame, in the pieces the socket delivered
   * (a frame is not gathered into one buffer: that copy and allocation per block kept the GC
   * busy); an error frame throws its status. (A put's payload, which may hold ring frames, is
   * read with putPieces().)
   */
  async *frames(nodeId: string): AsyncGenerator<Buffer> {
    for (;;) {
      const length = await this.u32();
      if (length === 0) return;
      if (length === ERROR_FRAME) {
        const { status, message } = await this.status();
        throw errorFromStatus(status, message, nodeId);
      }
      checkFrameLength(length);
      for (let left = length; left > 0;) {
        const piece = await this.upTo(left);
        left -= piece.length;
        yield piece;
      }
    }
  }

  /**
   * A put's payload, as much as has arrived at once: every piece the buffered bytes hold (waiting
   * only while they hold none), and whether the empty frame that ends the stream came with them.
   * One call per socket read instead of a promise or more per frame. Ring blocks are handed out
   * in place; the caller releases them (RingBlocks.release) once it is done with them.
   */
  async putPieces(ring?: RingBlocks): Promise<{ pieces: FramePiece[]; ended: boolean }> {
    const pieces: FramePiece[] = [];
    for (;;) {
      const piece = this.bufferedPiece(ring);
      if (piece === STREAM_END) return { pieces, ended: true };
      if (piece) pieces.push(piece);
      else if (pieces.length > 0) return { pieces, ended: false };
      else await this.more();
    }
  }

  /** The next piece of a put's payload in what is buffered; undefined when more bytes must come first. */
  private bufferedPiece(ring: RingBlocks | undefined): FramePiece | typeof STREAM_END | undefined {
    if (this.frameLeft > 0) {
      if (this.buffered === 0) return undefined;
      const bytes = this.bufferedUpTo(this.frameLeft);
      this.frameLeft -= bytes.length;
      return { bytes };
    }
    const header = this.peek(4);
    if (!header) return undefined;
    const length = header.readUInt32BE(0);
    if (length === RING_FRAME) return this.bufferedRingBlock(ring);
    this.skip(4);
    if (length === 0) return STREAM_END;
    checkFrameLength(length);
    this.frameLeft = length;
    return this.bufferedPiece(ring);
  }

  private bufferedRingBlock(ring: RingBlocks | undefined): FramePiece | undefined {
    if (!ring) throw new StoreError('InvalidArgument', 'ring frame on a connection without a ring');
    const frame = this.peek(RING_FRAME_BYTES);
    if (!frame) return undefined;
    const position = frame.readUInt32BE(4) * 2 ** 32 + frame.readUInt32BE(8);
    const length = frame.readUInt32BE(12);
    this.skip(RING_FRAME_BYTES);
    return { bytes: ring.view(position, length), lentEnd: position + length };
  }
}

const STREAM_END = Symbol('end of stream');
const NOTHING = Buffer.alloc(0);
const RING_FRAME_BYTES = 16;

function checkFrameLength(length: number): void {
  if (length > MAX_FRAME) throw new StoreError('InvalidArgument', `bulk frame of ${length} bytes is too large`);
}

/** Bytes per socket read into a connection's one read buffer. */
const READ_BUFFER_BYTES = 128 * 1024;

/**
 * A socket's incoming bytes, read into one buffer per connection (the socket's `onread` option):
 * each chunk is valid until the next is asked for, and the socket reads nothing meanwhile. Node's
 * default, a fresh 64 KiB buffer per read, made a transfer allocate as many bytes as it moved, and
 * V8 answers each 64 MiB of such allocation with a full garbage collection (--trace-gc: one every
 * 60 ms at 360 MB/s on a gateway's GETs; perf: 30 % of a node's CPU in PUTs).
 */
export class ReusedReadBuffer implements AsyncIterator<Buffer> {
  private chunk: Buffer | undefined;
  private handedOut = false;
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private socket: Socket | undefined;

  readonly onread = {
    buffer: Buffer.allocUnsafe(READ_BUFFER_BYTES),
    callback: (bytes: number, buffer: Uint8Array): boolean => {
      this.chunk = Buffer.from(buffer.buffer, buffer.byteOffset, bytes);
      this.notify();
      return false; // stop reading until this chunk is done with
    },
  };

  attach(socket: Socket): void {
    this.socket = socket;
    socket.on('end', () => this.finish());
    socket.on('close', () => this.finish());
    socket.on('error', (err) => this.finish(err));
    socket.resume();
  }

  async next(): Promise<IteratorResult<Buffer>> {
    this.doneWithChunk();
    while (!this.chunk) {
      if (this.failure) throw this.failure;
      if (this.ended) return { done: true, value: undefined };
      await new Promise<void>((resolve) => { this.wake = resolve; });
    }
    const value = this.chunk;
    this.chunk = undefined;
    this.handedOut = true;
    return { done: false, value };
  }

  /** The chunk handed out last is no longer used: the socket may read into the buffer again. */
  doneWithChunk(): void {
    if (!this.handedOut) return;
    this.handedOut = false;
    this.socket!.resume();
  }

  /** Whether the connection is still open with nothing unread (what a connection between requests must be). */
  get quiet(): boolean {
    return !this.chunk && !this.ended;
  }

  private finish(err?: Error): void {
    this.failure ??= err;
    this.ended = true;
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

/**
 * An accepted connection re-made as a socket that reads into `reads` (see ReusedReadBuffer). Node
 * offers `onread` only to sockets it makes from a handle, not to the ones a server accepts, so the
 * server must accept with pauseOnConnect (nothing read yet) and the handle moves to a new socket.
 */
export function readingIntoReusedBuffer(accepted: Socket, reads: ReusedReadBuffer): Socket {
  const owner = accepted as unknown as { _handle: unknown };
  const handle = owner._handle;
  owner._handle = null; // the accepted socket no longer owns (or closes) the connection
  accepted.destroy();
  const socket = new Socket({ handle, onread: reads.onread } as ConstructorParameters<typeof Socket>[0]);
  socket.setNoDelay(true);
  reads.attach(socket);
  return socket;
}

export function u64(n: number): Buffer {
  const out = Buffer.allocUnsafe(8);
  out.writeBigUInt64BE(BigInt(n), 0);
  return out;
}
