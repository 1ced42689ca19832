// One fault run end to end: the workload and the nemesis run together for a while; then every
// fault is undone, the cluster is healed, and the checker proves what the clients were promised.
// The CI test and the soak command both run this, for seconds or for minutes.
import { setTimeout as sleep } from 'node:timers/promises';
import { allUploadParts, allVersions, checkShards, emptyHealReport, healUploadPart, healVersion } from '../../../src/replication/heal.js';
import { checkErrors, checkListing, RegisterChecker, type Violation } from './checker.js';
import type { FaultCluster } from './fault-cluster.js';
import { History, type ReadOp } from './history.js';
import { Nemesis, type NemesisOptions, type NemesisReport } from './nemesis.js';
import { Random } from './random.js';
import { FaultS3Client } from './s3.js';
import { readKey, Workload, type WorkloadOptions } from './workload.js';

export interface ChaosOptions {
  seed: number;
  durationMs: number;
  workload: Omit<WorkloadOptions, 'bucket'>;
  nemesis: NemesisOptions;
  log?: (line: string) => void;
}

export interface ChaosSummary {
  seed: number;
  operations: number;
  faultsInjected: number;
  faults: NemesisReport['faults'];
  acknowledgedWrites: number;
  /** Acknowledged writes whose effect the settled state was checked against. */
  acknowledgedWritesChecked: number;
  lost: number;
  corruptReads: number;
  violations: Violation[];
  healFailures: string[];
  /** Wall time of each heal pass between rounds of faults. */
  roundHealMs: number[];
  /** Wall time of the full heal after the nemesis stopped. */
  finalHealMs: number;
  /** A second heal pass found nothing left to rebuild, and every shard of every version verifies. */
  redundancyRestored: boolean;
  /** Every object read back intact with `parityShards` nodes down after healing. */
  survivesParityLoss: boolean;
  errorsByStatus: Record<string, number>;
}

const BUCKET = 'faults';

export async function runChaos(cluster: FaultCluster, options: ChaosOptions): Promise<ChaosSummary> {
  const log = options.log ?? (() => undefined);
  const random = new Random(options.seed);
  const client = new FaultS3Client(cluster.endpoint, cluster, cluster.region, 20_000, options.workload.workers + 2);
  const history = new History();
  try {
    await untilOk(() => client.createBucket(BUCKET).then((r) => r.status === 200 || r.status === 409));
    const workload = new Workload(client, history, { ...options.workload, bucket: BUCKET }, random.fork(1));
    const nemesis = new Nemesis(cluster, random.fork(2), { ...options.nemesis, log });
    workload.start();
    nemesis.start();
    await sleep(options.durationMs);
    await nemesis.stop();
    await workload.stop();
    log(`workload stopped after ${workload.operations} operations; healing`);

    await cluster.restoreAll();
    const healStarted = Date.now();
    const healFailures = [...nemesis.report.healFailures, ...await finalHeal(cluster, log)];
    const finalHealMs = Date.now() - healStarted;
    const redundancyRestored = await nothingLeftToHeal(cluster, log);

    const checker = new RegisterChecker(history);
    const finalReads = await readSettled(client, history, BUCKET, history.keys);
    const violations = [
      ...checker.checkReads(),
      ...checker.checkFinal(finalReads),
      ...checkListing(history, finalReads, await client.listObjects(BUCKET)),
      ...checkErrors(history),
    ];
    const survivesParityLoss = await readsWithNodesDown(cluster, client, history, finalReads, random, options.nemesis.maxVictims, log);

    const acknowledged = history.writes.filter((w) => w.outcome === 'ok');
    return {
      seed: options.seed,
      operations: workload.operations,
      faultsInjected: nemesis.faultCount,
      faults: nemesis.report.faults,
      acknowledgedWrites: acknowledged.length,
      acknowledgedWritesChecked: acknowledged.filter((w) => finalReads.some((r) => r.key === w.key && r.value !== undefined)).length,
      lost: violations.filter((v) => v.kind === 'lost-write' || v.kind === 'deleted-came-back').length,
      corruptReads: violations.filter((v) => v.kind === 'corrupt-read').length,
      violations,
      healFailures,
      roundHealMs: nemesis.report.healMs,
      finalHealMs,
      redundancyRestored,
      survivesParityLoss,
      errorsByStatus: countStatuses(history),
    };
  } finally {
    await client.close();
  }
}

/** Retry `attempt` (up to ~a minute) until it reports success. */
async function untilOk(attempt: () => Promise<boolean>): Promise<void> {
  for (let tries = 1; ; tries++) {
    if (await attempt().catch(() => false)) return;
    if (tries === 30) throw new Error('the cluster did not recover within a minute');
    await sleep(2_000);
  }
}

/** Heal until a pass succeeds (a few tries: restarted nodes rejoin); else what failed and why. */
export async function finalHeal(cluster: FaultCluster, log: (line: string) => void = () => undefined): Promise<string[]> {
  for (let attempt = 1; attempt <= 5; attempt++) {
    const heal = await cluster.admin(['heal']);
    if (heal.code === 0) return [];
    log(`final heal attempt ${attempt} failed: ${heal.stdout.trim().split('\n').at(-1)} ${heal.stderr.trim().slice(0, 500)}`);
    await sleep(2_000);
  }
  return (await unhealableVersions(cluster)).map((problem) => `final heal: ${problem}`);
}

/** Versions and upload parts that one heal attempt cannot complete, with the reason (for the report). */
async function unhealableVersions(cluster: FaultCluster): Promise<string[]> {
  const store = await cluster.connectStore();
  const problems: string[] = [];
  const report = emptyHealReport();
  try {
    for await (const v of allVersions(store)) {
      const outcome = await healVersion(store, v.bucket, v.key, v.versionId, report)
        .then((result) => (result === 'done' ? '' : 'a write still unfinished'), (err: Error) => err.message);
      if (outcome) problems.push(`${v.bucket}/${v.key} version ${v.versionId}: ${outcome}`);
    }
    for await (const uploadPart of allUploadParts(store)) {
      const { part } = uploadPart;
      const healed = await healUploadPart(store, uploadPart).catch((err: Error) => err.message);
      if (healed !== 0) problems.push(`part ${part.partNumber} ${part.dataId} nodes ${part.nodes?.join(',')}: ${healed}`);
    }
  } finally {
    await store.close();
  }
  return problems.length ? problems : ['heal failed, but every version healed when tried one by one'];
}

/**
 * Full redundancy, checked below the S3 API: a second full heal rebuilds nothing, and every
 * shard of every stored version is on its node and verifies. (A scrub would also count parts of
 * uploads never completed, which are not objects and which heal leaves alone.)
 */
async function nothingLeftToHeal(cluster: FaultCluster, log: (line: string) => void): Promise<boolean> {
  const heal = await cluster.admin(['heal']);
  const done = /heal done: (\{.*\})/.exec(heal.stdout)?.[1];
  const report = done ? JSON.parse(done) as { healedShards: number; healedRecords: number; failed: number } : undefined;
  const problems = await unhealthyShards(cluster);
  const restored = heal.code === 0 && report?.healedShards === 0 && report.healedRecords === 0 && problems.length === 0;
  if (!restored) log(`redundancy not restored: ${heal.stdout.trim().split('\n').at(-1)} ${problems.slice(0, 20).join(', ')}`);
  return restored;
}

/** Shards of stored versions that are missing, corrupt, of the wrong length or unreachable, as `dataId.index@node state`. */
async function unhealthyShards(cluster: FaultCluster): Promise<string[]> {
  const store = await cluster.connectStore();
  const problems: string[] = [];
  try {
    for await (const version of allVersions(store)) {
      for (const segment of (version.segments ?? []).filter((s) => !s.inline)) {
        const { damaged, unanswered } = await checkShards(store, segment);
        const at = (index: number) => `${segment.dataId}.${index}@${segment.nodes![index]}`;
        for (const { index, state } of damaged) problems.push(`${at(index)} ${state}`);
        for (const id of unanswered.keys()) problems.push(`${at(segment.nodes!.indexOf(id))} unreachable`);
      }
    }
  } finally {
    await store.close();
  }
  return problems;
}

/** The settled value of each key (503s retried: nodes may still be rejoining). */
export async function readSettled(client: FaultS3Client, history: History, bucket: string, keys: string[]): Promise<ReadOp[]> {
  const reads: ReadOp[] = [];
  for (const key of keys) {
    let read = await readKey(client, history, bucket, key);
    for (let attempt = 0; read.value === undefined && !read.corrupt && attempt < 10; attempt++) {
      await sleep(1_000);
      read = await readKey(client, history, bucket, key);
    }
    reads.push(read);
  }
  return reads;
}

/** With `count` seeded nodes killed, every key still reads back exactly its settled value. */
async function readsWithNodesDown(cluster: FaultCluster, client: FaultS3Client, history: History, settled: ReadOp[],
  random: Random, count: number, log: (line: string) => void): Promise<boolean> {
  const down = [...cluster.nodeIds].sort(() => random.next() - 0.5).slice(0, count);
  for (const id of down) await cluster.killNode(id);
  try {
    for (const expected of settled) {
      const read = await readKey(client, history, BUCKET, expected.key);
      if (read.value !== expected.value) {
        log(`with ${down.join(', ')} down, ${expected.key} read ${read.status} (${read.value ?? 'no value'}), not ${expected.value}`);
        return false;
      }
    }
    return true;
  } finally {
    await cluster.restoreAll();
  }
}

function countStatuses(history: History): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const op of [...history.writes, ...history.reads, ...history.lists]) counts[op.status] = (counts[op.status] ?? 0) + 1;
  return counts;
}
