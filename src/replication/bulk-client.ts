// The client end of the bulk shard channel (protocol in src/common/bulk-protocol.ts): one TCP
// connection per shard stream, raw frames written straight from the stripe buffers and read
// into one reused buffer (ReusedReadBuffer).
import { connect, type Socket } from 'node:net';
import {
  BULK_MAGIC, ByteReader, encodeRef, errorFromStatus, frameHeader, OP_GET, OP_PUT, ReusedReadBuffer, u64, writeFrame,
} from '../common/bulk-protocol.js';
import { StoreError } from '../common/errors.js';
import type { pb } from '../common/node-service.js';
import type { ShardReader, ShardSink } from './node-client.js';

/**
 * Bytes a shard stream may queue before the writer waits for the socket to drain: a few blocks,
 * so encoding the next stripe overlaps sending this one instead of waiting for every node.
 */
const MAX_QUEUED_BYTES = 1024 * 1024;

function open(address: string, token: string, request: Buffer[]): { socket: Socket; reader: ByteReader } {
  const colon = address.lastIndexOf(':');
  const reads = new ReusedReadBuffer();
  const socket = connect({ host: address.slice(0, colon), port: Number(address.slice(colon + 1)), noDelay: true, onread: reads.onread });
  reads.attach(socket);
  const tokenBytes = Buffer.from(token);
  const length = Buffer.allocUnsafe(2);
  length.writeUInt16BE(tokenBytes.length, 0);
  socket.write(Buffer.concat([BULK_MAGIC, length, tokenBytes, ...request]));
  return { socket, reader: new ByteReader(reads) };
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

export class BulkShardWriter implements ShardSink {
  private readonly socket: Socket;
  readonly result: Promise<pb.IShardWriteResult>;
  failed: StoreError | undefined;

  constructor(readonly nodeId: string, address: string, token: string, header: pb.IShardHeader, private readonly idleMs: number) {
    const blockSize = frameHeader(header.blockSize ?? 0);
    const { socket, reader } = open(address, token, [encodeRef(OP_PUT, header.dataId ?? '', header.shardIndex ?? 0), blockSize]);
    this.socket = socket;
    this.result = (async () => {
      await expectOk(reader, nodeId);
      const { status, message } = await reader.status();
      const bytes = await reader.u64();
      const blocks = await reader.u32();
      if (status) throw errorFromStatus(status, message, nodeId);
      return { bytes, blocks };
    })();
    this.result.catch((err: unknown) => this.fail(asStoreError(err, nodeId)));
    socket.on('error', (err) => this.fail(asStoreError(err, nodeId)));
  }

  private fail(err: StoreError): void {
    this.failed ??= err;
    this.socket.destroy();
  }

  async write(data: Uint8Array, release?: () => void): Promise<void> {
    if (this.failed) { release?.(); return; }
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
    if (!this.failed) this.socket.write(frameHeader(0));
    const result = await awaitConfirmation(this.result, this.idleMs, () => this.fail(silentNode(this.nodeId)));
    this.socket.end();
    return result;
  }

  abort(): void {
    this.fail(new StoreError('Unavailable', 'aborted'));
  }
}

export function openBulkReader(nodeId: string, address: string, token: string, read: pb.IShardRead): ShardReader {
  const request = [encodeRef(OP_GET, read.dataId ?? '', read.shardIndex ?? 0), u64(read.offset ?? 0), u64(read.length ?? 0)];
  const { socket, reader } = open(address, token, request);
  socket.on('error', () => undefined); // surfaces through the reader's iterator
  let frames: AsyncGenerator<Buffer> | undefined;
  return {
    next: async () => {
      try {
        if (!frames) {
          await expectOk(reader, nodeId);
          await expectOk(reader, nodeId);
          frames = reader.frames(nodeId);
        }
        const next = await frames.next();
        if (next.done) {
          socket.end();
          return undefined;
        }
        return next.value;
      } catch (err) {
        socket.destroy();
        throw asStoreError(err, nodeId);
      }
    },
    cancel: () => socket.destroy(),
  };
}
