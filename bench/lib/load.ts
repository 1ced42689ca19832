// The load generator's main thread: splits a workload over worker threads (so one event loop is
// never the client's bottleneck), merges what they measured, and reports progress as it goes.
import { Worker } from 'node:worker_threads';
import { Histogram } from './histogram.js';
import type { ObjectRef, OpKind, OpStatsData, StartMessage, WorkerMessage, WorkerPlan, WorkloadShape } from './load-types.js';
import type { S3Target } from './s3-client.js';

export interface LoadOptions extends WorkloadShape {
  target: S3Target;
  seed: string;
  keyPrefix: string;
  clients: number;
  concurrency: number;
  durationMs: number;
  /** Total op budget; Infinity for duration only. */
  count: number;
  /** Existing objects to read or delete, split among the clients. */
  objects: ObjectRef[];
}

/** A worker's OpStatsData after merging, with a live histogram. */
export type OpStats = Omit<OpStatsData, 'latency'> & { latency: Histogram };

export interface LoadResult {
  wallMs: number;
  stats: Map<OpKind, OpStats>;
  written: ObjectRef[];
  /** CPU the whole client process (all worker threads) used, in ms. */
  clientCpuMs: number;
}

export interface Progress {
  elapsedMs: number;
  ops: number;
  bytes: number;
  errors: number;
}

export async function runLoad(options: LoadOptions, onProgress?: (p: Progress) => void): Promise<LoadResult> {
  const clients = Math.max(1, Math.min(options.clients, options.concurrency));
  const workers = Array.from({ length: clients }, (_, i) => new LoadWorkerHandle(planFor(options, i, clients)));
  await Promise.all(workers.map((w) => w.ready));
  const startedAt = Date.now();
  const cpuBefore = process.cpuUsage();
  for (const worker of workers) worker.start(startedAt);
  const report = onProgress && setInterval(() => {
    const sum = workers.map((w) => w.progress).reduce((a, t) => ({ ops: a.ops + t.ops, bytes: a.bytes + t.bytes, errors: a.errors + t.errors }));
    onProgress({ elapsedMs: Date.now() - startedAt, ...sum });
  }, 1000);
  try {
    const results = await Promise.all(workers.map((w) => w.done));
    const cpu = process.cpuUsage(cpuBefore);
    return {
      wallMs: Date.now() - startedAt,
      stats: mergeStats(results.map((r) => r.stats)),
      written: results.flatMap((r) => r.written),
      clientCpuMs: (cpu.user + cpu.system) / 1000,
    };
  } finally {
    if (report) clearInterval(report);
  }
}

function planFor(options: LoadOptions, index: number, clients: number): WorkerPlan {
  const share = (total: number) => Math.floor(total / clients) + (index < total % clients ? 1 : 0);
  const { clients: _clients, count, objects, keyPrefix, ...shape } = options;
  return {
    ...shape,
    keyPrefix: `${keyPrefix}${index}/`,
    concurrency: share(options.concurrency),
    objects: objects.filter((_, i) => i % clients === index),
    maxOps: Number.isFinite(count) ? share(count) : Infinity,
  };
}

type DoneMessage = Extract<WorkerMessage, { type: 'done' }>;

/** One worker thread: ready once it has set up, done with its measurements. */
class LoadWorkerHandle {
  readonly ready: Promise<void>;
  readonly done: Promise<DoneMessage>;
  progress = { ops: 0, bytes: 0, errors: 0 };
  private readonly worker: Worker;

  constructor(plan: WorkerPlan) {
    this.worker = new Worker(new URL('./load-worker.js', import.meta.url), { workerData: plan });
    let ready!: () => void;
    this.ready = new Promise((resolve) => { ready = resolve; });
    this.done = new Promise((resolve, reject) => {
      let result: DoneMessage | undefined;
      this.worker.on('message', (message: WorkerMessage) => {
        if (message.type === 'ready') ready();
        else if (message.type === 'progress') this.progress = message;
        else result = message;
      });
      this.worker.on('error', reject);
      this.worker.on('exit', (code) => (result ? resolve(result) : reject(new Error(`load worker exited with code ${code} before reporting`))));
    });
    // A worker that dies while setting up must not leave runLoad waiting for it to be ready.
    this.done.catch(() => ready());
  }

  start(startedAt: number): void {
    const message: StartMessage = { type: 'start', startedAt };
    this.worker.postMessage(message);
  }
}

function mergeStats(perWorker: Array<Partial<Record<OpKind, OpStatsData>>>): Map<OpKind, OpStats> {
  const merged = new Map<OpKind, OpStats>();
  for (const stats of perWorker) {
    for (const [kind, data] of Object.entries(stats) as Array<[OpKind, OpStatsData]>) {
      let into = merged.get(kind);
      if (!into) {
        into = { ops: 0, bytes: 0, items: 0, errors: {}, errorSamples: {}, latency: new Histogram(), series: [] };
        merged.set(kind, into);
      }
      into.ops += data.ops;
      into.bytes += data.bytes;
      into.items += data.items;
      into.latency.merge(data.latency);
      for (const [code, n] of Object.entries(data.errors)) into.errors[code] = (into.errors[code] ?? 0) + n;
      Object.assign(into.errorSamples, { ...data.errorSamples, ...into.errorSamples });
      data.series.forEach((second, i) => {
        const s = (into!.series[i] ??= { ops: 0, bytes: 0, errors: 0 });
        s.ops += second.ops;
        s.bytes += second.bytes;
        s.errors += second.errors;
      });
    }
  }
  for (const stats of merged.values()) for (let i = 0; i < stats.series.length; i++) stats.series[i] ??= { ops: 0, bytes: 0, errors: 0 };
  return merged;
}
