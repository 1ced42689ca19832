// GETs over plain HTTP/1.1 whose bodies the kernel reads straight into the caller's buffer
// (net.Socket's `onread` with a buffer chosen per read). node:http hands a body over in a fresh
// 64 KiB buffer per socket read, which the restore then copied into its shared memory and the GC
// collected: for the bench's 620 MB restore that was about a third of the main thread's CPU. Only
// what a ranged GET of a pack needs: one request at a time per keep-alive connection, a body of
// known Content-Length (chunked answers are refused; the caller retries with node:http).
import { connect, type Socket } from 'node:net';

export interface BodyResponse {
  status: number;
  /** Header names in lower case. */
  headers: Map<string, string>;
  /** The body: the start of `into` when it fits and the status is 2xx, else a buffer of its own. */
  body: Buffer;
}

const HEADER_ROOM = 16 * 1024;
const HEADER_END = Buffer.from('\r\n\r\n');

export class ChunkedBodyError extends Error {}

interface Exchange {
  into: Buffer;
  resolve: (response: BodyResponse) => void;
  reject: (err: Error) => void;
}

/** One keep-alive connection: a request, then its answer read into place. */
class Connection {
  readonly socket: Socket;
  private readonly head = Buffer.allocUnsafe(HEADER_ROOM);
  private headFilled = 0;
  private exchange: Exchange | undefined;
  private response: Omit<BodyResponse, 'body'> | undefined;
  private body: Buffer = Buffer.alloc(0);
  private bodyFilled = 0;
  private closing = false;

  constructor(host: string, port: number, idleTimeoutMs: number, private readonly onIdle: (connection: Connection) => void,
    private readonly onGone: (connection: Connection) => void) {
    this.socket = connect({ host, port, noDelay: true, onread: { buffer: () => this.nextReadBuffer(), callback: (length) => this.received(length) } });
    this.socket.setTimeout(idleTimeoutMs, () => this.socket.destroy(new Error(`the store sent nothing for ${idleTimeoutMs / 1000} s`)));
    const gone = (err?: Error) => {
      this.onGone(this);
      this.fail(err ?? new Error('connection closed before the answer was complete'));
    };
    this.socket.on('error', gone);
    this.socket.on('close', () => gone());
    this.socket.on('end', () => this.socket.destroy());
  }

  send(request: string, into: Buffer): Promise<BodyResponse> {
    return new Promise((resolve, reject) => {
      this.exchange = { into, resolve, reject };
      this.socket.ref();
      this.socket.write(request, 'latin1');
    });
  }

  /** Where the next socket read goes: the header area, else the rest of the body (never empty). */
  private nextReadBuffer(): Buffer {
    if (this.response && this.bodyFilled < this.body.length) return this.body.subarray(this.bodyFilled);
    return this.head.subarray(Math.min(this.headFilled, HEADER_ROOM - 1));
  }

  /** Counts a socket read; returns true (reading goes on). */
  private received(length: number): boolean {
    if (this.response) {
      this.bodyFilled += length;
    } else if (this.exchange) {
      this.headFilled += length;
      this.parseHead();
    } else {
      this.socket.destroy(new Error('data arrived on an idle connection'));
      return true;
    }
    if (this.response && this.bodyFilled === this.body.length) this.complete();
    return true;
  }

  private parseHead(): void {
    const end = this.head.subarray(0, this.headFilled).indexOf(HEADER_END);
    if (end < 0) {
      if (this.headFilled >= HEADER_ROOM - 1) this.socket.destroy(new Error('response header too large'));
      return;
    }
    const [statusLine, ...lines] = this.head.toString('latin1', 0, end).split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine!)?.[1]);
    const headers = new Map<string, string>();
    for (const line of lines) {
      const colon = line.indexOf(':');
      if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    const length = Number(headers.get('content-length'));
    if (!status || !Number.isSafeInteger(length)) {
      const err = headers.has('transfer-encoding') ? new ChunkedBodyError('the answer has no Content-Length') : new Error(`malformed HTTP answer: ${statusLine}`);
      this.socket.destroy(err);
      return;
    }
    const { into } = this.exchange!;
    this.response = { status, headers };
    this.closing = headers.get('connection')?.toLowerCase() === 'close';
    this.body = status >= 200 && status < 300 && length <= into.length ? into.subarray(0, length) : Buffer.allocUnsafe(length);
    const early = this.head.subarray(end + HEADER_END.length, this.headFilled);
    if (early.length > length) {
      this.socket.destroy(new Error('more bytes than the answer\'s Content-Length'));
      return;
    }
    this.bodyFilled = early.copy(this.body);
  }

  private complete(): void {
    const { resolve } = this.exchange!;
    const response = { ...this.response!, body: this.body };
    // Reset before the socket asks where its next read goes.
    this.exchange = undefined;
    this.response = undefined;
    this.headFilled = 0;
    this.body = Buffer.alloc(0);
    this.bodyFilled = 0;
    if (this.closing) this.socket.destroy();
    else this.onIdle(this);
    // An idle connection must not keep the process alive.
    this.socket.unref();
    resolve(response);
  }

  private fail(err: Error): void {
    const exchange = this.exchange;
    this.exchange = undefined;
    exchange?.reject(err);
  }
}

/** Keep-alive connections to one host:port, as many as requests in flight. */
export class BodyIntoClient {
  private readonly idle: Connection[] = [];
  private readonly open = new Set<Connection>();

  /** A connection silent for `idleTimeoutMs` is dropped (its GET fails, to be retried). */
  constructor(private readonly host: string, private readonly port: number, private readonly idleTimeoutMs: number) {}

  /** GETs `path` (with its query) with `headers` (host included); the body goes into `into` if it fits. */
  get(path: string, headers: Record<string, string>, into: Buffer): Promise<BodyResponse> {
    const lines = [`GET ${path} HTTP/1.1`, ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`)];
    return this.connection().send(`${lines.join('\r\n')}\r\n\r\n`, into);
  }

  destroy(): void {
    for (const connection of this.open) connection.socket.destroy();
  }

  private connection(): Connection {
    return this.idle.pop() ?? this.connect();
  }

  private connect(): Connection {
    const connection = new Connection(this.host, this.port, this.idleTimeoutMs, (c) => this.idle.push(c), (c) => {
      this.open.delete(c);
      const at = this.idle.indexOf(c);
      if (at >= 0) this.idle.splice(at, 1);
    });
    this.open.add(connection);
    return connection;
  }
}
