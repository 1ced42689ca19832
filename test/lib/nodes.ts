// Test helper: real storage-node processes plus a cluster client on them, without a gateway,
// for tests of the replication layer (placement, quorums, heal, rebalance).
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { initClusterMap, loadOrCreateClusterFile, spawnNode, type ClusterFile } from '../../src/cli/launch.js';
import { type ClusterClient, createClusterClient } from '../../src/replication/cluster-client.js';
import { freePort } from './cluster.js';

export interface TestNodes {
  dataDir: string;
  file: ClusterFile;
  store: ClusterClient;
  kill(id: string, signal?: NodeJS.Signals): void;
  start(id: string): Promise<void>;
  /** Add a node process to the cluster file (not yet to the map). */
  addNode(id: string): Promise<{ id: string; address: string }>;
  /** Paths of every shard file on a node. */
  shardFiles(id: string): string[];
  stop(): Promise<void>;
}

export async function startNodes(count: number, ec: string): Promise<TestNodes> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tessera-nodes-'));
  const file = await loadOrCreateClusterFile(dataDir, count, ec, '127.0.0.1');
  const children = new Map<string, ChildProcess>();
  await Promise.all(file.nodes.map(async (n) => children.set(n.id, await spawnNode(dataDir, n, file.secret))));
  await initClusterMap(file);
  const store = await createClusterClient({ seeds: file.nodes.map((n) => n.address), secret: file.secret });
  /** Start a node process and wait until the client's channel to it answers again. */
  const start = async (id: string) => {
    children.set(id, await spawnNode(dataDir, file.nodes.find((n) => n.id === id)!, file.secret));
    if (!store.cluster.node(id)) return;
    for (let attempt = 0; ; attempt++) {
      try {
        await store.cluster.client(id).health();
        store.cluster.markUp(id);
        return;
      } catch (err) {
        if (attempt > 100) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  return {
    dataDir,
    file,
    store,
    kill(id, signal = 'SIGKILL') {
      children.get(id)?.kill(signal);
    },
    start,
    async addNode(id) {
      const node = { id, address: `127.0.0.1:${await freePort()}`, zone: '' };
      file.nodes.push(node);
      await start(id);
      return node;
    },
    shardFiles(id) {
      return walk(join(dataDir, id, 'shards'));
    },
    async stop() {
      await store.close();
      for (const child of children.values()) child.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Every file below `dir` (none if it does not exist); files removed while walking are skipped. */
export function walk(dir: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  return entries.flatMap((name) => {
    const path = join(dir, name);
    try {
      return statSync(path).isDirectory() ? walk(path) : [path];
    } catch {
      return [];
    }
  });
}

/** Deterministic pseudo-random bytes, streamed in chunks, so tests can check content by hash. */
export function patternStream(size: number, seed: number, chunk = 256 * 1024): Readable {
  let offset = 0;
  return new Readable({
    read() {
      if (offset >= size) { this.push(null); return; }
      const n = Math.min(chunk, size - offset);
      this.push(patternBytes(offset, n, seed));
      offset += n;
    },
  });
}

export function patternBytes(offset: number, length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) out[i] = ((offset + i) * 2654435761 + seed * 40503) >>> 13 & 0xff;
  return out;
}

export function patternSha256(size: number, seed: number): string {
  const hash = createHash('sha256');
  for (let offset = 0; offset < size; offset += 1 << 20) hash.update(patternBytes(offset, Math.min(1 << 20, size - offset), seed));
  return hash.digest('hex');
}

export async function sha256Of(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
