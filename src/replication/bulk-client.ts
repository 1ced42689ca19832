// The client end of the bulk shard channel (protocol in src/common/bulk-protocol.ts): raw frames
// written straight from the stripe buffers and read into one reused buffer per connection
// (ReusedReadBuffer). Connections are kept between shard streams: a connect, an accept and an
// authentication per shard cost a 1 MiB PUT more CPU than moving its bytes (CPU profile of the
// gateway: 11 % in connect alone). To a node on this host that takes them, a connection also
// offers a shared-memory ring (src/common/shm-ring.ts): a put then copies its blocks into the ring
// and sends only their positions, and goes on over the socket while the ring is full.
import { connect, type Socket } from 'node:net';
import {
  ByteReader, encodeRef, errorFromStatus, frameHeader, hello, OP_GET, OP_PUT, ReusedReadBuffer, ringFrame, ringOffer, u64,
  writeFrame,
} from '../common/bulk-protocol.js';
import { StoreError } from '../common/errors.js';
import { RingWriter } from '../common/shm-ring.js';
import type { pb } from '../common/node-service.js';
import type { ShardReader, ShardSink } from './node-client.js';

/**
 * Bytes a shard stream may queue before the writer waits for the socket to drain: a few blocks,
 * so encoding the next stripe overlaps sending this one instead of waiting for every node.
 */
const MAX_QUEUED_BYTES = 1024 * 1024;
/** Idle connections kept per node, and how long one stays unused before it is closed. */
const MAX_IDLE_PER_NODE = 64;
const IDLE_CLOSE_MS = 30_000;
/**
 * Block bytes whose ring frames a shard stream holds back to send together (the last ones go with
 * the end frame): each send costs a syscall here and a wakeup, a socket read, a disk write and its
 * completion on the node, more than the frames' bytes cost to move through the ring. The node
 * writes what one send brings in one go (block-writer.ts, WRITE_BATCH_BYTES). Counted in bytes,
 * not frames, so a layout with larger blocks does not hold back more of the ring. (Frames of
 * 256 KiB blocks 4 at a time rather than 2: the nodes' MB per CPU-second in 64 MiB PUTs +25 %;
 * 8 rather than 4: the nodes' CPU per object MB 0.92-1.07 -> 0.71-0.74 ms in 3 alternating pairs.)
 */
const RING_BYTES_PER_SEND = 2 * 1024 * 1024;
/** Connections per node that hold a ring (each maps RING_BLOCK_BYTES): about the puts one node takes at once. */
const MAX_RINGS_PER_NODE = 4;

/** One TCP connection to a node's bulk channel; it carries one shard stream at a time. */
class BulkConnection {
  readonly socket: Socket;
  readonly reader: ByteReader;
  private readonly reads = new ReusedReadBuffer();
  private authenticated = false;
  private idleTimer: NodeJS.Timeout | undefined;
  /** The shard stream using the connection, told when the socket fails. */
  onFailure: ((err: Error) => void) | undefined;
  /** The shared-memory ring, once the node has mapped the one offered. */
  ring: RingWriter | undefined;

  /** `offeredRing`: offered right after the token; `onRingAnswer` learns whether the node took it. */
  constructor(address: string, token: string, private offeredRing?: RingWriter,
    private readonly onRingAnswer: (taken: boolean) => void = () => undefined) {
    const colon = address.lastIndexOf(':');
    this.socket = connect({ host: address.slice(0, colon), port: Number(address.slice(colon + 1)), noDelay: true, onread: this.reads.onread });
    this.reads.attach(this.socket);
    this.socket.on('error', (err) => this.onFailure?.(err));
    this.socket.on('close', () => this.onFailure?.(new Error('connection closed')));
    this.socket.write(Buffer.concat([hello(token), ...(offeredRing ? [ringOffer(offeredRing)] : [])]));
    this.reader = new ByteReader(this.reads);
  }

  /** Sends a request; its answer follows the node's answer to the authentication on a new connection. */
  send(request: Buffer[]): void {
    this.socket.write(request.length === 1 ? request[0]! : Buffer.concat(request));
  }

  /**
   * On a new connection, reads the node's answers to the authentication (a refusal throws) and to
   * the ring offer, which precede any other.
   */
  async authenticate(nodeId: string): Promise<void> {
    if (this.authenticated) return;
    await expectOk(this.reader, nodeId);
    this.authenticated = true;
    const offered = this.offeredRing;
    if (!offered) return;
    const { status } = await this.reader.status();
    this.offeredRing = undefined;
    offered.unlink();
    if (status === 0) this.ring = offered;
    this.onRingAnswer(status === 0);
  }

  /** Parks the connection between streams: it reads on, so a node that hangs up is noticed. */
  park(onIdleTimeout: () => void): void {
    this.onFailure = undefined;
    this.reads.doneWithChunk();
    this.socket.unref();
    this.idleTimer = setTimeout(onIdleTimeout, IDLE_CLOSE_MS).unref();
  }

  /** Takes the connection out of the pool; false if it broke while parked. */
  unpark(): boolean {
    clearTimeout(this.idleTimer);
    this.socket.ref();
    return this.reusable;
  }

  get reusable(): boolean {
    return !this.socket.destroyed && this.reads.quiet;
  }

  destroy(): void {
    clearTimeout(this.idleTimer);
    this.socket.destroy();
    this.offeredRing?.unlink();
  }
}

async function expectOk(reader: ByteReader, nodeId: string): Promise<void> {
  const { status, message } = await reader.status();
  if (status) throw errorFromStatus(status, message, nodeId);
}

function asStoreError(err: unknown, nodeId: string): StoreError {
  return err instanceof StoreError ? err
    : new StoreError('Unavailable', `node ${nodeId}: bulk channel: ${(err as Error).message}`, { nodeId });
}

/** The node's confirmation of a finished shard; undefined if it failed or stayed silent `ms` (then `onSilence` runs). */
export async function awaitConfirmation(result: Promise<pb.IShardWriteResult>, ms: number,
  onSilence: () => void): Promise<pb.IShardWriteResult | undefined> {
  const timer = setTimeout(onSilence, ms);
  try {
    return await result;
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

export function silentNode(nodeId: string): StoreError {
  return new StoreError('Unavailable', `node ${nodeId}: no shard confirmation`, { nodeId });
}

/** Shard streams to the bulk channels of one node, over connections kept open between streams. */
export class BulkChannel {
  /** Parked connections per bulk address, most recently used last. */
  private readonly idle = new Map<string, BulkConnection[]>();
  /** Set from the node's Health: its bulk channel takes shared-memory rings (if it is on this host). */
  sharedMemory = false;
  /** A node that refused a ring (it runs on another host) is not offered another. */
  private ringRefused = false;
  /** Open connections that were offered a ring. */
  private ringsOffered = 0;

  constructor(private readonly nodeId: string, private readonly token: () => string) {}

  openWriter(address: string, header: pb.IShardHeader, idleMs: number): ShardSink {
    return new BulkShardWriter(this.nodeId, this.take(address), header, idleMs, (connection) => this.park(address, connection));
  }

  openReader(address: string, read: pb.IShardRead): ShardReader {
    return openBulkReader(this.nodeId, this.take(address), read, (connection) => this.park(address, connection));
  }

  close(): void {
    for (const connections of this.idle.values()) for (const connection of connections) connection.destroy();
    this.idle.clear();
  }

  private take(address: string): BulkConnection {
    const parked = this.idle.get(address) ?? [];
    for (let connection = parked.pop(); connection; connection = parked.pop()) {
      if (connection.unpark()) return connection;
      connection.destroy();
    }
    const ring = this.newRing();
    const connection = new BulkConnection(address, this.token(), ring, (taken) => { this.ringRefused ||= !taken; });
    if (ring) connection.socket.once('close', () => this.ringsOffered--);
    return connection;
  }

  private newRing(): RingWriter | undefined {
    if (!this.sharedMemory || this.ringRefused || this.ringsOffered >= MAX_RINGS_PER_NODE) return undefined;
    const ring = RingWriter.create();
    if (ring) this.ringsOffered++;
    return ring;
  }

  /** A connection whose stream ended cleanly waits for the next one (or is closed when enough wait). */
  private park(address: string, connection: BulkConnection): void {
    const parked = this.idle.get(address) ?? [];
    if (!connection.reusable || parked.length >= MAX_IDLE_PER_NODE) {
      connection.destroy();
      return;
    }
    this.idle.set(address, parked);
    parked.push(connection);
    connection.park(() => {
      parked.splice(parked.indexOf(connection), 1);
      connection.destroy();
    });
  }
}

class BulkShardWriter implements ShardSink {
  private readonly socket: Socket;
  private readonly result: Promise<pb.IShardWriteResult>;
  failed: StoreError | undefined;
  /** Handed back after a confirmed shard: another stream may be using the connection now. */
  private released = false;
  /** Ring frames not sent yet, and the bytes of their blocks (RING_BYTES_PER_SEND). */
  private heldFrames: Buffer[] = [];
  private heldBytes = 0;

  constructor(readonly nodeId: string, private readonly connection: BulkConnection, header: pb.IShardHeader,
    private readonly idleMs: number, private readonly release: (connection: BulkConnection) => void) {
    this.socket = connection.socket;
    connection.onFailure = (err) => this.fail(asStoreError(err, nodeId));
    connection.send([encodeRef(OP_PUT, header.dataId ?? '', header.shardIndex ?? 0), frameHeader(header.blockSize ?? 0)]);
    const reader = connection.reader;
    this.result = (async () => {
      await connection.authenticate(nodeId);
      const { status, message } = await reader.status();
      const bytes = await reader.u64();
      const blocks = await reader.u32();
      if (status) throw errorFromStatus(status, message, nodeId);
      return { bytes, blocks };
    })();
    this.result.catch((err: unknown) => this.fail(asStoreError(err, nodeId)));
  }

  private fail(err: StoreError): void {
    this.failed ??= err;
    if (!this.released) this.connection.destroy();
  }

  async write(data: Uint8Array, release?: () => void): Promise<void> {
    if (this.failed) { release?.(); return; }
    const position = this.connection.ring?.put(data);
    if (position !== undefined) {
      release?.();
      this.heldFrames.push(ringFrame(position, data.length));
      this.heldBytes += data.length;
      if (this.heldBytes >= RING_BYTES_PER_SEND) this.sendHeldFrames();
      return;
    }
    this.sendHeldFrames();
    writeFrame(this.socket, data, release);
    if (this.socket.writableLength <= MAX_QUEUED_BYTES) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      const timer = setTimeout(() => {
        this.fail(new StoreError('Unavailable', `node ${this.nodeId}: shard stream stalled`, { nodeId: this.nodeId }));
        done();
      }, this.idleMs);
      this.socket.once('drain', done);
      this.socket.once('close', done);
    });
  }

  /** End the stream; a node that does not confirm within the idle limit (paused, cut off) failed. */
  async finish(): Promise<pb.IShardWriteResult | undefined> {
    if (!this.failed) {
      this.heldFrames.push(frameHeader(0));
      this.sendHeldFrames();
    }
    const result = await awaitConfirmation(this.result, this.idleMs, () => this.fail(silentNode(this.nodeId)));
    if (result && !this.failed) {
      this.released = true;
      this.release(this.connection);
    }
    return result;
  }

  abort(): void {
    this.fail(new StoreError('Unavailable', 'aborted'));
  }

  private sendHeldFrames(): void {
    if (this.heldFrames.length === 0) return;
    this.connection.send(this.heldFrames);
    this.heldFrames = [];
    this.heldBytes = 0;
  }
}

function openBulkReader(nodeId: string, connection: BulkConnection, read: pb.IShardRead,
  release: (connection: BulkConnection) => void): ShardReader {
  connection.onFailure = () => undefined; // surfaces through the reader's iterator
  connection.send([encodeRef(OP_GET, read.dataId ?? '', read.shardIndex ?? 0), u64(read.offset ?? 0), u64(read.length ?? 0)]);
  let frames: AsyncGenerator<Buffer> | undefined;
  let reading = false;
  let ended = false;
  const next = async (): Promise<Buffer | undefined> => {
    reading = true;
    try {
      if (!frames) {
        await connection.authenticate(nodeId);
        await expectOk(connection.reader, nodeId);
        frames = connection.reader.frames(nodeId);
      }
      const item = await frames.next();
      if (!item.done) return item.value;
      ended = true;
      release(connection);
      return undefined;
    } catch (err) {
      connection.destroy();
      throw asStoreError(err, nodeId);
    } finally {
      reading = false;
    }
  };
  return {
    next,
    /**
     * Stops reading. A caller that took exactly the bytes the shard had left (the usual end of a
     * read) leaves only the end frame unread: that is read in the background and the connection
     * kept; anything else closes it.
     */
    cancel: () => {
      if (ended) return;
      if (reading || !frames) { connection.destroy(); return; }
      void next().then((more) => { if (more) connection.destroy(); }, () => undefined);
    },
  };
}
