// A load-generator worker thread: runs `concurrency` request loops against one S3 target until the
// deadline or the op budget, recording each op's latency, bytes and errors.
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { ContentGenerator } from './content.js';
import { Histogram } from './histogram.js';
import type { ObjectRef, OpKind, OpStatsData, StartMessage, WorkerMessage, WorkerPlan } from './load-types.js';
import { LeanS3Client, S3RequestError } from './s3-client.js';
import { drawSize } from './units.js';

const PROGRESS_INTERVAL_MS = 500;

class OpStats {
  ops = 0;
  bytes = 0;
  items = 0;
  readonly errors: Record<string, number> = {};
  readonly errorSamples: Record<string, string> = {};
  readonly latency = new Histogram();
  readonly series: Array<{ ops: number; bytes: number; errors: number }> = [];

  constructor(private readonly startedAt: number) {}

  private second(): { ops: number; bytes: number; errors: number } {
    const index = Math.max(0, Math.floor((Date.now() - this.startedAt) / 1000));
    while (this.series.length <= index) this.series.push({ ops: 0, bytes: 0, errors: 0 });
    return this.series[index]!;
  }

  succeeded(micros: number, bytes: number, items: number): void {
    this.ops++;
    this.bytes += bytes;
    this.items += items;
    this.latency.record(micros);
    this.second().ops++;
  }

  /** Body bytes in the second they move, so large objects draw a smooth throughput line. */
  readonly transferred = (bytes: number): void => {
    this.second().bytes += bytes;
  };

  failed(err: unknown): void {
    const code = err instanceof S3RequestError ? err.code : (err as Error).name ?? 'Error';
    this.errors[code] = (this.errors[code] ?? 0) + 1;
    this.errorSamples[code] ??= (err as Error).message;
    this.second().errors++;
  }

  toData(): OpStatsData {
    const { ops, bytes, items, errors, errorSamples, series } = this;
    return { ops, bytes, items, errors, errorSamples, latency: this.latency.toJSON(), series };
  }
}

interface OpOutcome {
  bytes: number;
  items: number;
}

class LoadWorker {
  private readonly client: LeanS3Client;
  private readonly content: ContentGenerator;
  private readonly stats = new Map<OpKind, OpStats>();
  private readonly objects: ObjectRef[];
  private readonly written: ObjectRef[] = [];
  private readonly weights: Array<[OpKind, number]>;
  private readonly totalWeight: number;
  private started = 0;
  private nextKey = 0;
  private totals = { ops: 0, bytes: 0, errors: 0 };

  private startedAt = 0;
  private deadline = 0;

  constructor(private readonly plan: WorkerPlan) {
    this.client = new LeanS3Client(plan.target, plan.concurrency);
    this.content = new ContentGenerator(plan.seed);
    this.objects = [...plan.objects];
    this.weights = Object.entries(plan.mix).filter(([, w]) => w! > 0) as Array<[OpKind, number]>;
    this.totalWeight = this.weights.reduce((sum, [, w]) => sum + w, 0);
  }

  async run(startedAt: number): Promise<WorkerMessage> {
    this.startedAt = startedAt;
    this.deadline = startedAt + this.plan.durationMs;
    const progress = setInterval(() => post({ type: 'progress', ...this.totals }), PROGRESS_INTERVAL_MS);
    try {
      await Promise.all(Array.from({ length: this.plan.concurrency }, () => this.loop()));
    } finally {
      clearInterval(progress);
      await this.client.close();
    }
    const stats: Partial<Record<OpKind, OpStatsData>> = {};
    for (const [kind, s] of this.stats) stats[kind] = s.toData();
    return { type: 'done', stats, written: this.written };
  }

  private async loop(): Promise<void> {
    const listing = { token: undefined as string | undefined, keys: 0 };
    while (Date.now() < this.deadline && this.started < this.plan.maxOps) {
      const kind = this.pickOp();
      if (!kind) return;
      this.started++;
      const stats = this.statsOf(kind);
      const begin = performance.now();
      try {
        const outcome = await this.execute(kind, listing, stats.transferred);
        stats.succeeded((performance.now() - begin) * 1000, outcome.bytes, outcome.items);
        this.totals.ops++;
        this.totals.bytes += outcome.bytes;
      } catch (err) {
        stats.failed(err);
        this.totals.errors++;
      }
    }
  }

  /** A weighted random op; one that needs an existing object turns into a PUT when none are left. */
  private pickOp(): OpKind | undefined {
    let draw = Math.random() * this.totalWeight;
    let kind = this.weights[this.weights.length - 1]![0];
    for (const [k, w] of this.weights) {
      if ((draw -= w) < 0) { kind = k; break; }
    }
    const needsObject = kind === 'get' || kind === 'ranged-get' || kind === 'stat' || kind === 'delete';
    if (needsObject && this.objects.length === 0) return this.plan.mix.put ? 'put' : undefined;
    return kind;
  }

  private async execute(kind: OpKind, listing: { token?: string; keys: number }, onBytes: (bytes: number) => void): Promise<OpOutcome> {
    const { client, content, plan } = this;
    switch (kind) {
      case 'put':
      case 'multipart': {
        const object = { key: `${plan.keyPrefix}${this.nextKey++}`, size: drawSize(plan.sizes) };
        if (kind === 'put') await client.putObject(object.key, object.size, content, onBytes);
        else await client.multipartUpload(object.key, object.size, plan.partSize, plan.partConcurrency, content, onBytes);
        this.objects.push(object);
        this.written.push(object);
        return { bytes: object.size, items: 1 };
      }
      case 'get': {
        const object = this.randomObject();
        return { bytes: await client.getObject(object.key, object.size, content, undefined, onBytes), items: 1 };
      }
      case 'ranged-get': {
        const object = this.randomObject();
        const length = Math.max(1, Math.min(object.size, drawSize(plan.rangeSizes)));
        const offset = Math.floor(Math.random() * (object.size - length + 1));
        return { bytes: await client.getObject(object.key, object.size, content, { offset, length }, onBytes), items: 1 };
      }
      case 'stat': {
        const object = this.randomObject();
        await client.headObject(object.key, object.size);
        return { bytes: 0, items: 1 };
      }
      case 'delete': {
        const batch = this.objects.splice(0, plan.deleteBatch).map((o) => o.key);
        if (batch.length === 1) await client.deleteObject(batch[0]!);
        else await client.deleteObjects(batch);
        return { bytes: 0, items: batch.length };
      }
      case 'list':
        return this.listPage(listing);
    }
  }

  private async listPage(listing: { token?: string; keys: number }): Promise<OpOutcome> {
    const page = await this.client.listPage(this.plan.listPrefix, this.plan.listMaxKeys, listing.token);
    listing.keys += page.keys;
    listing.token = page.nextToken;
    if (!page.nextToken) {
      const found = listing.keys;
      listing.keys = 0;
      const expected = this.plan.listExpectedKeys;
      if (expected !== undefined && found !== expected) {
        throw new S3RequestError('ListCountMismatch', `listing of '${this.plan.listPrefix}' found ${found} keys, expected ${expected}`);
      }
    }
    return { bytes: 0, items: page.keys };
  }

  private randomObject(): ObjectRef {
    return this.objects[Math.floor(Math.random() * this.objects.length)]!;
  }

  private statsOf(kind: OpKind): OpStats {
    let stats = this.stats.get(kind);
    if (!stats) this.stats.set(kind, (stats = new OpStats(this.startedAt)));
    return stats;
  }
}

function post(message: WorkerMessage): void {
  parentPort!.postMessage(message);
}

if (parentPort) {
  const worker = new LoadWorker(workerData as WorkerPlan);
  parentPort.once('message', (start: StartMessage) => {
    worker.run(start.startedAt).then(post, (err: unknown) => { throw err; });
  });
  post({ type: 'ready' });
}
