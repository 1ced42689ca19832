// The load generator's main thread: splits a workload over worker threads (so one event loop is
// never the client's bottleneck), merges what they measured, and reports progress as it goes.
import { Worker } from 'node:worker_threads';
import { Histogram } from './histogram.js';
import type { ObjectRef, OpKind, OpStatsData, SecondData, WorkerMessage, WorkerPlan, WorkloadShape } from './load-types.js';
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
  const startedAt = Date.now();
  const cpuBefore = process.cpuUsage();
  const plans = Array.from({ length: clients }, (_, i) => planFor(options, i, clients, startedAt));
  const totals = plans.map(() => ({ ops: 0, bytes: 0, errors: 0 }));
  const report = onProgress && setInterval(() => {
    const sum = totals.reduce((a, t) => ({ ops: a.ops + t.ops, bytes: a.bytes + t.bytes, errors: a.errors + t.errors }));
    onProgress({ elapsedMs: Date.now() - startedAt, ...sum });
  }, 1000);
  try {
    const results = await Promise.all(plans.map((plan, i) => runWorker(plan, (p) => { totals[i] = p; })));
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

function planFor(options: LoadOptions, index: number, clients: number, startedAt: number): WorkerPlan {
  const share = (total: number) => Math.floor(total / clients) + (index < total % clients ? 1 : 0);
  const { clients: _clients, durationMs, count, objects, keyPrefix, ...shape } = options;
  return {
    ...shape,
    keyPrefix: `${keyPrefix}${index}/`,
    concurrency: share(options.concurrency),
    objects: objects.filter((_, i) => i % clients === index),
    startedAt,
    deadline: startedAt + durationMs,
    maxOps: Number.isFinite(count) ? share(count) : Infinity,
  };
}

function runWorker(plan: WorkerPlan, onProgress: (p: { ops: number; bytes: number; errors: number }) => void): Promise<Extract<WorkerMessage, { type: 'done' }>> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./load-worker.js', import.meta.url), { workerData: plan });
    let done: Extract<WorkerMessage, { type: 'done' }> | undefined;
    worker.on('message', (message: WorkerMessage) => {
      if (message.type === 'progress') onProgress(message);
      else done = message;
    });
    worker.on('error', reject);
    worker.on('exit', (code) => (done ? resolve(done) : reject(new Error(`load worker exited with code ${code} before reporting`))));
  });
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
