// The client end of the metadata channel (protocol in src/common/meta-frames.ts): one connection
// to a node, opened on the first call, carrying every unary call to it with many in flight.
// Failures take the shape grpc-js gives them ({ code, details }), so callers map both alike.
import { connect, type Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { FrameSplitter, helloFrame, parseAnswer, requestFrame } from '../common/meta-frames.js';

/** A failed call as grpc-js reports one. */
export interface CallFailure {
  code: grpc.status;
  details: string;
}

/** The connection could not be made: the node never saw the call, which may go another way. */
export class MetaChannelUnreachable extends Error {}

interface Pending {
  resolve(reply: Buffer): void;
  reject(err: CallFailure | MetaChannelUnreachable): void;
  timer: NodeJS.Timeout;
}

/** Call ids run 1..2^32-1 and wrap; 0 is the node's welcome. */
const MAX_CALL_ID = 0xffff_ffff;

export class MetaChannel {
  private socket: Socket | undefined;
  private readonly pending = new Map<number, Pending>();
  private lastId = 0;
  /** The node at the address is another one: nothing sent on the connection ran. */
  private wrongNode = false;

  /** `nodeId`: the node meant; another one listening at `address` refuses the connection. */
  constructor(readonly address: string, private readonly nodeId: string, private readonly token: () => string) {}

  /** One unary call: `method` is the gRPC path, `request` its encoded message; resolves to the encoded reply. */
  call(method: string, request: Buffer, deadlineMs: number): Promise<Buffer> {
    const socket = this.socket ?? this.open();
    this.lastId = this.lastId === MAX_CALL_ID ? 1 : this.lastId + 1;
    const id = this.lastId;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject({ code: grpc.status.DEADLINE_EXCEEDED, details: 'Deadline exceeded' });
      }, deadlineMs);
      this.pending.set(id, { resolve, reject, timer });
      socket.write(requestFrame(id, method, request));
    });
  }

  close(): void {
    this.socket?.destroy();
    this.failAll({ code: grpc.status.UNAVAILABLE, details: 'metadata channel closed' });
  }

  private open(): Socket {
    const colon = this.address.lastIndexOf(':');
    const socket = connect({ host: this.address.slice(0, colon), port: Number(this.address.slice(colon + 1)), noDelay: true });
    // An idle connection does not keep the process alive; a call's deadline timer does.
    socket.unref();
    this.socket = socket;
    this.wrongNode = false;
    let connected = false;
    const splitter = new FrameSplitter();
    socket.once('connect', () => { connected = true; });
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const bytes of splitter.push(chunk)) this.settle(bytes);
      } catch {
        socket.destroy();
      }
    });
    socket.on('error', () => undefined); // 'close' follows
    socket.once('close', () => {
      if (this.socket === socket) this.socket = undefined;
      this.failAll(connected && !this.wrongNode ? { code: grpc.status.UNAVAILABLE, details: `metadata channel to ${this.address} closed` }
        : new MetaChannelUnreachable(`node ${this.nodeId}: no metadata channel at ${this.address}`));
    });
    socket.write(helloFrame(this.nodeId, this.token()));
    return socket;
  }

  private settle(bytes: Buffer): void {
    const { id, code, body } = parseAnswer(bytes);
    if (id === 0) {
      // A refused connection ran none of its calls: another node's may take them.
      this.wrongNode = code === grpc.status.NOT_FOUND;
      if (this.wrongNode) this.failAll(new MetaChannelUnreachable(`node ${this.nodeId} no longer listens at ${this.address}`));
      else if (code !== grpc.status.OK) this.failAll({ code, details: 'cluster token refused' });
      return;
    }
    const call = this.pending.get(id);
    if (!call) return; // its deadline passed
    this.pending.delete(id);
    clearTimeout(call.timer);
    if (code === grpc.status.OK) call.resolve(body);
    else call.reject({ code, details: body.toString() });
  }

  private failAll(err: CallFailure | MetaChannelUnreachable): void {
    for (const call of this.pending.values()) {
      clearTimeout(call.timer);
      call.reject(err);
    }
    this.pending.clear();
  }
}
