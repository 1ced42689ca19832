// Rebalancing: after the cluster map changes, move each version whose placement moved —
// copy the displaced shards to their new nodes, switch the metadata, then drop the old copies.
// Metadata names where shards are, so reads work at every step. Idempotent, hence resumable:
// a pass interrupted anywhere is finished by the next one. Throttled by bytes per second.
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClusterClient } from './cluster-client.js';
import { allVersions, rewriteShards } from './heal.js';
import { shardSize, layoutOf } from './layout.js';
import type { DataSegment, ObjectVersion } from './types.js';

export interface RebalanceOptions {
  /** Shard bytes copied per second at most (0: unthrottled). */
  bytesPerSecond?: number;
  onProgress?: (progress: RebalanceProgress) => void;
  signal?: AbortSignal;
}

export interface RebalanceProgress {
  scanned: number;
  moved: number;
  shardsMoved: number;
  bytesMoved: number;
  failed: number;
}

export async function rebalance(store: ClusterClient, options: RebalanceOptions = {}): Promise<RebalanceProgress> {
  const progress: RebalanceProgress = { scanned: 0, moved: 0, shardsMoved: 0, bytesMoved: 0, failed: 0 };
  const started = Date.now();
  for await (const version of allVersions(store)) {
    if (options.signal?.aborted) break;
    progress.scanned++;
    try {
      if (await moveVersion(store, version, progress)) progress.moved++;
    } catch {
      progress.failed++;
    }
    options.onProgress?.(progress);
    if (options.bytesPerSecond) {
      const due = started + (progress.bytesMoved / options.bytesPerSecond) * 1000;
      if (due > Date.now()) await sleep(due - Date.now());
    }
  }
  return progress;
}

/** Keep shards on nodes that stay in the placement; give displaced shard indexes to the newcomers. */
export function reassign(current: readonly string[], target: readonly string[]): string[] {
  const free = target.filter((id) => !current.includes(id));
  return current.map((id) => (target.includes(id) ? id : free.shift() ?? id));
}

async function moveVersion(store: ClusterClient, version: ObjectVersion, progress: RebalanceProgress): Promise<boolean> {
  const target = store.placement(version.bucket, version.key);
  const oldHolders = await store.metadataHolders(version);
  const segments: DataSegment[] = [];
  const displaced: DataSegment[] = [];
  for (const segment of version.segments ?? []) {
    const nodes = reassign(segment.nodes ?? [], target);
    const moved = nodes.flatMap((id, i) => (id === segment.nodes![i] ? [] : [i]));
    if (moved.length && !segment.inline) {
      await rewriteShards(store, segment, moved, moved.map((i) => nodes[i]!));
      progress.shardsMoved += moved.length;
      progress.bytesMoved += moved.length * shardSize(Number(segment.size), layoutOf(segment));
      displaced.push({ ...segment, nodes: segment.nodes!.map((id, i) => (moved.includes(i) ? id : '')) });
    }
    segments.push({ ...segment, nodes });
  }
  const recordsMoved = oldHolders.some((id) => !target.includes(id)) || target.some((id) => !oldHolders.includes(id));
  if (!displaced.length && !recordsMoved) return false;
  await store.relocateVersion(version, segments, oldHolders.filter((id) => !target.includes(id)));
  await store.discardSegments(displaced);
  return true;
}
