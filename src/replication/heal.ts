// Healing: bring every placement node of a version back to holding its metadata record and its
// shard, rebuilding missing or corrupt shards from k good ones. Degraded reads and partial
// writes queue versions here; `scan` walks every version in the cluster (the full heal).
import { StoreError } from '../common/errors.js';
import { pb, stampOf } from '../common/node-service.js';
import type { ClusterClient } from './cluster-client.js';
import { layoutOf, shardSize } from './layout.js';
import { rebuildShards } from './reader.js';
import type { DataSegment, ObjectVersion } from './types.js';
import { storedWhole } from './writer.js';

const RETRY_MS = 5_000;
const MAX_QUEUE = 100_000;
/** What a full heal could not heal, and why, is listed up to this many entries. */
const MAX_LISTED_UNHEALED = 20;

export interface HealReport {
  versions: number;
  healedShards: number;
  healedRecords: number;
  /** Writes still in flight (not acknowledged, too young to revert): left for a later heal. */
  unfinished: number;
  failed: number;
}

export function emptyHealReport(): HealReport {
  return { versions: 0, healedShards: 0, healedRecords: 0, unfinished: 0, failed: 0 };
}

/** What healing one version came to; failures throw. */
type HealOutcome = 'done' | 'unfinished';

export interface ScanProgress {
  scanned: number;
  report: HealReport;
  /** The first versions and upload parts that could not be healed, each with the reason. */
  unhealed: string[];
}

export class HealQueue {
  private readonly queued = new Map<string, [string, string, string]>();
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  readonly totals = emptyHealReport();

  constructor(private readonly store: ClusterClient) {}

  get pending(): number {
    return this.queued.size;
  }

  enqueue(bucket: string, key: string, versionId: string): void {
    if (this.stopped || this.queued.size >= MAX_QUEUE) return;
    this.queued.set(`${bucket}\u0000${key}\u0000${versionId}`, [bucket, key, versionId]);
    this.schedule(0);
  }

  private schedule(delay: number): void {
    if (this.running || this.timer || this.stopped) return;
    this.timer = setTimeout(() => { this.timer = undefined; void this.drain(); }, delay);
    this.timer.unref();
  }

  private async drain(): Promise<void> {
    this.running = true;
    const retry: Array<[string, string, string]> = [];
    try {
      for (const [id, [bucket, key, versionId]] of this.queued) {
        if (this.stopped) return;
        this.queued.delete(id);
        const outcome = await healVersion(this.store, bucket, key, versionId, this.totals).catch(() => {
          this.totals.failed++;
          return 'failed';
        });
        if (outcome !== 'done') retry.push([bucket, key, versionId]);
      }
    } finally {
      this.running = false;
    }
    for (const [bucket, key, versionId] of retry) this.queued.set(`${bucket}\u0000${key}\u0000${versionId}`, [bucket, key, versionId]);
    if (this.queued.size) this.schedule(RETRY_MS);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }
}

/**
 * Heal one version: as much as can be done now. Throws (the first reason) when it could not be
 * completed (a node is down); the caller retries later, as it does an unfinished write.
 */
export async function healVersion(store: ClusterClient, bucket: string, key: string, versionId: string,
  report: HealReport): Promise<HealOutcome> {
  // Every node, so that one still holding a version deleted while it was away hears of the delete.
  const version = await store.getVersion(bucket, key, versionId, { askEveryNode: true });
  report.versions++;
  if (!version) return 'done';
  if (store.isUnfinishedWrite(version)) {
    report.unfinished++;
    return 'unfinished';
  }
  const problems: unknown[] = [];
  for (const segment of version.segments ?? []) {
    if (segment.inline) continue;
    await healSegment(store, segment).then((healed) => { report.healedShards += healed; }, (err: unknown) => { problems.push(err); });
  }
  const records = await store.repairRecords(version);
  if (records.unanswered) problems.push(unanswered('its record', records.unanswered));
  report.healedRecords += records.repaired;
  // A version overwritten or deleted meanwhile may have lost its shards with it: nothing to heal.
  if (problems.length && !(await replacedSince(store, version))) throw problems[0];
  return 'done';
}

/** Whether the stored version is no longer the one that was being healed (asking again fails: no). */
async function replacedSince(store: ClusterClient, healed: ObjectVersion): Promise<boolean> {
  const now = await store.getVersion(healed.bucket, healed.key, healed.versionId).catch(() => healed);
  if (!now) return true;
  const [was, is] = [stampOf(healed), stampOf(now)];
  return was.hlc !== is.hlc || was.revision !== is.revision;
}

function unanswered(what: string, failed: Map<string, StoreError>): StoreError {
  const [[id, err]] = failed;
  return new StoreError('Unavailable', `${what}: node ${id} did not answer (${err.message})`);
}

/** Rebuild the shards of a segment that are missing or corrupt; throws if a holder is unreachable. */
export async function healSegment(store: ClusterClient, segment: DataSegment): Promise<number> {
  const { damaged, unanswered: silent } = await checkShards(store, segment);
  if (damaged.length) await rewriteShards(store, segment, damaged.map((d) => d.index));
  if (silent.size) throw unanswered(`shards of ${segment.dataId}`, silent);
  return damaged.length;
}

export interface ShardDamage {
  index: number;
  /** MISSING, CORRUPT, or SHORT/LONG: a file that verifies but holds another length than the layout gives. */
  state: string;
}

/** Each placement node's verdict on its shard of a segment: the damaged shards, and the nodes that did not answer. */
export async function checkShards(store: ClusterClient, segment: DataSegment): Promise<{ damaged: ShardDamage[]; unanswered: Map<string, StoreError> }> {
  const nodes = segment.nodes ?? [];
  const result = await store.cluster.fanOut(nodes, (client, id) =>
    client.verifyShards([{ dataId: segment.dataId, shardIndex: nodes.indexOf(id) }]));
  const expected = shardSize(Number(segment.size), layoutOf(segment));
  const damaged: ShardDamage[] = [];
  nodes.forEach((id, index) => {
    const status = result.ok.get(id)?.shards?.[0];
    const state = status && shardState(status, expected);
    if (state && state !== 'OK') damaged.push({ index, state });
  });
  return { damaged, unanswered: result.failed };
}

function shardState(status: pb.IShardStatus, expectedBytes: number): string {
  if (status.state !== pb.ShardStatus.State.OK) return pb.ShardStatus.State[status.state ?? 0];
  const bytes = Number(status.dataBytes);
  return bytes === expectedBytes ? 'OK' : bytes < expectedBytes ? 'SHORT' : 'LONG';
}

/** Rebuild shards `indexes` of a segment from the others and write them to `targets` (default: their own nodes). */
export async function rewriteShards(store: ClusterClient, segment: DataSegment, indexes: number[],
  targets: string[] = indexes.map((i) => segment.nodes![i]!)): Promise<void> {
  const blockSize = segment.layout!.blockSize!;
  const writers = indexes.map((shardIndex, n) =>
    store.cluster.client(targets[n]!).openShardWriter({ dataId: segment.dataId, shardIndex, blockSize }));
  try {
    for await (const blocks of rebuildShards(store.cluster, segment, indexes)) {
      await Promise.all(writers.map((w, n) => w.write(blocks[n]!)));
    }
  } catch (err) {
    for (const w of writers) w.abort();
    throw err;
  }
  const results = await Promise.all(writers.map((w) => w.finish()));
  const expected = shardSize(Number(segment.size), layoutOf(segment));
  const short = writers.findIndex((_, n) => !storedWhole(results[n], expected));
  if (short >= 0) {
    const writer = writers[short]!;
    throw writer.failed ?? new StoreError('Unavailable', `shard rewrite on ${writer.nodeId} stored ${results[short]?.bytes ?? 0} of ${expected} bytes`);
  }
}

/**
 * Walk every version and every part of uploads in progress in the cluster and heal them;
 * `onProgress` sees each step.
 */
export async function scanAndHeal(store: ClusterClient, onProgress: (p: ScanProgress) => void = () => undefined): Promise<ScanProgress> {
  const progress: ScanProgress = { scanned: 0, report: emptyHealReport(), unhealed: [] };
  const unhealed = (what: string) => (err: unknown) => {
    progress.report.failed++;
    if (progress.unhealed.length < MAX_LISTED_UNHEALED) progress.unhealed.push(`${what}: ${(err as Error).message}`);
  };
  for await (const version of allVersions(store)) {
    progress.scanned++;
    await healVersion(store, version.bucket, version.key, version.versionId, progress.report)
      .catch(unhealed(`${version.bucket}/${version.key} version ${version.versionId}`));
    onProgress(progress);
  }
  for await (const uploadPart of allUploadParts(store)) {
    progress.scanned++;
    const { part } = uploadPart;
    await healUploadPart(store, uploadPart).then((healed) => { progress.report.healedShards += healed; }, unhealed(`upload part ${part.partNumber} (${part.dataId})`));
    onProgress(progress);
  }
  return progress;
}

/** A part of a multipart upload in progress. */
export interface UploadPart {
  upload: { bucket: string; key: string; uploadId: string };
  part: DataSegment;
}

/** Heal one part; a part its upload no longer has (completed or aborted meanwhile) needs nothing. */
export async function healUploadPart(store: ClusterClient, { upload, part }: UploadPart): Promise<number> {
  try {
    return await healSegment(store, part);
  } catch (err) {
    // Asking again fails: keep the part, and the failure.
    const record = await store.getUpload(upload.bucket, upload.key, upload.uploadId).catch(() => ({ parts: [part] }));
    if (record?.parts?.some((p) => p.dataId === part.dataId)) throw err;
    return 0;
  }
}

/**
 * The parts of every multipart upload in progress. An upload that a complete already made into a
 * version, but whose end never arrived (its gateway died in between), is ended on the way.
 */
export async function* allUploadParts(store: ClusterClient, pageSize = 500): AsyncGenerator<UploadPart> {
  for (const bucket of await store.listBucketNames()) {
    let keyMarker = '';
    let uploadIdMarker = '';
    for (;;) {
      const uploads = await store.listUploads(bucket, { keyMarker, uploadIdMarker, limit: pageSize });
      for (const upload of uploads.slice(0, pageSize)) {
        const ref = { bucket, key: upload.key!, uploadId: upload.uploadId! };
        const record = await store.getUpload(bucket, ref.key, ref.uploadId);
        if (record && !(await store.endCompletedUpload({ ...record, ...ref }))) {
          for (const part of record.parts ?? []) yield { upload: ref, part };
        }
      }
      if (uploads.length <= pageSize) break;
      keyMarker = uploads[pageSize - 1]!.key!;
      uploadIdMarker = uploads[pageSize - 1]!.uploadId!;
    }
  }
}

/** Every version of every object in every bucket, from all member nodes. */
export async function* allVersions(store: ClusterClient, pageSize = 500): AsyncGenerator<ObjectVersion> {
  for (const bucket of await store.listBucketNames()) {
    let startAfter = '';
    let startAfterVersion = '';
    for (;;) {
      const page = await store.list(bucket, { allVersions: true, includeDeleteMarkers: true, startAfter, startAfterVersion, limit: pageSize });
      for (const item of page.items) if (item.version) yield item.version;
      const last = page.items.at(-1)?.version;
      if (!page.truncated || !last) break;
      startAfter = last.key;
      startAfterVersion = last.versionId;
    }
  }
}
