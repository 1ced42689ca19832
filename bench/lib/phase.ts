// One measured phase: create the objects it reads (not measured), run the load while sampling the
// server's processes, and summarise. Also the cleanup that removes what the phases wrote.
import type { Connection } from './connection.js';
import { runLoad, type LoadOptions } from './load.js';
import type { ObjectRef, WorkloadShape } from './load-types.js';
import { ProcessSampler } from './proc-stats.js';
import { progressLine, summarize, type Headline, type PhaseResult } from './report.js';
import { formatNumber, type SizeSpec } from './units.js';

export interface PhaseSpec extends WorkloadShape {
  scenario: string;
  title: string;
  headline: Headline;
  concurrency: number;
  clients: number;
  durationMs: number;
  /** The same load, run unmeasured before the measured run. */
  warmupMs: number;
  count: number;
  /** Objects to write before measuring, for phases that read, list or delete. */
  prepare?: { count: number; sizes: SizeSpec };
}

export interface PhaseRun {
  result: PhaseResult;
  /** Everything written (prepared and during the phase), for cleanup. */
  written: ObjectRef[];
}

/** Small objects are written with more in flight: a store's small PUTs are latency-bound. */
const PREPARE_CONCURRENCY = { small: 64, large: 16 };
const SMALL_OBJECT_BYTES = 1024 * 1024;
const NO_DEADLINE_MS = 24 * 3600 * 1000;

/** Runs one phase; `existing` objects (written by an earlier phase) replace its preparation. */
export async function runPhase(connection: Connection, spec: PhaseSpec, seed: string, runId: string, existing?: ObjectRef[]): Promise<PhaseRun> {
  const prefix = `bench-${runId}/${spec.scenario}/`;
  const base = { target: connection.target, seed, clients: spec.clients };
  let prepared: ObjectRef[] = existing ?? [];
  if (spec.prepare && !existing) {
    const progress = progressLine(`${connection.name} ${spec.title}: preparing ${spec.prepare.count} objects`);
    const load = await runLoad({
      ...spec, ...base, mix: { put: 1 }, sizes: spec.prepare.sizes, keyPrefix: `${prefix}prep/`,
      concurrency: Math.min(spec.prepare.sizes.max <= SMALL_OBJECT_BYTES ? PREPARE_CONCURRENCY.small : PREPARE_CONCURRENCY.large, spec.prepare.count), durationMs: NO_DEADLINE_MS, count: spec.prepare.count, objects: [],
    }, (p) => progress.update(`${p.ops}`));
    progress.done();
    const failures = load.stats.get('put')?.errors ?? {};
    if (Object.keys(failures).length > 0) throw new Error(`preparing objects failed: ${JSON.stringify(failures)}`);
    prepared = load.written;
  }
  const options: LoadOptions = {
    ...spec, ...base, keyPrefix: `${prefix}run/`, objects: prepared,
    listPrefix: spec.listPrefix || `${prefix}prep/`,
  };
  const warmup = await warmUp(connection, spec, { ...options, keyPrefix: `${prefix}warmup/` });
  const sampler = new ProcessSampler(connection.processes());
  const progress = progressLine(`${connection.name} ${spec.title}`);
  let last = { elapsedMs: 0, ops: 0, bytes: 0 };
  sampler.start();
  const load = await runLoad(options, (p) => {
    const seconds = (p.elapsedMs - last.elapsedMs) / 1000;
    progress.update(`${Math.round(p.elapsedMs / 1000)}s  ${formatNumber((p.ops - last.ops) / seconds)} ops/s  ` +
      `${formatNumber((p.bytes - last.bytes) / 1e6 / seconds)} MB/s  errors ${p.errors}`);
    last = p;
  });
  const processes = sampler.stop();
  progress.done();
  const settings: Record<string, string | number> = {
    concurrency: spec.concurrency, clients: spec.clients, prepared: prepared.length,
    ...(Number.isFinite(spec.count) ? { count: spec.count } : { durationMs: spec.durationMs }),
  };
  return {
    result: { target: connection.name, scenario: spec.scenario, title: spec.title, headline: spec.headline, settings, processes, ...summarize(load) },
    written: [...prepared, ...warmup, ...load.written],
  };
}

/**
 * Runs the phase's load for its warm-up time, unrecorded; returns what it wrote. A phase that
 * deletes would use up its objects, and one that stops after a count has no steady state to reach.
 */
async function warmUp(connection: Connection, spec: PhaseSpec, options: LoadOptions): Promise<ObjectRef[]> {
  if (spec.warmupMs <= 0 || Number.isFinite(spec.count) || spec.mix.delete) return [];
  const progress = progressLine(`${connection.name} ${spec.title}: warming up`);
  const load = await runLoad({ ...options, durationMs: spec.warmupMs }, (p) => progress.update(`${p.ops}`));
  progress.done();
  return load.written;
}

/** Deletes what a run wrote, 1,000 keys per DeleteObjects; best effort. */
export async function cleanup(connection: Connection, objects: ObjectRef[], seed: string): Promise<void> {
  if (objects.length === 0) return;
  await runLoad({
    target: connection.target, seed, clients: 1, concurrency: 4, durationMs: NO_DEADLINE_MS, count: Infinity,
    keyPrefix: 'unused/', objects, mix: { delete: 1 }, deleteBatch: 1000,
    sizes: { min: 0, max: 0 }, rangeSizes: { min: 0, max: 0 }, partSize: 0, partConcurrency: 1, listPrefix: '', listMaxKeys: 1000,
  });
}
