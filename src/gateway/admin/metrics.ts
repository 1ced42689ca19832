// The gateway's metrics: S3 requests by operation and status (count, latency, bytes in and out),
// and cluster gauges (nodes, disks, heal, rebalance, backups) refreshed from ClusterStatus at
// each scrape.
import type { IncomingMessage } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { counter, gauge, histogram } from '../../common/metrics.js';
import type { ClusterStatus } from './status.js';

const requests = counter('tessera_s3_requests_total', 'S3 requests answered, by operation and HTTP status', ['operation', 'status']);
const latency = histogram('tessera_s3_request_duration_seconds', 'S3 request latency to the end of the response, by operation',
  ['operation'], [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]);
const bytesIn = counter('tessera_s3_received_bytes_total', 'Request body bytes declared by S3 clients, by operation', ['operation']);
const bytesOut = counter('tessera_s3_sent_bytes_total', 'Response body bytes sent to S3 clients, by operation', ['operation']);

/** The S3 operation each request was routed to (unset: refused before routing). */
const operationOf = new WeakMap<IncomingMessage, string>();

export function noteOperation(request: IncomingMessage, name: string): void {
  operationOf.set(request, name);
}

function byteCount(value: string | number | string[] | undefined): number {
  const n = Number(Array.isArray(value) ? value[0] : value);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

/** onResponse hook for S3 requests (admin paths are not S3 operations and are not counted). */
export function observeS3Response(request: FastifyRequest, reply: FastifyReply): void {
  if (request.raw.url?.startsWith('/_tessera/') && !operationOf.has(request.raw)) return;
  const operation = operationOf.get(request.raw) ?? 'Unrouted';
  requests.inc({ operation, status: String(reply.statusCode) });
  latency.observe({ operation }, reply.elapsedTime / 1000);
  const received = byteCount(request.headers['x-amz-decoded-content-length'] ?? request.headers['content-length']);
  if (received) bytesIn.inc({ operation }, received);
  const sent = request.method === 'HEAD' ? 0 : byteCount(reply.getHeader('content-length'));
  if (sent) bytesOut.inc({ operation }, sent);
}

const nodeUp = gauge('tessera_node_up', '1 when the node answered the last health probe', ['node', 'zone']);
const nodeSlow = gauge('tessera_node_slow', '1 while the gateway works around the node for keeping reads or writes waiting', ['node']);
const nodeState = gauge('tessera_node_state', '1 for the node\'s state in the cluster map (up, draining, out)', ['node', 'state']);
const diskCapacity = gauge('tessera_node_capacity_bytes', 'Shard storage capacity of the node', ['node']);
const diskUsed = gauge('tessera_node_used_bytes', 'Shard bytes stored on the node', ['node']);
const diskFree = gauge('tessera_node_free_bytes', 'Shard storage left on the node', ['node']);
const nodeShards = gauge('tessera_node_shards', 'Shard files on the node', ['node']);
const clusterObjects = gauge('tessera_cluster_objects', 'Object versions in the cluster', []);
const writeQuorum = gauge('tessera_cluster_write_quorum_reachable', '1 when a write quorum of up nodes answers', []);
const healPending = gauge('tessera_heal_queue_pending', 'Object versions waiting to be healed', []);
const healDone = gauge('tessera_heal_versions_checked', 'Object versions the heal queue has processed since the gateway started', []);
const shardsRebuilt = gauge('tessera_heal_shards_rebuilt', 'Missing or corrupt shards the heal queue rebuilt since the gateway started', []);
const rebalancePending = gauge('tessera_rebalance_pending', 'Estimated object versions the running rebalance pass has still to visit', []);
const rebalanceBytes = gauge('tessera_rebalance_moved_bytes', 'Shard bytes moved by the current or last rebalance pass', []);
const backupSnapshots = gauge('tessera_backup_snapshots', 'Snapshots kept, per backed-up disk', ['bucket', 'disk']);
const backupBytes = gauge('tessera_backup_snapshot_bytes', 'Size of the newest snapshot index, per disk', ['bucket', 'disk']);
const backupLast = gauge('tessera_backup_last_snapshot_timestamp_seconds', 'Time of the newest snapshot, per disk', ['bucket', 'disk']);

/** Set the cluster gauges from a fresh status (series of vanished nodes and disks are dropped). */
export function setClusterGauges(status: ClusterStatus): void {
  for (const g of [nodeUp, nodeSlow, nodeState, diskCapacity, diskUsed, diskFree, nodeShards, backupSnapshots, backupBytes, backupLast]) g.reset();
  for (const node of status.nodes) {
    nodeUp.set({ node: node.id, zone: node.zone }, node.reachable ? 1 : 0);
    if (node.slow !== undefined) nodeSlow.set({ node: node.id }, node.slow ? 1 : 0);
    for (const state of ['up', 'draining', 'out']) nodeState.set({ node: node.id, state }, node.state === state ? 1 : 0);
    if (node.capacityBytes !== undefined) diskCapacity.set({ node: node.id }, node.capacityBytes);
    if (node.usedBytes !== undefined) diskUsed.set({ node: node.id }, node.usedBytes);
    if (node.freeBytes !== undefined) diskFree.set({ node: node.id }, node.freeBytes);
    if (node.shardCount !== undefined) nodeShards.set({ node: node.id }, node.shardCount);
  }
  clusterObjects.set(status.totals.objects);
  writeQuorum.set(status.writeQuorumReachable ? 1 : 0);
  if (status.heal) {
    healPending.set(status.heal.pending);
    healDone.set(status.heal.done);
    shardsRebuilt.set(status.heal.shardsRebuilt);
  }
  if (status.rebalance) {
    rebalancePending.set(status.rebalance.pending);
    rebalanceBytes.set(status.rebalance.bytesMoved);
  }
  for (const { bucket, disk, snapshots } of status.backups) {
    const newest = snapshots[snapshots.length - 1];
    backupSnapshots.set({ bucket, disk }, snapshots.length);
    if (newest) {
      backupBytes.set({ bucket, disk }, newest.bytes);
      backupLast.set({ bucket, disk }, newest.timeMs / 1000);
    }
  }
}
