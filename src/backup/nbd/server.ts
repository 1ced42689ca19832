// A read-only NBD server: fixed newstyle handshake (EXPORT_NAME, LIST, INFO, GO, structured
// replies, base:allocation meta context) and concurrent request handling, so qemu-img, nbdinfo or
// a VM reading a backup keep several requests in flight. Exports are supplied as backends.
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import {
  BASE_ALLOCATION, ClientFlag, Cmd, CmdFlag, Errno, type Extent, HandshakeFlag, IHAVEOPT, Info, NBDMAGIC, Opt,
  OPTION_REPLY_MAGIC, Rep, ReplyFlag, ReplyType, REQUEST_MAGIC, SIMPLE_REPLY_MAGIC, STRUCTURED_REPLY_MAGIC, TransmissionFlag,
} from './protocol.js';
import { SocketReader } from './socket-reader.js';

export interface NbdExport {
  size: number;
  read(offset: number, length: number): Promise<Buffer>;
  /** base:allocation extents from `offset`, covering at least part of `length`. */
  allocation(offset: number, length: number): Promise<Extent[]>;
}

export interface ListenAddress {
  host?: string;
  port?: number;
  path?: string;
}

const BASE_CONTEXT_ID = 1;
const MAX_REQUEST = 32 * 1024 * 1024;
const EXPORT_FLAGS = TransmissionFlag.HAS_FLAGS | TransmissionFlag.READ_ONLY | TransmissionFlag.SEND_FLUSH | TransmissionFlag.CAN_MULTI_CONN | TransmissionFlag.SEND_CACHE;

export class NbdServer {
  private readonly sockets = new Set<Socket>();
  private constructor(private readonly server: Server) {}

  /** Serves `exports` by name; the empty name (default export) serves `defaultExport`. */
  static async listen(address: ListenAddress, exports: ReadonlyMap<string, NbdExport>, defaultExport: string): Promise<NbdServer> {
    const server = createServer();
    const nbd = new NbdServer(server);
    server.on('connection', (socket) => {
      nbd.sockets.add(socket);
      socket.on('close', () => nbd.sockets.delete(socket));
      socket.setNoDelay(true);
      void new Connection(socket, exports, defaultExport).serve().catch(() => socket.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if (address.path) server.listen(address.path, resolve);
      else server.listen(address.port ?? 10809, address.host ?? '127.0.0.1', resolve);
    });
    return nbd;
  }

  /** `host:port` or the socket path actually bound. */
  get address(): string {
    const bound = this.server.address();
    return typeof bound === 'string' ? bound : `${(bound as AddressInfo).address}:${(bound as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

class Connection {
  private readonly reader: SocketReader;
  private structured = false;
  private baseAllocation = false;
  private noZeroes = false;

  constructor(private readonly socket: Socket, private readonly exports: ReadonlyMap<string, NbdExport>, private readonly defaultExport: string) {
    this.reader = new SocketReader(socket);
  }

  async serve(): Promise<void> {
    const greeting = Buffer.alloc(18);
    greeting.writeBigUInt64BE(NBDMAGIC, 0);
    greeting.writeBigUInt64BE(IHAVEOPT, 8);
    greeting.writeUInt16BE(HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES, 16);
    this.socket.write(greeting);
    const clientFlags = (await this.reader.read(4)).readUInt32BE(0);
    this.noZeroes = (clientFlags & ClientFlag.NO_ZEROES) !== 0;
    const chosen = await this.negotiate();
    if (chosen) await this.transmit(chosen);
  }

  private lookup(name: string): NbdExport | undefined {
    return this.exports.get(name === '' ? this.defaultExport : name);
  }

  /** Option haggling; returns the export chosen by GO or EXPORT_NAME, or undefined on ABORT. */
  private async negotiate(): Promise<NbdExport | undefined> {
    for (;;) {
      const header = await this.reader.read(16);
      if (header.readBigUInt64BE(0) !== IHAVEOPT) throw new Error('bad option magic');
      const opt = header.readUInt32BE(8);
      const length = header.readUInt32BE(12);
      const data = length > 0 ? await this.reader.read(length) : Buffer.alloc(0);
      switch (opt) {
        case Opt.EXPORT_NAME: {
          const found = this.lookup(data.toString('utf8'));
          if (!found) { this.socket.destroy(); return undefined; }
          const reply = Buffer.alloc(this.noZeroes ? 10 : 134);
          reply.writeBigUInt64BE(BigInt(found.size), 0);
          reply.writeUInt16BE(EXPORT_FLAGS, 8);
          this.socket.write(reply);
          return found;
        }
        case Opt.ABORT:
          this.optionReply(opt, Rep.ACK);
          this.socket.end();
          return undefined;
        case Opt.LIST:
          for (const name of this.exports.keys()) this.optionReply(opt, Rep.SERVER, lengthPrefixed(name));
          this.optionReply(opt, Rep.ACK);
          break;
        case Opt.STRUCTURED_REPLY:
          this.structured = true;
          this.optionReply(opt, Rep.ACK);
          break;
        case Opt.LIST_META_CONTEXT:
        case Opt.SET_META_CONTEXT:
          this.metaContext(opt, data);
          break;
        case Opt.INFO:
        case Opt.GO: {
          const nameLength = data.readUInt32BE(0);
          const found = this.lookup(data.subarray(4, 4 + nameLength).toString('utf8'));
          if (!found) { this.optionReply(opt, Rep.ERR_UNKNOWN, Buffer.from('no such export')); break; }
          const exportInfo = Buffer.alloc(12);
          exportInfo.writeUInt16BE(Info.EXPORT, 0);
          exportInfo.writeBigUInt64BE(BigInt(found.size), 2);
          exportInfo.writeUInt16BE(EXPORT_FLAGS, 10);
          this.optionReply(opt, Rep.INFO, exportInfo);
          const blockSize = Buffer.alloc(14);
          blockSize.writeUInt16BE(Info.BLOCK_SIZE, 0);
          blockSize.writeUInt32BE(1, 2);
          blockSize.writeUInt32BE(4096, 6);
          blockSize.writeUInt32BE(MAX_REQUEST, 10);
          this.optionReply(opt, Rep.INFO, blockSize);
          this.optionReply(opt, Rep.ACK);
          if (opt === Opt.GO) return found;
          break;
        }
        default:
          this.optionReply(opt, Rep.ERR_UNSUP);
      }
    }
  }

  private metaContext(opt: number, data: Buffer): void {
    if (opt === Opt.SET_META_CONTEXT && !this.structured) {
      this.optionReply(opt, Rep.ERR_INVALID, Buffer.from('structured replies first'));
      return;
    }
    let at = 4 + data.readUInt32BE(0);
    const count = data.readUInt32BE(at);
    at += 4;
    let granted = false;
    for (let i = 0; i < count; i++) {
      const length = data.readUInt32BE(at);
      const query = data.subarray(at + 4, at + 4 + length).toString('utf8');
      at += 4 + length;
      granted ||= query === BASE_ALLOCATION || (opt === Opt.LIST_META_CONTEXT && (query === 'base:' || query === 'base:allocation'));
    }
    if (count === 0 && opt === Opt.LIST_META_CONTEXT) granted = true;
    if (granted) {
      const reply = Buffer.alloc(4 + BASE_ALLOCATION.length);
      reply.writeUInt32BE(BASE_CONTEXT_ID, 0);
      reply.write(BASE_ALLOCATION, 4, 'utf8');
      this.optionReply(opt, Rep.META_CONTEXT, reply);
    }
    if (opt === Opt.SET_META_CONTEXT) this.baseAllocation = granted;
    this.optionReply(opt, Rep.ACK);
  }

  private optionReply(opt: number, type: number, data: Buffer = Buffer.alloc(0)): void {
    const header = Buffer.alloc(20);
    header.writeBigUInt64BE(OPTION_REPLY_MAGIC, 0);
    header.writeUInt32BE(opt, 8);
    header.writeUInt32BE(type, 12);
    header.writeUInt32BE(data.length, 16);
    this.socket.write(Buffer.concat([header, data]));
  }

  private async transmit(disk: NbdExport): Promise<void> {
    for (;;) {
      const request = await this.reader.read(28);
      if (request.readUInt32BE(0) !== REQUEST_MAGIC) throw new Error('bad request magic');
      const flags = request.readUInt16BE(4);
      const type = request.readUInt16BE(6);
      const cookie = request.subarray(8, 16);
      const offset = Number(request.readBigUInt64BE(16));
      const length = request.readUInt32BE(24);
      if (type === Cmd.DISC) { this.socket.end(); return; }
      if (type === Cmd.WRITE) await this.reader.read(length);
      void this.handle(disk, type, flags, cookie, offset, length).catch((err: unknown) => {
        this.replyError(cookie, Errno.EIO, err instanceof Error ? err.message : String(err));
      });
    }
  }

  private async handle(disk: NbdExport, type: number, flags: number, cookie: Buffer, offset: number, length: number): Promise<void> {
    const inRange = offset + length <= disk.size;
    switch (type) {
      case Cmd.READ:
        if (!inRange || length > MAX_REQUEST) return this.replyError(cookie, Errno.EINVAL, 'out of range');
        return this.replyData(cookie, offset, await disk.read(offset, length));
      case Cmd.BLOCK_STATUS: {
        if (!this.baseAllocation || !inRange || length === 0) return this.replyError(cookie, Errno.EINVAL, 'no such meta context or range');
        const extents = await disk.allocation(offset, length);
        return this.replyBlockStatus(cookie, flags & CmdFlag.REQ_ONE ? extents.slice(0, 1) : extents);
      }
      case Cmd.FLUSH:
      case Cmd.CACHE:
        return this.replyDone(cookie);
      case Cmd.WRITE:
      case Cmd.TRIM:
      case Cmd.WRITE_ZEROES:
        return this.replyError(cookie, Errno.EPERM, 'read-only export');
      default:
        return this.replyError(cookie, Errno.EINVAL, 'unknown command');
    }
  }

  private replyData(cookie: Buffer, offset: number, data: Buffer): void {
    if (!this.structured) {
      this.socket.write(Buffer.concat([simpleHeader(cookie, 0), data]));
      return;
    }
    const header = structuredHeader(cookie, ReplyFlag.DONE, ReplyType.OFFSET_DATA, 8 + data.length);
    const at = Buffer.alloc(8);
    at.writeBigUInt64BE(BigInt(offset));
    this.socket.write(Buffer.concat([header, at, data]));
  }

  private replyBlockStatus(cookie: Buffer, extents: Extent[]): void {
    const payload = Buffer.alloc(4 + extents.length * 8);
    payload.writeUInt32BE(BASE_CONTEXT_ID, 0);
    extents.forEach((extent, i) => {
      payload.writeUInt32BE(extent.length, 4 + i * 8);
      payload.writeUInt32BE(extent.flags, 8 + i * 8);
    });
    this.socket.write(Buffer.concat([structuredHeader(cookie, ReplyFlag.DONE, ReplyType.BLOCK_STATUS, payload.length), payload]));
  }

  private replyDone(cookie: Buffer): void {
    this.socket.write(this.structured ? structuredHeader(cookie, ReplyFlag.DONE, ReplyType.NONE, 0) : simpleHeader(cookie, 0));
  }

  private replyError(cookie: Buffer, errno: number, message: string): void {
    if (this.socket.destroyed) return;
    if (!this.structured) {
      this.socket.write(simpleHeader(cookie, errno));
      return;
    }
    const text = Buffer.from(message.slice(0, 200), 'utf8');
    const payload = Buffer.alloc(6 + text.length);
    payload.writeUInt32BE(errno, 0);
    payload.writeUInt16BE(text.length, 4);
    text.copy(payload, 6);
    this.socket.write(Buffer.concat([structuredHeader(cookie, ReplyFlag.DONE, ReplyType.ERROR, payload.length), payload]));
  }
}

function simpleHeader(cookie: Buffer, error: number): Buffer {
  const header = Buffer.alloc(16);
  header.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
  header.writeUInt32BE(error, 4);
  cookie.copy(header, 8);
  return header;
}

function structuredHeader(cookie: Buffer, flags: number, type: number, length: number): Buffer {
  const header = Buffer.alloc(20);
  header.writeUInt32BE(STRUCTURED_REPLY_MAGIC, 0);
  header.writeUInt16BE(flags, 4);
  header.writeUInt16BE(type, 6);
  cookie.copy(header, 8);
  header.writeUInt32BE(length, 16);
  return header;
}

function lengthPrefixed(text: string): Buffer {
  const body = Buffer.from(text, 'utf8');
  const out = Buffer.alloc(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  body.copy(out, 4);
  return out;
}
