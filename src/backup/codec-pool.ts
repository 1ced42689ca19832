// Runs a restore's decode batches (codec-tasks.ts) on worker threads, so AES, zstd and hashing use
// every core while the main thread keeps GETs and writes flowing. A pool of 0 threads runs them
// inline: for small jobs (a restore of a few MiB) starting threads costs more than they save.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { StoreError, type StoreErrorKind } from '../common/errors.js';
import { type BlobCodec, packBlobs, type StoredBlob } from './blob-codec.js';
import { type CodecResult, type CodecTask, movable, packIds, pieces, runCodecTask } from './codec-tasks.js';

/** Below this much work per job, threads are not worth starting. */
const INLINE_BYTES = 48 * 1024 * 1024;
const MAX_THREADS = 4;

interface Job {
  resolve: (result: CodecResult) => void;
  reject: (err: Error) => void;
}

type Reply = { job: number; result: CodecResult } | { job: number; error: { kind?: StoreErrorKind; message: string } };

class CodecThread {
  private readonly worker: Worker;
  private readonly jobs = new Map<number, Job>();
  private nextJob = 0;

  constructor(codec: BlobCodec) {
    this.worker = new Worker(new URL('./codec-worker.js', import.meta.url), { workerData: { keys: codec.keys } });
    this.worker.unref();
    this.worker.on('message', (reply: Reply) => this.settle(reply));
    this.worker.on('error', (err) => this.failAll(err));
    this.worker.on('exit', () => this.failAll(new Error('codec worker exited')));
  }

  get load(): number {
    return this.jobs.size;
  }

  run(task: CodecTask): Promise<CodecResult> {
    const job = this.nextJob++;
    if (this.jobs.size === 0) this.worker.ref();
    return new Promise((resolve, reject) => {
      this.jobs.set(job, { resolve, reject });
      // The input is ours alone (see CodecPool.own), so it moves to the worker.
      this.worker.postMessage({ job, task }, movable([task.data, task.out]));
    });
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }

  private settle(reply: Reply): void {
    const job = this.jobs.get(reply.job)!;
    this.jobs.delete(reply.job);
    if (this.jobs.size === 0) this.worker.unref();
    if ('result' in reply) job.resolve(reply.result);
    else job.reject(reply.error.kind ? new StoreError(reply.error.kind, reply.error.message) : new Error(reply.error.message));
  }

  private failAll(err: Error): void {
    for (const job of this.jobs.values()) job.reject(err);
    this.jobs.clear();
  }
}

export class CodecPool {
  private constructor(private readonly codec: BlobCodec, private readonly threads: CodecThread[]) {}

  /** `threads` if given, else a pool sized for `workBytes`: inline for small jobs, else one thread per core. */
  static forWork(codec: BlobCodec, workBytes: number, threads?: number): CodecPool {
    return CodecPool.withThreads(codec, threads ?? (workBytes < INLINE_BYTES ? 0 : Math.min(MAX_THREADS, availableParallelism())));
  }

  static withThreads(codec: BlobCodec, count: number): CodecPool {
    return new CodecPool(codec, Array.from({ length: count }, () => new CodecThread(codec)));
  }

  /**
   * Opens and verifies blobs stored in `body` (offsets relative to it) into `out`, back to back,
   * and returns the plaintexts (views of `out`); throws Corrupt on a mismatch. Best in shared
   * memory (SharedArrayBuffer): both threads use it in place, and it can be reused for the next
   * range; else each buffer that owns its whole ArrayBuffer moves to the worker and back, so use
   * the returned views only.
   */
  async decode(body: Buffer, blobs: Array<StoredBlob & { id: Uint8Array }>, out: Buffer): Promise<Buffer[]> {
    const task: CodecTask = { op: 'decode', data: this.own(body), out: this.own(out), ids: packIds(blobs), blobs: packBlobs(blobs) };
    const result = await this.run(task);
    return pieces(result.data, result.lengths);
  }

  async close(): Promise<void> {
    await Promise.all(this.threads.map((t) => t.terminate()));
  }

  private async run(task: CodecTask): Promise<CodecResult> {
    if (this.threads.length === 0) return runCodecTask(this.codec, task);
    const idle = this.threads.reduce((best, t) => (t.load < best.load ? t : best));
    return idle.run(task);
  }

  /**
   * Data handed to a thread moves there (its ArrayBuffer is transferred): a buffer that owns its
   * whole ArrayBuffer moves as it is, and the caller must not touch it afterwards; shared memory
   * is used in place; else a copy.
   */
  private own(data: Buffer): Uint8Array {
    const inPlace = data.buffer instanceof SharedArrayBuffer || (data.byteOffset === 0 && data.byteLength === data.buffer.byteLength);
    return this.threads.length === 0 || inPlace ? data : new Uint8Array(data);
  }
}
