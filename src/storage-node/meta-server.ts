// The node end of the metadata channel (protocol in src/common/meta-frames.ts): the unary calls
// of the gRPC service, handled by the same handlers (see localCallsOf in server.ts), on
// connections that proved the cluster token once.
import { createServer, type Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import type pino from 'pino';
import type { LocalCalls } from '../common/local-calls.js';
import { answerFrame, FrameSplitter, MAX_HELLO_FRAME, MAX_META_FRAME, parseHello, parseRequest } from '../common/meta-frames.js';
import { listenAt } from './listen.js';

export interface MetaServer {
  address: string;
  close(): Promise<void>;
}

/** What a refused or failed call carries (as grpc-js hands handler errors over). */
interface CallError {
  code?: number;
  details?: string;
  message?: string;
}

/** Whom a connection's hello must name, and how its token is checked. */
export interface MetaGate {
  nodeId: string;
  tokenValid(token: string): boolean;
}

export async function startMetaServer(listen: string, gate: MetaGate, calls: LocalCalls, log: pino.Logger): Promise<MetaServer> {
  const sockets = new Set<Socket>();
  const server = createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    serveConnection(socket, gate, calls, log);
  });
  const address = await listenAt(server, listen);
  return {
    address,
    close: () => new Promise((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}

function serveConnection(socket: Socket, gate: MetaGate, calls: LocalCalls, log: pino.Logger): void {
  // Until the token is proven, a frame is a hello: nobody unauthenticated gets a big buffer held.
  const splitter = new FrameSplitter(MAX_HELLO_FRAME);
  let welcomed = false;
  const onData = (chunk: Buffer) => {
    let frames: Buffer[];
    try {
      frames = splitter.push(chunk);
    } catch (err) {
      log.warn({ err }, 'metadata connection sent a bad frame');
      socket.destroy();
      return;
    }
    for (const bytes of frames) {
      if (welcomed) {
        answer(socket, bytes, calls);
        continue;
      }
      const status = welcome(parseHello(bytes), gate);
      socket.write(answerFrame(0, status, Buffer.alloc(0)));
      welcomed = status === grpc.status.OK;
      splitter.maxFrame = MAX_META_FRAME;
      if (!welcomed) {
        socket.off('data', onData);
        socket.end();
        return;
      }
    }
  };
  socket.on('data', onData);
}

function welcome(hello: { nodeId: string; token: string } | undefined, gate: MetaGate): grpc.status {
  if (!hello || !gate.tokenValid(hello.token)) return grpc.status.UNAUTHENTICATED;
  return hello.nodeId === gate.nodeId ? grpc.status.OK : grpc.status.NOT_FOUND;
}

function answer(socket: Socket, bytes: Buffer, calls: LocalCalls): void {
  const { id, method, request } = parseRequest(bytes);
  calls.unary(method, request).then(
    (reply) => send(socket, answerFrame(id, grpc.status.OK, reply)),
    (err: CallError) => send(socket, answerFrame(id, err.code ?? grpc.status.INTERNAL, Buffer.from(err.details ?? err.message ?? String(err)))),
  );
}

/** Answers finished in the same turn (a group commit's) leave in one write. */
function send(socket: Socket, bytes: Buffer): void {
  if (socket.destroyed) return;
  if (!socket.writableCorked) {
    socket.cork();
    process.nextTick(() => socket.uncork());
  }
  socket.write(bytes);
}
