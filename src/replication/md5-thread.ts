// MD5 of large bodies on a worker thread. A body's bytes already pass through stripe buffers on
// their way to the nodes; those buffers are shared memory, so the worker hashes each stripe in
// place (1 MiB per message, no copy) while the event loop goes on moving bytes. On the event
// loop MD5 took a third of a large PUT's time there (a CPU profile of 64 MiB PUTs).
import { Worker } from 'node:worker_threads';
import { StoreError } from '../common/errors.js';

/** Messages to the worker; it answers each update and digest, in order, per job. */
export type Md5Request =
  | { job: number; op: 'update'; memory: SharedArrayBuffer; offset: number; length: number }
  | { job: number; op: 'digest' }
  | { job: number; op: 'discard' };

export interface Md5Reply {
  job: number;
  hex?: string;
}

type Answer = (reply: Md5Reply | Error) => void;

/** The worker thread and the answers it owes, per job in order of asking. */
class Md5Thread {
  private readonly worker = new Worker(new URL('./md5-thread-worker.js', import.meta.url));
  private readonly answers = new Map<number, Answer[]>();
  private nextJob = 0;
  dead = false;

  constructor() {
    this.worker.unref();
    this.worker.on('message', (reply: Md5Reply) => this.answer(reply.job, reply));
    this.worker.on('error', (err) => this.failAll(err));
    this.worker.on('exit', () => this.failAll(new Error('md5 worker exited')));
  }

  newJob(): number {
    return this.nextJob++;
  }

  ask(request: Md5Request, answer?: Answer): void {
    if (this.dead) { answer?.(new Error('md5 worker exited')); return; }
    if (answer) {
      if (this.answers.size === 0) this.worker.ref();
      const queue = this.answers.get(request.job) ?? [];
      queue.push(answer);
      this.answers.set(request.job, queue);
    }
    this.worker.postMessage(request);
  }

  private answer(job: number, reply: Md5Reply | Error): void {
    const queue = this.answers.get(job);
    const next = queue?.shift();
    if (queue?.length === 0) this.answers.delete(job);
    if (this.answers.size === 0) this.worker.unref();
    next?.(reply);
  }

  private failAll(err: Error): void {
    this.dead = true;
    const pending = [...this.answers.values()].flat();
    this.answers.clear();
    for (const answer of pending) answer(err);
  }
}

let thread: Md5Thread | undefined;

function md5Thread(): Md5Thread {
  if (!thread || thread.dead) thread = new Md5Thread();
  return thread;
}

/** Bytes in shared memory: what the MD5 thread can read without a copy. */
export function sharedBuffer(size: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(size));
}

/** One running MD5 on the worker thread; fed in order, from buffers made by sharedBuffer(). */
export class ThreadedMd5 {
  private readonly thread = md5Thread();
  private readonly job = this.thread.newJob();
  private failure: Error | undefined;

  /** Hash `bytes` next; resolves once the worker has read them (a failure shows in digest()). */
  update(bytes: Buffer): Promise<void> {
    return new Promise((resolve) => this.thread.ask(
      { job: this.job, op: 'update', memory: bytes.buffer as SharedArrayBuffer, offset: bytes.byteOffset, length: bytes.length },
      (reply) => {
        if (reply instanceof Error) this.failure ??= reply;
        resolve();
      }));
  }

  digest(): Promise<string> {
    return new Promise((resolve, reject) => this.thread.ask({ job: this.job, op: 'digest' }, (reply) => {
      const failure = this.failure ?? (reply instanceof Error ? reply : undefined);
      if (failure) reject(new StoreError('Internal', `body digest failed: ${failure.message}`));
      else resolve((reply as Md5Reply).hex!);
    }));
  }

  discard(): void {
    this.thread.ask({ job: this.job, op: 'discard' });
  }
}
