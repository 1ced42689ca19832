// The metadata channel end to end on loopback, with stand-in handlers: calls pair with their
// answers by id whatever order the node answers in, refusals keep their gRPC status, a wrong
// cluster token is refused, and the client tells a node it never reached (nothing listens, or
// another node does: the call may go over gRPC instead) from one that went away with calls in flight.
import { connect, createServer } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import t from 'tap';
import { FrameSplitter, frame, MAX_HELLO_FRAME, MAX_META_FRAME } from '../../src/common/meta-frames.js';
import type { LocalCalls } from '../../src/common/local-calls.js';
import { MetaChannel, MetaChannelUnreachable } from '../../src/replication/meta-channel.js';
import { startMetaServer } from '../../src/storage-node/meta-server.js';

const TOKEN = 'the-token';
const log = pino({ level: 'silent' });

/** Echoes the request after the milliseconds its first byte says; method "refuse" fails. */
const echo: LocalCalls = {
  unary: (path, request) => new Promise((resolve, reject) => {
    if (path === 'refuse') return reject({ code: grpc.status.INVALID_ARGUMENT, details: 'bad name' });
    setTimeout(() => resolve(Buffer.concat([Buffer.from(`${path}:`), request])), request[0] ?? 0);
  }),
};

async function startServer(t: { teardown(fn: () => unknown): void }, calls = echo) {
  const server = await startMetaServer('127.0.0.1:0', { nodeId: 'n1', tokenValid: (token) => token === TOKEN }, calls, log);
  t.teardown(() => server.close());
  return server;
}

function failureOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(() => 'answered', (err: unknown) => err);
}

t.test('frames are cut the same however the bytes arrive', async (t) => {
  const frames = [Buffer.from('a'), Buffer.alloc(0), Buffer.alloc(70_000, 7), Buffer.from('last')];
  const stream = Buffer.concat(frames.map((f) => frame([f])));
  for (const size of [1, 3, 4096, stream.length]) {
    const splitter = new FrameSplitter();
    const got: Buffer[] = [];
    for (let at = 0; at < stream.length; at += size) got.push(...splitter.push(stream.subarray(at, at + size)).map((f) => Buffer.from(f)));
    t.same(got, frames, `read ${size} bytes at a time`);
  }
  const oversized = Buffer.alloc(4);
  oversized.writeUInt32BE(MAX_META_FRAME + 1);
  t.throws(() => new FrameSplitter().push(oversized), 'a frame over the limit is refused');
});

t.test('calls in flight together each get their own answer, in whatever order they come', async (t) => {
  const server = await startServer(t);
  const channel = new MetaChannel(server.address, 'n1', () => TOKEN);
  t.teardown(() => channel.close());
  const answers = await Promise.all([30, 0, 10].map((delay, i) => channel.call(`m${i}`, Buffer.of(delay, i), 1_000)));
  t.same(answers, [Buffer.from('m0:\x1e\x00'), Buffer.from('m1:\x00\x01'), Buffer.from('m2:\x0a\x02')]);
  t.same(await failureOf(channel.call('refuse', Buffer.of(0), 1_000)), { code: grpc.status.INVALID_ARGUMENT, details: 'bad name' });
  t.same(await failureOf(channel.call('slow', Buffer.of(200), 50)), { code: grpc.status.DEADLINE_EXCEEDED, details: 'Deadline exceeded' });
  t.same(await channel.call('after', Buffer.of(0), 1_000), Buffer.from('after:\x00'), 'a late answer is dropped, the connection goes on');
});

t.test('a wrong cluster token is refused', async (t) => {
  const server = await startServer(t);
  const channel = new MetaChannel(server.address, 'n1', () => 'forged');
  t.teardown(() => channel.close());
  t.equal((await failureOf(channel.call('m', Buffer.of(0), 1_000)) as { code: number }).code, grpc.status.UNAUTHENTICATED);
});

t.test('before its token is proven, a connection cannot make the node hold a large frame', async (t) => {
  const server = await startServer(t);
  const colon = server.address.lastIndexOf(':');
  const socket = connect({ host: server.address.slice(0, colon), port: Number(server.address.slice(colon + 1)) });
  const closed = new Promise<boolean>((resolve) => socket.once('close', () => resolve(true)));
  socket.on('error', () => undefined);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(MAX_HELLO_FRAME + 1);
  socket.write(Buffer.concat([header, Buffer.alloc(1024)]));
  t.ok(await closed, 'the node hangs up at the oversized first frame');
});

t.test('a node never reached is told apart from one that went away mid-call', async (t) => {
  const unused = createServer();
  const port = await new Promise<number>((resolve) => unused.listen(0, '127.0.0.1', () => resolve((unused.address() as { port: number }).port)));
  await new Promise((resolve) => unused.close(resolve));
  const nowhere = new MetaChannel(`127.0.0.1:${port}`, 'n1', () => TOKEN);
  t.ok(await failureOf(nowhere.call('m', Buffer.of(0), 1_000)) instanceof MetaChannelUnreachable, 'nothing listens: the call never left');

  const server = await startServer(t);
  const elsewhere = new MetaChannel(server.address, 'n2', () => TOKEN);
  t.ok(await failureOf(elsewhere.call('m', Buffer.of(0), 1_000)) instanceof MetaChannelUnreachable,
    'another node listens there now (a restart moved the port): the call never ran');
  const channel = new MetaChannel(server.address, 'n1', () => TOKEN);
  t.teardown(() => channel.close());
  t.same(await channel.call('m', Buffer.of(0), 1_000), Buffer.from('m:\x00'));
  const inFlight = failureOf(channel.call('m', Buffer.of(100), 1_000));
  await new Promise((resolve) => setTimeout(resolve, 20));
  await server.close();
  t.equal((await inFlight as { code: number }).code, grpc.status.UNAVAILABLE, 'a call the node may have applied fails as unavailable');
});
