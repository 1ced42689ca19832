// The node end of the bulk shard channel (protocol in src/common/bulk-protocol.ts): the same
// shard writes and verified range reads as gRPC PutShard/GetShard, without gRPC's copies. A client
// on this host may hand the connection a shared-memory ring (src/common/shm-ring.ts) and then put
// blocks through it.
import { createServer, type Socket } from 'node:net';
import type pino from 'pino';
import {
  BULK_MAGIC, ByteReader, ERROR_FRAME, frameHeader, OP_GET, OP_PUT, OP_RING, readingIntoReusedBuffer, ReusedReadBuffer,
  statusMessage, statusOf, u64, writeFrame,
} from '../common/bulk-protocol.js';
import { verifyClusterToken } from '../common/cluster-auth.js';
import { StoreError } from '../common/errors.js';
import { localShards } from '../common/local-shards.js';
import { RING_NONCE_BYTES, RingReader } from '../common/shm-ring.js';
import type { ShardSource } from './block-writer.js';
import { listenAt } from './listen.js';
import { streamShardRange } from './shard-range.js';
import { type ShardStore, validateShardRef } from './shard-store.js';

export interface BulkServer {
  address: string;
  /** Whether it takes shared-memory rings (advertised in Health). */
  sharedMemory: boolean;
  close(): Promise<void>;
}

export async function startBulkServer(listen: string, secret: string, shards: ShardStore, log: pino.Logger,
  sharedMemory: boolean): Promise<BulkServer> {
  const sockets = new Set<Socket>();
  const server = createServer({ pauseOnConnect: true }, (accepted) => {
    const reads = new ReusedReadBuffer();
    const socket = readingIntoReusedBuffer(accepted, reads);
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    serveConnection(socket, new ByteReader(reads), secret, shards, sharedMemory).catch((err: unknown) => {
      if (!(err instanceof StoreError && err.kind === 'Unavailable')) log.warn({ err }, 'bulk connection failed');
      socket.destroy();
    });
  });
  const address = await listenAt(server, listen);
  const unregister = localShards.register(address, {
    write: (ref, blockSize, chunks) => shards.write(ref, blockSize, chunks),
    read: (ref, offset, length, send, cancelled) => streamShardRange(shards, ref, offset, length, send, cancelled),
  });
  return {
    address,
    sharedMemory,
    close: () => new Promise((resolve) => {
      unregister();
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}

async function serveConnection(socket: Socket, reader: ByteReader, secret: string, shards: ShardStore, sharedMemory: boolean): Promise<void> {
  const magic = await reader.exact(4);
  const token = (await reader.exact(await reader.u16())).toString();
  if (!magic.equals(BULK_MAGIC) || !verifyClusterToken(secret, token)) {
    socket.end(statusMessage(statusOf(new StoreError('Unauthenticated', '')), 'cluster token refused'));
    return;
  }
  socket.write(statusMessage(0, ''));
  let ring: RingReader | undefined;
  for (;;) {
    const op = await reader.exact(1).catch(() => undefined);
    if (!op) return;
    if (op[0] === OP_RING) {
      ring = await attachRing(socket, reader, sharedMemory);
      continue;
    }
    const ref = { dataId: await reader.text(), shardIndex: await reader.u16() };
    validateShardRef(ref);
    if (op[0] === OP_PUT) {
      if (!(await servePut(socket, reader, shards, ref, ring))) return;
    } else if (op[0] === OP_GET) await serveGet(socket, reader, shards, ref);
    else throw new StoreError('InvalidArgument', `unknown bulk op ${op[0]}`);
  }
}

/** Maps the ring a client offers and answers whether it did; a refusal leaves the connection as it was. */
async function attachRing(socket: Socket, reader: ByteReader, sharedMemory: boolean): Promise<RingReader | undefined> {
  const path = await reader.text();
  const nonce = Buffer.from(await reader.exact(RING_NONCE_BYTES));
  const size = await reader.u32();
  try {
    if (!sharedMemory) throw new StoreError('Unavailable', 'shared memory is off on this node');
    const ring = RingReader.attach(path, nonce, size);
    socket.write(statusMessage(0, ''));
    return ring;
  } catch (err) {
    socket.write(statusMessage(statusOf(err), (err as Error).message));
    return undefined;
  }
}

/** Returns false when the connection must close (a failed put leaves unread frames behind). */
async function servePut(socket: Socket, reader: ByteReader, shards: ShardStore, ref: { dataId: string; shardIndex: number },
  ring: RingReader | undefined): Promise<boolean> {
  const blockSize = await reader.u32();
  try {
    const result = await shards.write(ref, blockSize, putSource(reader, ring));
    socket.write(Buffer.concat([statusMessage(0, ''), u64(result.bytes), frameHeader(result.blocks)]));
    return true;
  } catch (err) {
    socket.end(Buffer.concat([statusMessage(statusOf(err), (err as Error).message), u64(0), frameHeader(0)]));
    return false;
  }
}

/** A put's payload as the shard store takes it: whatever has arrived per call, ring blocks lent in place. */
function putSource(reader: ByteReader, ring: RingReader | undefined): ShardSource {
  let ended = false;
  return {
    next: async () => {
      if (ended) return undefined;
      const batch = await reader.putPieces(ring);
      ended = batch.ended;
      return batch.pieces.length > 0 ? batch.pieces : undefined;
    },
    release: (lentEnd) => ring?.release(lentEnd),
  };
}

async function serveGet(socket: Socket, reader: ByteReader, shards: ShardStore, ref: { dataId: string; shardIndex: number }): Promise<void> {
  const offset = await reader.u64();
  const length = await reader.u64();
  let started = false;
  try {
    await streamShardRange(shards, ref, offset, length, async (bytes, release) => {
      if (!started) { socket.write(statusMessage(0, '')); started = true; }
      if (!writeFrame(socket, bytes, release)) await drained(socket);
    }, () => socket.destroyed);
    if (!started) socket.write(statusMessage(0, ''));
    socket.write(frameHeader(0));
  } catch (err) {
    const status = statusMessage(statusOf(err), (err as Error).message);
    socket.write(started ? Buffer.concat([frameHeader(ERROR_FRAME), status]) : status);
  }
}

function drained(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => { socket.off('drain', done); socket.off('close', done); resolve(); };
    socket.once('drain', done);
    socket.once('close', done);
  });
}
