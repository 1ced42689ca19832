// The scrubber reads every shard file and checks every block, so bit rot is found before a read
// needs the shard. It also reports shards the local metadata expects but the disk lacks (MISSING)
// and files nothing refers to (orphans: leftovers of failed writes, temp files of a killed
// process), and can remove orphans once they are older than a grace period.
import { setTimeout as sleep } from 'node:timers/promises';
import type { MetaStore } from './meta-store.js';
import { shardName, unreadableShard, type ShardCheck, type ShardFileEntry, type ShardRef, type ShardStore } from './shard-store.js';

export interface ScrubOptions {
  orphanGraceMs: number;
  removeOrphans: boolean;
  /** Read at most this many bytes per second (0: as fast as the disk goes). */
  bytesPerSecond?: number;
  /** Stops the scrub between blocks (it then rejects with the signal's reason). */
  signal?: AbortSignal;
}

export interface ScrubResult {
  shardsChecked: number;
  bytesChecked: number;
  corrupt: ShardCheck[];
  missing: ShardCheck[];
  orphans: ShardRef[];
  orphansRemoved: number;
}

/** Paces reads to a byte rate by sleeping whenever reading has run ahead of it. */
function throttle(bytesPerSecond: number | undefined, signal: AbortSignal | undefined): (bytes: number) => Promise<void> {
  const started = Date.now();
  let total = 0;
  return async (bytes) => {
    signal?.throwIfAborted();
    if (!bytesPerSecond) return;
    total += bytes;
    const ahead = (total / bytesPerSecond) * 1000 - (Date.now() - started);
    if (ahead > 5) await sleep(ahead, undefined, { signal });
  };
}

/** What the local metadata refers to: every data id, and the shards this node should hold. */
async function references(meta: MetaStore, nodeId: string): Promise<{ dataIds: Set<string>; expected: Map<string, ShardRef> }> {
  const dataIds = new Set<string>();
  const expected = new Map<string, ShardRef>();
  for await (const segment of meta.referencedSegments()) {
    if (segment.inline || !segment.dataId) continue;
    dataIds.add(segment.dataId);
    (segment.nodes ?? []).forEach((node, shardIndex) => {
      const ref = { dataId: segment.dataId!, shardIndex };
      if (node === nodeId) expected.set(shardName(ref), ref);
    });
  }
  return { dataIds, expected };
}

export async function scrub(shards: ShardStore, meta: MetaStore, nodeId: string, options: ScrubOptions): Promise<ScrubResult> {
  const result: ScrubResult = { shardsChecked: 0, bytesChecked: 0, corrupt: [], missing: [], orphans: [], orphansRemoved: 0 };
  const pace = throttle(options.bytesPerSecond, options.signal);
  const found = new Set<string>();
  const orphanCandidates: ShardFileEntry[] = [];
  const now = Date.now();
  for await (const file of shards.files()) {
    options.signal?.throwIfAborted();
    if (file.temp) { orphanCandidates.push(file); continue; }
    found.add(shardName(file.shard));
    const check = await shards.verify(file.shard, pace);
    result.shardsChecked++;
    result.bytesChecked += check.bytes;
    if (check.state === 'CORRUPT') result.corrupt.push(check);
    if (now - file.mtimeMs >= options.orphanGraceMs) orphanCandidates.push(file);
  }
  // Read references after the walk, so a shard whose metadata landed meanwhile is not an orphan.
  const { dataIds, expected } = await references(meta, nodeId);
  for (const [name, shard] of expected) {
    if (!found.has(name)) result.missing.push(unreadableShard(shard, 'MISSING'));
  }
  for (const file of orphanCandidates) {
    if (!file.temp && dataIds.has(file.shard.dataId)) continue;
    result.orphans.push(file.shard);
    if (options.removeOrphans && (await shards.removeFile(file))) result.orphansRemoved++;
  }
  return result;
}
