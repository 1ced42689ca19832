// NBD client: fixed newstyle handshake, NBD_OPT_GO, structured replies, meta contexts
// (base:allocation, qemu:dirty-bitmap:NAME) and any number of requests in flight, matched to
// their replies by cookie. The backup reads through it; qcow2 restores write through it.
import { connect as netConnect, type Socket } from 'node:net';
import {
  ClientFlag, Cmd, Errno, type Extent, HandshakeFlag, IHAVEOPT, Info, NBDMAGIC, Opt,
  OPTION_REPLY_MAGIC, Rep, ReplyFlag, ReplyType, REQUEST_MAGIC, SIMPLE_REPLY_MAGIC, STRUCTURED_REPLY_MAGIC,
  TransmissionFlag,
} from './protocol.js';
import { DirectReader } from './direct-reader.js';

export class NbdError extends Error {
  constructor(message: string, readonly errno: number = Errno.EIO) {
    super(message);
    this.name = 'NbdError';
  }
}

/** Where an export lives: TCP or a unix socket, and the export's name. */
export interface NbdAddress {
  host?: string;
  port?: number;
  socketPath?: string;
  exportName: string;
}

/** Parses `nbd://host[:port]/export` and `nbd+unix:///export?socket=PATH`. */
export function parseNbdUrl(url: string): NbdAddress {
  const parsed = new URL(url);
  const exportName = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
  if (parsed.protocol === 'nbd+unix:') {
    const socketPath = parsed.searchParams.get('socket');
    if (!socketPath) throw new NbdError(`${url}: nbd+unix needs ?socket=PATH`, Errno.EINVAL);
    return { socketPath, exportName };
  }
  if (parsed.protocol === 'nbd:') {
    return { host: parsed.hostname.replace(/^\[|\]$/g, ''), port: Number(parsed.port || 10809), exportName };
  }
  throw new NbdError(`${url}: not an nbd:// or nbd+unix:// URL`, Errno.EINVAL);
}

export interface ConnectOptions {
  /** Meta contexts to negotiate, e.g. base:allocation; the server may grant fewer. */
  metaContexts?: string[];
}

interface ContextExtent extends Extent {
  context: number;
}

interface Pending {
  command: number;
  offset: number;
  length: number;
  data?: Buffer;
  /** Bytes of a read that data and hole chunks have filled. */
  covered: number;
  extents: ContextExtent[];
  error?: NbdError;
  resolve: (value: Pending) => void;
  reject: (err: Error) => void;
}

export class NbdClient {
  private nextCookie = 1;
  private readonly pending = new Map<number, Pending>();
  private closed = false;

  private constructor(
    private readonly socket: Socket,
    private readonly reader: DirectReader,
    readonly size: number,
    readonly transmissionFlags: number,
    readonly structured: boolean,
    /** Granted meta contexts by name → id. */
    readonly contexts: ReadonlyMap<string, number>,
  ) {
    this.receiveReply();
  }

  static async connect(address: NbdAddress, options: ConnectOptions = {}): Promise<NbdClient> {
    let client: NbdClient | undefined;
    let socket: Socket | undefined;
    const reader = new DirectReader((err) => {
      if (client) client.failAll(err);
      else socket?.destroy();
    });
    socket = await openSocket(address, reader);
    try {
      const { structured, contexts, size, flags } = await handshake(socket, reader, address.exportName, options.metaContexts ?? []);
      client = new NbdClient(socket, reader, size, flags, structured, contexts);
      return client;
    } catch (err) {
      socket.destroy();
      throw err;
    }
  }

  get readOnly(): boolean {
    return (this.transmissionFlags & TransmissionFlag.READ_ONLY) !== 0;
  }

  hasContext(name: string): boolean {
    return this.contexts.has(name);
  }

  /**
   * `length` bytes at `offset`, read by the kernel straight into the start of `into` if given
   * (at least `length` bytes), else into a buffer of their own (which can move to a worker).
   */
  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    if (into && into.length < length) throw new NbdError(`a read of ${length} bytes into a buffer of ${into.length}`, Errno.EINVAL);
    const done = await this.request(Cmd.READ, offset, length, undefined, into?.subarray(0, length));
    return done.data ?? Buffer.alloc(length);
  }

  async write(offset: number, data: Buffer): Promise<void> {
    await this.request(Cmd.WRITE, offset, data.length, data);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    if (this.transmissionFlags & TransmissionFlag.SEND_WRITE_ZEROES) await this.request(Cmd.WRITE_ZEROES, offset, length);
    else await this.write(offset, Buffer.alloc(length));
  }

  async flush(): Promise<void> {
    if (this.transmissionFlags & TransmissionFlag.SEND_FLUSH) await this.request(Cmd.FLUSH, 0, 0);
  }

  /** Extents of one meta context from `offset` on; they may cover less than `length`, never nothing. */
  async blockStatus(context: string, offset: number, length: number): Promise<Extent[]> {
    const id = this.contexts.get(context);
    if (id === undefined) throw new NbdError(`meta context ${context} was not negotiated`, Errno.ENOTSUP);
    const done = await this.request(Cmd.BLOCK_STATUS, offset, Math.min(length, 0x40000000));
    const extents = done.extents.filter((e) => e.context === id);
    if (extents.length === 0) throw new NbdError(`no extents for ${context} at ${offset}`);
    return extents.map(({ offset: o, length: l, flags }) => ({ offset: o, length: l, flags }));
  }

  /** All extents of a context over [offset, offset+length), merged when neighbours share flags. */
  async extents(context: string, offset = 0, length = this.size - offset): Promise<Extent[]> {
    const out: Extent[] = [];
    const end = offset + length;
    for (let at = offset; at < end;) {
      for (const extent of await this.blockStatus(context, at, end - at)) {
        const clipped = { ...extent, length: Math.min(extent.length, end - extent.offset) };
        const last = out[out.length - 1];
        if (last && last.flags === clipped.flags && last.offset + last.length === clipped.offset) last.length += clipped.length;
        else out.push(clipped);
        at = clipped.offset + clipped.length;
        if (at >= end) break;
      }
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.socket.destroyed) {
      this.socket.write(requestHeader(Cmd.DISC, 0, 0, 0));
      this.socket.end();
    }
    await new Promise<void>((resolve) => {
      if (this.socket.destroyed) resolve();
      else this.socket.once('close', () => resolve());
    });
  }

  /** Sends a request; `payload` is a write's data, `data` where a read's reply goes. */
  private request(command: number, offset: number, length: number, payload?: Buffer, data?: Buffer): Promise<Pending> {
    if (this.closed) return Promise.reject(new NbdError('NBD client is closed'));
    const cookie = this.nextCookie++;
    return new Promise<Pending>((resolve, reject) => {
      this.pending.set(cookie, { command, offset, length, data, covered: 0, extents: [], resolve, reject });
      this.socket.write(requestHeader(command, cookie, offset, length));
      if (payload) this.socket.write(payload);
    });
  }

  // Replies are parsed synchronously as they arrive (see DirectReader): each step names the next.

  private receiveReply(): void {
    this.reader.expect(4, (magic) => {
      const value = magic.readUInt32BE(0);
      if (value === SIMPLE_REPLY_MAGIC) this.reader.expect(12, (head) => this.receiveSimple(head));
      else if (value === STRUCTURED_REPLY_MAGIC) this.reader.expect(16, (head) => this.receiveStructured(head));
      else throw new NbdError(`bad reply magic 0x${value.toString(16)}`);
    });
  }

  private failAll(err: Error): void {
    const failure = err instanceof NbdError ? err : new NbdError(err.message);
    for (const p of this.pending.values()) p.reject(failure);
    this.pending.clear();
    this.socket.destroy();
  }

  private take(cookie: number): Pending {
    const p = this.pending.get(cookie);
    if (!p) throw new NbdError(`reply for unknown cookie ${cookie}`);
    return p;
  }

  private receiveSimple(head: Buffer): void {
    const error = head.readUInt32BE(0);
    const cookie = Number(head.readBigUInt64BE(4));
    const p = this.take(cookie);
    if (error) p.error = new NbdError(`NBD command ${p.command} at ${p.offset}+${p.length} failed: errno ${error}`, error);
    if (error || p.command !== Cmd.READ) return this.replyDone(cookie, p, true);
    p.covered = p.length;
    this.reader.expectInto(p.data ??= Buffer.allocUnsafe(p.length), () => this.replyDone(cookie, p, true));
  }

  private receiveStructured(head: Buffer): void {
    const flags = head.readUInt16BE(0);
    const type = head.readUInt16BE(2);
    const cookie = Number(head.readBigUInt64BE(4));
    const length = head.readUInt32BE(12);
    const p = this.take(cookie);
    const done = (flags & ReplyFlag.DONE) !== 0;
    if (type === ReplyType.OFFSET_DATA || type === ReplyType.OFFSET_HOLE) {
      if (length < (type === ReplyType.OFFSET_DATA ? 8 : 12)) throw new NbdError(`read reply chunk of ${length} bytes`);
      // The chunk's offset (and a hole's size) first; a data chunk's bytes then go to their place in the read's buffer.
      this.reader.expect(type === ReplyType.OFFSET_DATA ? 8 : 12, (where) => {
        const at = Number(where.readBigUInt64BE(0)) - p.offset;
        const size = type === ReplyType.OFFSET_DATA ? length - 8 : where.readUInt32BE(8);
        if (at < 0 || at + size > p.length || p.command !== Cmd.READ) throw new NbdError(`read reply chunk outside the request at ${p.offset}+${p.length}`);
        p.data ??= Buffer.allocUnsafe(p.length);
        p.covered += size;
        if (type === ReplyType.OFFSET_HOLE) {
          p.data.fill(0, at, at + size);
          this.replyDone(cookie, p, done);
        } else {
          this.reader.expectInto(p.data.subarray(at, at + size), () => this.replyDone(cookie, p, done));
        }
      });
      return;
    }
    const payload = Buffer.allocUnsafe(length);
    this.reader.expectInto(payload, () => {
      if (type === ReplyType.BLOCK_STATUS) {
        const context = payload.readUInt32BE(0);
        let at = p.offset;
        for (let i = 4; i + 8 <= payload.length; i += 8) {
          const extentLength = payload.readUInt32BE(i);
          p.extents.push({ offset: at, length: extentLength, flags: payload.readUInt32BE(i + 4), context });
          at += extentLength;
        }
      } else if (type & 0x8000) {
        const errno = payload.readUInt32BE(0);
        const message = payload.subarray(6, 6 + payload.readUInt16BE(4)).toString('utf8');
        p.error = new NbdError(`NBD command ${p.command} at ${p.offset}+${p.length} failed: ${message || `errno ${errno}`}`, errno);
      }
      this.replyDone(cookie, p, done);
    });
  }

  /** After a reply chunk: settles the request if it was the last one, and waits for the next reply. */
  private replyDone(cookie: number, p: Pending, last: boolean): void {
    if (last) {
      if (!p.error && p.command === Cmd.READ && p.covered !== p.length) {
        p.error = new NbdError(`NBD read at ${p.offset}+${p.length}: the reply covered ${p.covered} bytes`);
      }
      this.finish(cookie, p);
    }
    this.receiveReply();
  }

  private finish(cookie: number, p: Pending): void {
    this.pending.delete(cookie);
    if (p.error) p.reject(p.error);
    else p.resolve(p);
  }
}

function requestHeader(command: number, cookie: number, offset: number, length: number): Buffer {
  const header = Buffer.allocUnsafe(28);
  header.writeUInt32BE(REQUEST_MAGIC, 0);
  header.writeUInt16BE(0, 4);
  header.writeUInt16BE(command, 6);
  header.writeBigUInt64BE(BigInt(cookie), 8);
  header.writeBigUInt64BE(BigInt(offset), 16);
  header.writeUInt32BE(length, 24);
  return header;
}

/** A connected socket whose bytes go to `reader`. */
function openSocket(address: NbdAddress, reader: DirectReader): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const { onread } = reader;
    const socket = address.socketPath
      ? netConnect({ path: address.socketPath, onread, noDelay: true })
      : netConnect({ host: address.host ?? 'localhost', port: address.port ?? 10809, onread, noDelay: true });
    socket.once('connect', () => { socket.off('error', reject); resolve(socket); });
    socket.once('error', reject);
    socket.on('error', (err) => reader.fail(new NbdError(`NBD connection lost: ${err.message}`)));
    socket.on('close', () => reader.fail(new NbdError('NBD connection closed')));
  });
}

interface HandshakeResult {
  structured: boolean;
  contexts: Map<string, number>;
  size: number;
  flags: number;
}

async function handshake(socket: Socket, reader: DirectReader, exportName: string, metaContexts: string[]): Promise<HandshakeResult> {
  const greeting = await reader.read(18);
  if (greeting.readBigUInt64BE(0) !== NBDMAGIC || greeting.readBigUInt64BE(8) !== IHAVEOPT) {
    throw new NbdError('not an NBD newstyle server');
  }
  const serverFlags = greeting.readUInt16BE(16);
  if (!(serverFlags & HandshakeFlag.FIXED_NEWSTYLE)) throw new NbdError('NBD server lacks fixed newstyle negotiation');
  const clientFlags = Buffer.alloc(4);
  clientFlags.writeUInt32BE(ClientFlag.FIXED_NEWSTYLE | (serverFlags & HandshakeFlag.NO_ZEROES ? ClientFlag.NO_ZEROES : 0));
  socket.write(clientFlags);

  const option = async (opt: number, data: Buffer, onReply: (type: number, data: Buffer) => boolean) => {
    const header = Buffer.allocUnsafe(16);
    header.writeBigUInt64BE(IHAVEOPT, 0);
    header.writeUInt32BE(opt, 8);
    header.writeUInt32BE(data.length, 12);
    socket.write(Buffer.concat([header, data]));
    for (;;) {
      const reply = await reader.read(20);
      if (reply.readBigUInt64BE(0) !== OPTION_REPLY_MAGIC) throw new NbdError('bad option reply magic');
      const type = reply.readUInt32BE(12);
      const length = reply.readUInt32BE(16);
      const body = length > 0 ? await reader.read(length) : Buffer.alloc(0);
      if (!onReply(type, body)) return type;
    }
  };
  const isError = (type: number) => (type & 0x80000000) !== 0;

  const structured = (await option(Opt.STRUCTURED_REPLY, Buffer.alloc(0), () => false)) === Rep.ACK;

  const contexts = new Map<string, number>();
  if (structured && metaContexts.length > 0) {
    const type = await option(Opt.SET_META_CONTEXT, metaContextRequest(exportName, metaContexts), (t, body) => {
      if (t !== Rep.META_CONTEXT) return false;
      contexts.set(body.subarray(4).toString('utf8'), body.readUInt32BE(0));
      return true;
    });
    if (isError(type) && type !== Rep.ERR_UNSUP) throw new NbdError(`NBD server refused meta contexts (0x${type.toString(16)})`);
  }

  let size = -1;
  let flags = 0;
  const name = Buffer.from(exportName, 'utf8');
  const go = Buffer.alloc(4 + name.length + 2 + 2);
  go.writeUInt32BE(name.length, 0);
  name.copy(go, 4);
  go.writeUInt16BE(1, 4 + name.length);
  go.writeUInt16BE(Info.BLOCK_SIZE, 6 + name.length);
  let message = '';
  const type = await option(Opt.GO, go, (t, body) => {
    if (t === Rep.INFO) {
      if (body.readUInt16BE(0) === Info.EXPORT) {
        size = Number(body.readBigUInt64BE(2));
        flags = body.readUInt16BE(10);
      }
      return true;
    }
    if (isError(t)) message = body.toString('utf8');
    return false;
  });
  if (type !== Rep.ACK || size < 0) {
    throw new NbdError(`NBD export '${exportName}' not available${message ? `: ${message}` : ''}`, Errno.EINVAL);
  }
  return { structured, contexts, size, flags };
}

function metaContextRequest(exportName: string, queries: string[]): Buffer {
  const parts: Buffer[] = [];
  const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32BE(n); return b; };
  const name = Buffer.from(exportName, 'utf8');
  parts.push(u32(name.length), name, u32(queries.length));
  for (const query of queries) {
    const q = Buffer.from(query, 'utf8');
    parts.push(u32(q.length), q);
  }
  return Buffer.concat(parts);
}
