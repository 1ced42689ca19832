// `tessera admin status`: the cluster at a glance — nodes, erasure settings, objects and bytes,
// heal and rebalance progress, backups per disk. From a gateway (`--endpoint URL`, which knows
// heal and rebalance progress) or straight from the nodes (`--data DIR` / `--seeds`).
import type { ClusterClient } from '../replication/cluster-client.js';
import type { ClusterStatus, NodeStatus, Progress } from '../gateway/admin/status.js';
import { StatusTracker } from '../gateway/admin/status.js';
import { flag, hasFlag, type ParsedArgs } from './args.js';

export const STATUS_HELP = '  status [--endpoint URL] [--token T] [--json]  nodes, capacity, heal/rebalance progress, backups';

export async function runStatus(args: ParsedArgs, connect: () => Promise<ClusterClient>): Promise<number> {
  const endpoint = flag(args, 'endpoint') ?? process.env.TESSERA_ENDPOINT;
  const status = endpoint
    ? await fetchStatus(endpoint, flag(args, 'token') ?? process.env.TESSERA_METRICS_TOKEN)
    : await statusFromNodes(await connect());
  process.stdout.write(hasFlag(args, 'json') ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status, Date.now()));
  return status.writeQuorumReachable && status.nodes.every((n) => n.reachable || n.state === 'out') ? 0 : 1;
}

async function fetchStatus(endpoint: string, token: string | undefined): Promise<ClusterStatus> {
  const url = `${endpoint.replace(/\/+$/, '')}/_tessera/status`;
  const response = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  if (response.status === 401) throw new Error(`${url} wants a bearer token (--token or TESSERA_METRICS_TOKEN)`);
  if (!response.ok) throw new Error(`${url} answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as ClusterStatus;
}

async function statusFromNodes(store: ClusterClient): Promise<ClusterStatus> {
  try {
    return await new StatusTracker(store, false).status();
  } finally {
    await store.close();
  }
}

export function formatBytes(bytes: number | undefined): string {
  if (bytes === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

export function formatAge(ms: number | undefined, now: number): string {
  if (ms === undefined) return 'never';
  const seconds = Math.max(0, Math.round((now - ms) / 1000));
  if (seconds < 120) return `${seconds}s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m ago`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)}h ago`;
  return `${Math.round(seconds / 86_400)}d ago`;
}

function formatDuration(seconds: number | undefined): string {
  if (seconds === undefined) return 'unknown';
  if (seconds < 90) return `${seconds}s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)}m`;
  return `${(seconds / 3600).toFixed(1)}h`;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  return [header, ...rows].map((row) => `${row.map((v, c) => v.padEnd(widths[c]!)).join('  ').trimEnd()}\n`).join('');
}

function nodeCondition(node: NodeStatus): string {
  if (node.state === 'out') return 'out';
  if (!node.reachable) return 'DOWN';
  return node.slow ? `${node.state} (SLOW)` : node.state;
}

function progressLine(name: string, progress: Progress | undefined, extra = ''): string {
  if (!progress) return `${name}: n/a (ask a gateway: --endpoint URL)\n`;
  const rate = progress.ratePerSecond === undefined ? '' : `, ${progress.ratePerSecond.toFixed(1)}/s`;
  const eta = progress.pending ? `, ETA ${formatDuration(progress.etaSeconds)}` : '';
  return `${name}: ${progress.pending} pending, ${progress.done} done, ${progress.failed} failed${rate}${eta}${extra}\n`;
}

export function formatStatus(status: ClusterStatus, now: number): string {
  const { erasure, totals } = status;
  const up = status.nodes.filter((n) => n.reachable).length;
  let out = `cluster map epoch ${status.mapEpoch}, erasure ${erasure.dataShards}+${erasure.parityShards} ` +
    `(write quorum ${erasure.writeQuorum}), ${up} of ${status.nodes.length} nodes answering` +
    `${status.writeQuorumReachable ? '' : ' - NO WRITE QUORUM'}\n\n`;
  out += table(['NODE', 'STATE', 'ZONE', 'WEIGHT', 'ADDRESS', 'USED', 'FREE', 'CAPACITY', 'SHARDS', 'HEARTBEAT'],
    status.nodes.map((n) => [
      n.id, nodeCondition(n), n.zone || '-', String(n.weight), n.address, formatBytes(n.usedBytes), formatBytes(n.freeBytes),
      formatBytes(n.capacityBytes), n.shardCount === undefined ? '-' : String(n.shardCount), formatAge(n.lastHeartbeatMs, now),
    ]));
  out += `\nobjects: ${totals.objects}, stored ${formatBytes(totals.logicalBytes)} (${formatBytes(totals.rawUsedBytes)} on disk), ` +
    `free ${formatBytes(totals.freeBytes)} of ${formatBytes(totals.capacityBytes)}\n`;
  out += progressLine('heal', status.heal, status.heal ? `, ${status.heal.shardsRebuilt} shards rebuilt` : '');
  out += progressLine('rebalance', status.rebalance, status.rebalance ? `, ${formatBytes(status.rebalance.bytesMoved)} moved` : '');
  if (!status.backups.length) return `${out}backups: none found\n`;
  out += '\nbackups:\n';
  out += table(['BUCKET', 'DISK', 'SNAPSHOTS', 'LAST SNAPSHOT', 'AGE'], status.backups.map((b) => {
    const last = b.snapshots[b.snapshots.length - 1];
    return [b.bucket, b.disk, String(b.snapshots.length), last?.id ?? '-', formatAge(last?.timeMs, now)];
  }));
  return out;
}
