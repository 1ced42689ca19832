// A local copy of each disk's latest snapshot's chunk ids, so the next incremental backup (and a
// restore of that snapshot on this host) need not fetch and open its index pages. Every use
// checks the copy against the snapshot: the page tree rebuilt from the cached ids must have the
// snapshot's root id (a Merkle hash under the repository's key), so a stale, foreign or tampered
// copy is never used — it is only a miss.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { BlobCodec } from './blob-codec.js';
import type { Snapshot } from './format.js';
import { buildTree } from './tree.js';

type TreeOf = Pick<Snapshot, 'disk' | 'root' | 'depth' | 'fanout'>;

/** A disk's cached ids and the root of their tree (at `fanout`), to check against a snapshot. */
export interface CachedIds {
  ids: Buffer;
  fanout: number;
  root: Buffer;
  depth: number;
}

export class ChunkIdCache {
  private constructor(private readonly dir: string, private readonly codec: BlobCodec) {}

  /** The cache of one bucket: TESSERA_CACHE_DIR, else $XDG_CACHE_HOME or ~/.cache, /tessera/backup/BUCKET. */
  static forBucket(bucket: string, codec: BlobCodec): ChunkIdCache {
    const root = process.env.TESSERA_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'tessera', 'backup');
    return new ChunkIdCache(join(root, bucket), codec);
  }

  /**
   * Reads the disk's cached ids and builds their tree, before the snapshot they must match is
   * known (a backup's start: the tree of a 4 GiB disk's ids takes ~15-40 ms to build).
   */
  async load(disk: string, fanout: number): Promise<CachedIds | undefined> {
    const ids = await readFile(this.file(disk)).catch(() => undefined);
    if (!ids) return undefined;
    const { root, depth } = buildTree(ids, fanout, (body) => this.codec.idOf(body));
    return { ids, fanout, root, depth };
  }

  /** The snapshot's chunk ids if the cached copy (`loaded`, if loaded before) is exactly its tree, else undefined. */
  async read(snapshot: TreeOf, loaded?: Promise<CachedIds | undefined>): Promise<Buffer | undefined> {
    let cached = loaded ? await loaded : await this.load(snapshot.disk, snapshot.fanout);
    if (cached && cached.fanout !== snapshot.fanout) cached = await this.load(snapshot.disk, snapshot.fanout);
    if (!cached) return undefined;
    return cached.depth === snapshot.depth && cached.root.equals(snapshot.root) ? cached.ids : undefined;
  }

  /** Keeps `ids` as the disk's latest; a cache that cannot be written is no error (only slower). */
  async write(disk: string, ids: Buffer): Promise<void> {
    const file = this.file(disk);
    const temp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await mkdir(this.dir, { recursive: true });
      await writeFile(temp, ids);
      await rename(temp, file);
    } catch {
      // best effort
    }
  }

  private file(disk: string): string {
    return join(this.dir, `${disk}.ids`);
  }
}
