// The cluster as an operator sees it: every node with its state, zone, weight, disk usage and last
// heartbeat; the erasure settings; object and byte totals; heal and rebalance progress with an
// ETA; backup repositories per disk. One JSON document (`ClusterStatus`) feeds `tessera admin
// status`, the console and the cluster gauges of /_tessera/metrics.
import { pb } from '../../common/node-service.js';
import type { ClusterClient } from '../../replication/cluster-client.js';
import { writeQuorum } from '../../replication/layout.js';

export type NodeStateName = 'up' | 'draining' | 'out';

export interface NodeStatus {
  id: string;
  address: string;
  zone: string;
  weight: number;
  state: NodeStateName;
  /** Answered the last health probe. */
  reachable: boolean;
  /**
   * Kept reads or writes waiting far behind its peers in the last seconds, so the gateway works
   * around it (docs/architecture.md, "Slow nodes"). Only in a gateway's status.
   */
  slow?: boolean;
  /** When the node last answered a probe from this process (ms since epoch), if ever. */
  lastHeartbeatMs?: number;
  capacityBytes?: number;
  usedBytes?: number;
  freeBytes?: number;
  shardCount?: number;
  /** Object version records on this node (each version has one on each of its k+m nodes). */
  objectCount?: number;
  uptimeMs?: number;
}

export interface Progress {
  pending: number;
  done: number;
  failed: number;
  /** Items per second over the last minute; undefined until there are two samples. */
  ratePerSecond?: number;
  /** Seconds until `pending` reaches zero at the current rate. */
  etaSeconds?: number;
}

export interface SnapshotSummary {
  id: string;
  timeMs: number;
  bytes: number;
}

export interface DiskBackups {
  bucket: string;
  disk: string;
  snapshots: SnapshotSummary[];
}

/** Cluster disk usage at one moment (the gateway samples it once a minute). */
export interface UsageSample {
  ms: number;
  usedBytes: number;
  capacityBytes: number;
}

export interface ClusterStatus {
  generatedMs: number;
  mapEpoch: number;
  erasure: { dataShards: number; parityShards: number; writeQuorum: number };
  nodes: NodeStatus[];
  zones: string[];
  totals: {
    /** Object versions (records on all nodes divided by k+m). */
    objects: number;
    /** Bytes on disk across nodes (shards and parity). */
    rawUsedBytes: number;
    /** Raw bytes times k/(k+m): what clients stored. */
    logicalBytes: number;
    capacityBytes: number;
    freeBytes: number;
  };
  /** Up nodes that answer, against the write quorum. */
  writeQuorumReachable: boolean;
  /** Undefined when the status was built without a gateway (no heal queue or rebalancer here). */
  heal?: Progress & { shardsRebuilt: number; recordsRebuilt: number };
  rebalance?: Progress & { running: boolean; bytesMoved: number };
  backups: DiskBackups[];
  /** Raw usage over the last hours, oldest first (empty without a gateway). */
  usageHistory: UsageSample[];
}

const STATE_NAMES: Record<number, NodeStateName> = { [pb.NodeState.UP]: 'up', [pb.NodeState.DRAINING]: 'draining', [pb.NodeState.OUT]: 'out' };
const RATE_WINDOW_MS = 60_000;
const BACKUP_CACHE_MS = 10_000;
const MAX_SNAPSHOTS_PER_BUCKET = 10_000;
const USAGE_SAMPLE_MS = 60_000;
const USAGE_HISTORY_SAMPLES = 6 * 60;

/** Counts sampled over time, for a rate and an ETA. */
class RateSampler {
  private samples: Array<{ ms: number; done: number }> = [];

  add(done: number, now: number): number | undefined {
    this.samples.push({ ms: now, done });
    this.samples = this.samples.filter((s) => now - s.ms <= RATE_WINDOW_MS);
    const first = this.samples[0]!;
    if (now - first.ms < 1_000) return undefined;
    return Math.max(0, (done - first.done) * 1000 / (now - first.ms));
  }
}

function progressOf(pending: number, done: number, failed: number, rate: number | undefined): Progress {
  const eta = rate && rate > 0 ? Math.ceil(pending / rate) : pending === 0 ? 0 : undefined;
  return { pending, done, failed, ratePerSecond: rate, etaSeconds: eta };
}

/**
 * Builds ClusterStatus from a cluster client, remembering heartbeats, progress and usage between
 * calls. `inGateway`: the process runs the heal queue and rebalancer and lives long enough for
 * rates and history; `startProbing` keeps heartbeats and gauges fresh between requests.
 */
export class StatusTracker {
  private readonly heartbeats = new Map<string, number>();
  private readonly usageHistory: UsageSample[] = [];
  private readonly healRate = new RateSampler();
  private readonly rebalanceRate = new RateSampler();
  private backups: { at: number; value: Promise<DiskBackups[]> } | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly store: ClusterClient, private readonly inGateway: boolean) {}

  startProbing(intervalMs = 5_000): void {
    this.timer = setInterval(() => void this.probe().catch(() => undefined), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Health of every node in the map that answers now; records their heartbeats. */
  async probe(): Promise<Map<string, pb.HealthResult>> {
    const answered = await this.store.cluster.probe();
    const now = Date.now();
    for (const id of answered.keys()) this.heartbeats.set(id, now);
    this.sampleUsage(now, answered);
    return answered;
  }

  private sampleUsage(now: number, health: Map<string, pb.HealthResult>): void {
    const last = this.usageHistory[this.usageHistory.length - 1];
    if (!this.inGateway || !health.size || (last && now - last.ms < USAGE_SAMPLE_MS)) return;
    const sum = (field: 'usedBytes' | 'capacityBytes') => [...health.values()].reduce((total, h) => total + Number(h[field] ?? 0), 0);
    this.usageHistory.push({ ms: now, usedBytes: sum('usedBytes'), capacityBytes: sum('capacityBytes') });
    if (this.usageHistory.length > USAGE_HISTORY_SAMPLES) this.usageHistory.shift();
  }

  /** Ready to take writes: at least a write quorum of up nodes answers. */
  async writeQuorumReachable(): Promise<boolean> {
    return quorumReachable(this.store.cluster.map, await this.probe());
  }

  async status(): Promise<ClusterStatus> {
    const map = this.store.cluster.map;
    const [health, backups] = await Promise.all([this.probe(), this.backupSummary()]);
    const now = Date.now();
    const nodes = (map.nodes ?? []).map((node) => this.nodeStatus(node, health.get(node.id!)));
    const dataShards = map.dataShards ?? 1;
    const parityShards = map.parityShards ?? 0;
    const width = dataShards + parityShards;
    const sum = (field: keyof pb.IHealthResult) => [...health.values()].reduce((total, h) => total + Number(h[field] ?? 0), 0);
    const rawUsedBytes = sum('usedBytes');
    return {
      generatedMs: now,
      mapEpoch: Number(map.epoch ?? 0),
      erasure: { dataShards, parityShards, writeQuorum: writeQuorum(dataShards, parityShards) },
      nodes,
      zones: [...new Set(nodes.map((n) => n.zone))].sort(),
      totals: {
        objects: Math.round(sum('objectCount') / width),
        rawUsedBytes,
        logicalBytes: Math.round(rawUsedBytes * dataShards / width),
        capacityBytes: sum('capacityBytes'),
        freeBytes: sum('freeBytes'),
      },
      writeQuorumReachable: quorumReachable(map, health),
      ...(this.inGateway ? this.queues(now, Math.round(sum('objectCount') / width)) : {}),
      backups,
      usageHistory: [...this.usageHistory],
    };
  }

  private nodeStatus(node: pb.INodeInfo, health: pb.HealthResult | undefined): NodeStatus {
    return {
      id: node.id!,
      address: node.address ?? '',
      zone: node.zone ?? '',
      weight: Number(node.weight ?? 1),
      state: STATE_NAMES[node.state ?? pb.NodeState.UP] ?? 'up',
      reachable: health !== undefined,
      ...(this.inGateway ? { slow: this.store.cluster.isLikelySlow(node.id!) } : {}),
      lastHeartbeatMs: this.heartbeats.get(node.id!),
      ...(health ? {
        capacityBytes: Number(health.capacityBytes),
        usedBytes: Number(health.usedBytes),
        freeBytes: Number(health.freeBytes),
        shardCount: Number(health.shardCount),
        objectCount: Number(health.objectCount),
        uptimeMs: Number(health.uptimeMs),
      } : {}),
    };
  }

  private queues(now: number, objects: number): Pick<ClusterStatus, 'heal' | 'rebalance'> {
    const heal = this.store.heal;
    const healDone = heal.totals.versions;
    const pass = this.store.rebalanceProgress;
    const scanned = pass?.scanned ?? 0;
    // A pass visits every version once; the object count is the best estimate of its length
    // (the cluster client keeps the last pass's progress, so a finished pass reads as done).
    const rebalancePending = pass ? Math.max(0, objects - scanned) : 0;
    const running = rebalancePending > 0;
    return {
      heal: {
        ...progressOf(heal.pending, healDone, heal.totals.failed, this.healRate.add(healDone, now)),
        shardsRebuilt: heal.totals.healedShards,
        recordsRebuilt: heal.totals.healedRecords,
      },
      rebalance: {
        ...progressOf(rebalancePending, pass?.moved ?? 0, pass?.failed ?? 0, this.rebalanceRate.add(scanned, now)),
        running,
        bytesMoved: pass?.bytesMoved ?? 0,
      },
    };
  }

  /** Backup repositories (buckets holding a `config` and `snapshots/<disk>/<id>` keys), cached briefly. */
  private backupSummary(): Promise<DiskBackups[]> {
    const now = Date.now();
    if (!this.backups || now - this.backups.at > BACKUP_CACHE_MS) {
      this.backups = { at: now, value: listBackups(this.store).catch(() => []) };
    }
    return this.backups.value;
  }
}

function quorumReachable(map: pb.IClusterMap, health: Map<string, unknown>): boolean {
  const up = (map.nodes ?? []).filter((n) => (n.state ?? pb.NodeState.UP) === pb.NodeState.UP && health.has(n.id!)).length;
  return up >= writeQuorum(map.dataShards ?? 1, map.parityShards ?? 0);
}

/** Snapshot ids begin with their UTC time: `20261128T074000123Z-1a2b3c4d`. */
export function snapshotTime(id: string): number | undefined {
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z/.exec(id);
  if (!match) return undefined;
  const [, y, mo, d, h, mi, s, ms] = match.map(Number) as number[];
  return Date.UTC(y!, mo! - 1, d!, h!, mi!, s!, ms!);
}

/**
 * Reads only object names and sizes (snapshot bodies may be encrypted with a key the gateway
 * does not hold); the time comes from the snapshot id.
 */
export async function listBackups(store: ClusterClient): Promise<DiskBackups[]> {
  const result: DiskBackups[] = [];
  for (const bucket of await store.listBucketNames()) {
    const config = await store.getVersion(bucket, 'config').catch(() => undefined);
    if (!config || config.deleteMarker) continue;
    const { items } = await store.list(bucket, { prefix: 'snapshots/', limit: MAX_SNAPSHOTS_PER_BUCKET });
    const byDisk = new Map<string, SnapshotSummary[]>();
    for (const item of items) {
      const key = item.version?.key;
      if (!key) continue;
      const [, disk, id] = /^snapshots\/(.+)\/([^/]+)$/.exec(key) ?? [];
      const timeMs = id ? snapshotTime(id) : undefined;
      if (!disk || !id || timeMs === undefined) continue;
      byDisk.set(disk, [...(byDisk.get(disk) ?? []), { id, timeMs, bytes: Number(item.version!.size ?? 0) }]);
    }
    for (const [disk, snapshots] of byDisk) result.push({ bucket, disk, snapshots: snapshots.sort((a, b) => a.timeMs - b.timeMs) });
  }
  return result;
}
