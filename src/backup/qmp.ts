// A QMP client: QEMU's machine protocol over a unix socket, one JSON object per line. Commands
// carry an id and are matched to their answer; asynchronous events can be awaited by name.
import { connect, type Socket } from 'node:net';

export class QmpError extends Error {
  constructor(readonly command: string, readonly errorClass: string, description: string) {
    super(`QMP ${command}: ${description}`);
    this.name = 'QmpError';
  }
}

interface QmpMessage {
  QMP?: unknown;
  id?: number;
  return?: unknown;
  error?: { class: string; desc: string };
  event?: string;
  data?: Record<string, unknown>;
}

type EventWaiter = { name: string; match: (data: Record<string, unknown>) => boolean; resolve: (data: Record<string, unknown>) => void };

export class QmpClient {
  private nextId = 1;
  private buffered = '';
  private readonly pending = new Map<number, { command: string; resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly waiters = new Set<EventWaiter>();
  private greeted!: () => void;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => this.receive(text));
    socket.on('close', () => {
      for (const p of this.pending.values()) p.reject(new Error('QMP connection closed'));
      this.pending.clear();
    });
  }

  static async connect(path: string): Promise<QmpClient> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect({ path });
      s.once('connect', () => { s.off('error', reject); resolve(s); });
      s.once('error', reject);
    });
    const client = new QmpClient(socket);
    await new Promise<void>((resolve) => { client.greeted = resolve; });
    await client.execute('qmp_capabilities');
    return client;
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject });
      this.socket.write(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\n`);
    });
  }

  /** Resolves with the data of the next event `name` for which `match` holds. Register before causing it. */
  waitEvent(name: string, match: (data: Record<string, unknown>) => boolean = () => true): Promise<Record<string, unknown>> {
    return new Promise((resolve) => this.waiters.add({ name, match, resolve }));
  }

  close(): void {
    this.socket.end();
  }

  private receive(text: string): void {
    this.buffered += text;
    let newline: number;
    while ((newline = this.buffered.indexOf('\n')) >= 0) {
      const line = this.buffered.slice(0, newline).trim();
      this.buffered = this.buffered.slice(newline + 1);
      if (line) this.dispatch(JSON.parse(line) as QmpMessage);
    }
  }

  private dispatch(message: QmpMessage): void {
    if (message.QMP) { this.greeted(); return; }
    if (message.event) {
      for (const waiter of this.waiters) {
        if (waiter.name === message.event && waiter.match(message.data ?? {})) {
          this.waiters.delete(waiter);
          waiter.resolve(message.data ?? {});
        }
      }
      return;
    }
    const pending = message.id === undefined ? undefined : this.pending.get(message.id);
    if (!pending) return;
    this.pending.delete(message.id!);
    if (message.error) pending.reject(new QmpError(pending.command, message.error.class, message.error.desc));
    else pending.resolve(message.return);
  }
}
