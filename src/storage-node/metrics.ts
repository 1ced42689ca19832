// A storage node's metrics: shard traffic and corruption counted where shards are written and
// read (shard-store.ts), disk gauges from the node's own Health answer, served over HTTP at
// `tessera node --metrics-listen HOST:PORT` (the gRPC port speaks no HTTP).
import { counter, gauge, onScrape, serveMetrics } from '../common/metrics.js';
import type { pb } from '../common/node-service.js';

const shardsWritten = counter('tessera_node_shard_writes_total', 'Shards written durably', []);
const bytesWritten = counter('tessera_node_shard_written_bytes_total', 'Shard data bytes written', []);
const blocksRead = counter('tessera_node_shard_block_reads_total', 'Shard blocks read and checked', []);
const bytesRead = counter('tessera_node_shard_read_bytes_total', 'Shard data bytes read', []);
const corruptBlocks = counter('tessera_node_corrupt_blocks_total', 'Shard blocks that failed their xxHash64 check', []);

export const shardMetrics = {
  written(bytes: number): void {
    shardsWritten.inc();
    bytesWritten.inc(bytes);
  },
  read(bytes: number): void {
    blocksRead.inc();
    bytesRead.inc(bytes);
  },
  corrupt(): void {
    corruptBlocks.inc();
  },
};

const capacity = gauge('tessera_node_disk_capacity_bytes', 'Shard storage capacity of this node', []);
const used = gauge('tessera_node_disk_used_bytes', 'Shard bytes stored on this node', []);
const free = gauge('tessera_node_disk_free_bytes', 'Shard storage left on this node', []);
const shardFiles = gauge('tessera_node_shard_files', 'Shard files on this node', []);
const objectRecords = gauge('tessera_node_object_records', 'Object version records on this node', []);
const mapEpoch = gauge('tessera_node_map_epoch', 'Epoch of the cluster map this node holds', []);

/** Serve this process's metrics, refreshing the disk gauges from `health` at each scrape. */
export async function serveNodeMetrics(listen: string, health: () => Promise<pb.IHealthResult>, token?: string): Promise<{ address: string; close(): Promise<void> }> {
  const stopRefresh = onScrape(async () => {
    const h = await health();
    capacity.set(Number(h.capacityBytes ?? 0));
    used.set(Number(h.usedBytes ?? 0));
    free.set(Number(h.freeBytes ?? 0));
    shardFiles.set(Number(h.shardCount ?? 0));
    objectRecords.set(Number(h.objectCount ?? 0));
    mapEpoch.set(Number(h.mapEpoch ?? 0));
  });
  const server = await serveMetrics(listen, token);
  return { address: server.address, close: async () => { stopRefresh(); await server.close(); } };
}
