// A storage node taking puts through a bulk connection's shared-memory ring (src/common/shm-ring.ts),
// spoken to as a gateway would over a real socket: ring blocks (written to disk straight from the
// ring) and socket frames mixed in any order and split across reads anywhere make the shard the
// bytes say, the ring's space is reused only once written; a bad ring frame fails the put and a
// client gone mid-put leaves nothing behind.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import {
  ByteReader, encodeRef, frameHeader, hello, MAX_FRAME, OP_PUT, ReusedReadBuffer, ringFrame, ringOffer,
} from '../../src/common/bulk-protocol.js';
import { makeClusterToken } from '../../src/common/cluster-auth.js';
import { isStoreError } from '../../src/common/errors.js';
import { RING_BLOCK_BYTES, RingWriter } from '../../src/common/shm-ring.js';
import { NodeClient } from '../../src/replication/node-client.js';
import { startStorageNode } from '../../src/storage-node/server.js';
import { patternBytes, walk } from '../lib/nodes.js';

const BLOCK = 64 * 1024;
const secret = 'ring-put-secret';
const shmHost = process.platform === 'linux' && existsSync('/dev/shm');

/** One node, a cluster member's client of it, and a raw bulk connection that holds a ring. */
async function setUp(t: Test) {
  const dataDir = mkdtempSync(join(tmpdir(), 'tessera-ring-put-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const node = await startStorageNode({ id: 'r1', dataDir, listen: '127.0.0.1:0', secret, scrubIntervalMs: 0, bulkSharedMemory: true });
  t.teardown(() => node.close());
  const member = new NodeClient('r1', node.address, secret);
  t.teardown(() => member.close());
  const { bulkAddress } = await member.health();
  const ring = RingWriter.create()!;
  t.teardown(() => ring.unlink());
  const reads = new ReusedReadBuffer();
  const colon = bulkAddress.lastIndexOf(':');
  const socket = connect({ host: bulkAddress.slice(0, colon), port: Number(bulkAddress.slice(colon + 1)), onread: reads.onread, noDelay: true });
  reads.attach(socket);
  t.teardown(() => socket.destroy());
  const reader = new ByteReader(reads);
  socket.write(Buffer.concat([hello(makeClusterToken(secret)), ringOffer(ring)]));
  t.equal((await reader.status()).status, 0, 'the cluster member is let in');
  t.equal((await reader.status()).status, 0, 'and its ring taken');
  return { dataDir, member, ring, socket, reader };
}

async function readShard(member: NodeClient, dataId: string): Promise<Buffer> {
  const shard = member.openShardReader({ dataId, shardIndex: 0, offset: 0, length: 0 });
  const chunks: Buffer[] = [];
  for (let chunk = await shard.next(); chunk; chunk = await shard.next()) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** Writes `bytes` in pieces of `cut` bytes, each its own socket write a moment after the last. */
async function sendSplit(socket: Socket, bytes: Buffer, cut: number): Promise<void> {
  for (let at = 0; at < bytes.length; at += cut) {
    socket.write(bytes.subarray(at, at + cut));
    await sleep(1);
  }
}

/** The put's frames for `pieces`: each through the ring when `viaRing` says so and it has room, else over the socket. */
async function frames(ring: RingWriter, pieces: Buffer[], viaRing: (i: number) => boolean, send: (frames: Buffer) => Promise<void>): Promise<void> {
  let held: Buffer[] = [];
  for (const [i, piece] of pieces.entries()) {
    let position = viaRing(i) ? ring.put(piece) : undefined;
    while (viaRing(i) && position === undefined) { // full: the node frees space as it writes
      if (held.length) await send(Buffer.concat(held));
      held = [];
      await sleep(2);
      position = ring.put(piece);
    }
    held.push(...(position === undefined ? [frameHeader(piece.length), piece] : [ringFrame(position, piece.length)]));
    if (held.length >= 6) {
      await send(Buffer.concat(held));
      held = [];
    }
  }
  await send(Buffer.concat([...held, frameHeader(0)]));
}

async function answer(reader: ByteReader): Promise<{ status: number; message: string; bytes: number; blocks: number }> {
  const { status, message } = await reader.status();
  return { status, message, bytes: await reader.u64(), blocks: await reader.u32() };
}

t.test('ring blocks and socket frames in any mix and split anywhere make the shard their bytes say', { skip: !shmHost && 'no /dev/shm' }, async (t) => {
  const { member, ring, socket, reader } = await setUp(t);
  // More than the ring holds, so its space must be handed back (only once written) and reused.
  const size = 3 * RING_BLOCK_BYTES + 5 * BLOCK + 777;
  const data = patternBytes(0, size, 11);
  const cases: Array<{ name: string; pieces: number[]; viaRing: (i: number) => boolean; cut: number }> = [
    { name: 'whole blocks, all through the ring', pieces: [BLOCK], viaRing: () => true, cut: 1 << 20 },
    { name: 'whole blocks, every third over the socket', pieces: [BLOCK], viaRing: (i) => i % 3 !== 2, cut: 1 << 20 },
    { name: 'pieces off the block boundaries', pieces: [BLOCK, 1000, BLOCK - 1000, 3 * BLOCK, 4096], viaRing: (i) => i % 4 !== 1, cut: 1 << 20 },
    { name: 'frames split across socket reads', pieces: [BLOCK, 2 * BLOCK], viaRing: (i) => i % 5 !== 4, cut: 1021 },
  ];
  for (const [n, { name, pieces, viaRing, cut }] of cases.entries()) {
    const cuts: Buffer[] = [];
    for (let at = 0, i = 0; at < size; i++) {
      const length = Math.min(pieces[i % pieces.length]!, size - at);
      cuts.push(data.subarray(at, at + length));
      at += length;
    }
    const dataId = `mixed-${n}`;
    socket.write(Buffer.concat([encodeRef(OP_PUT, dataId, 0), frameHeader(BLOCK)]));
    await frames(ring, cuts, viaRing, (bytes) => sendSplit(socket, bytes, cut));
    t.same(await answer(reader), { status: 0, message: '', bytes: size, blocks: Math.ceil(size / BLOCK) }, `${name}: confirmed`);
    t.ok((await readShard(member, dataId)).equals(data), `${name}: reads back byte for byte`);
  }
});

t.test('a put with a ring frame outside the ring fails and leaves no shard', { skip: !shmHost && 'no /dev/shm' }, async (t) => {
  const { member, ring, socket, reader } = await setUp(t);
  const position = ring.put(Buffer.alloc(BLOCK, 1))!;
  socket.write(Buffer.concat([encodeRef(OP_PUT, 'bad-frame', 0), frameHeader(BLOCK), ringFrame(position, BLOCK),
    ringFrame(RING_BLOCK_BYTES - 4096, BLOCK), frameHeader(0)]));
  const { status, message } = await answer(reader);
  t.not(status, 0, 'the put fails');
  t.match(message, /out of bounds/);
  const read = await readShard(member, 'bad-frame').then(() => undefined, (err: unknown) => err);
  t.ok(isStoreError(read, 'NotFound'), 'and there is no such shard');
});

t.test('a frame longer than the protocol allows fails the put', { skip: !shmHost && 'no /dev/shm' }, async (t) => {
  const { socket, reader } = await setUp(t);
  socket.write(Buffer.concat([encodeRef(OP_PUT, 'huge-frame', 0), frameHeader(BLOCK), frameHeader(MAX_FRAME + 1)]));
  const { status, message } = await answer(reader);
  t.not(status, 0, 'the put fails');
  t.match(message, /too large/);
});

t.test('a client gone mid-put leaves neither a shard nor a temp file', { skip: !shmHost && 'no /dev/shm' }, async (t) => {
  const { dataDir, member, ring, socket } = await setUp(t);
  const block = Buffer.alloc(BLOCK, 2);
  const held = [encodeRef(OP_PUT, 'cut-off', 0), frameHeader(BLOCK)];
  for (let i = 0; i < 8; i++) held.push(ringFrame(ring.put(block)!, BLOCK));
  socket.write(Buffer.concat(held));
  await sleep(50);
  socket.destroy();
  const files = () => walk(join(dataDir, 'shards')).filter((path) => path.includes('cut-off'));
  for (let tries = 0; files().length > 0 && tries < 200; tries++) await sleep(10);
  t.same(files(), [], 'no file of the shard is left');
  const read = await readShard(member, 'cut-off').then(() => undefined, (err: unknown) => err);
  t.ok(isStoreError(read, 'NotFound'), 'and there is no such shard');
});
