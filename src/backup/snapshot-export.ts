// A snapshot as an NBD export backend: reads fetch the chunks they touch on demand (each fetched
// once even when many requests want it) and keep recent ones in an LRU cache; zero chunks are
// reported as holes through base:allocation and never fetched.
import { ID_BYTES, type Snapshot, ZERO_ID } from './format.js';
import type { Extent } from './nbd/protocol.js';
import { StateFlag } from './nbd/protocol.js';
import type { NbdExport } from './nbd/server.js';
import type { BlobIndex, Repository } from './repository.js';
import { readChunkIds } from './tree.js';

export async function snapshotExport(repo: Repository, index: BlobIndex, snapshot: Snapshot, cacheBytes = 256 * 1024 * 1024): Promise<NbdExport> {
  const ids = await readChunkIds(repo, index, snapshot);
  return new SnapshotExport(repo, index, snapshot, ids, Math.max(1, Math.floor(cacheBytes / snapshot.chunkSize)));
}

class SnapshotExport implements NbdExport {
  private readonly cache = new Map<string, Buffer>();
  private readonly inFlight = new Map<string, Promise<Buffer>>();

  constructor(
    private readonly repo: Repository,
    private readonly index: BlobIndex,
    private readonly snapshot: Snapshot,
    private readonly ids: Buffer,
    private readonly cacheChunks: number,
  ) {}

  get size(): number {
    return this.snapshot.diskSize;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const { chunkSize } = this.snapshot;
    const out = Buffer.alloc(length);
    const first = Math.floor(offset / chunkSize);
    const last = Math.floor((offset + length - 1) / chunkSize);
    await Promise.all(Array.from({ length: last - first + 1 }, async (_, k) => {
      const i = first + k;
      const id = this.idAt(i);
      if (id.equals(ZERO_ID)) return;
      const chunk = await this.chunk(id);
      const chunkStart = i * chunkSize;
      const from = Math.max(offset, chunkStart);
      const to = Math.min(offset + length, chunkStart + chunk.length);
      chunk.copy(out, from - offset, from - chunkStart, to - chunkStart);
    }));
    return out;
  }

  async allocation(offset: number, length: number): Promise<Extent[]> {
    const { chunkSize } = this.snapshot;
    const extents: Extent[] = [];
    const end = offset + length;
    for (let at = offset; at < end;) {
      const i = Math.floor(at / chunkSize);
      const next = Math.min(end, (i + 1) * chunkSize);
      const flags = this.idAt(i).equals(ZERO_ID) ? StateFlag.HOLE | StateFlag.ZERO : 0;
      const last = extents[extents.length - 1];
      if (last && last.flags === flags) last.length += next - at;
      else extents.push({ offset: at, length: next - at, flags });
      at = next;
    }
    return extents;
  }

  private idAt(i: number): Buffer {
    return this.ids.subarray(i * ID_BYTES, (i + 1) * ID_BYTES);
  }

  private chunk(id: Buffer): Promise<Buffer> {
    const hex = id.toString('hex');
    const cached = this.cache.get(hex);
    if (cached) {
      this.cache.delete(hex);
      this.cache.set(hex, cached);
      return Promise.resolve(cached);
    }
    let pending = this.inFlight.get(hex);
    if (!pending) {
      const location = this.index.get(id);
      pending = location ? this.repo.readBlob(location) : Promise.reject(new Error(`chunk ${hex} is missing from the repository`));
      pending = pending.then((data) => {
        this.cache.set(hex, data);
        if (this.cache.size > this.cacheChunks) this.cache.delete(this.cache.keys().next().value!);
        return data;
      }).finally(() => this.inFlight.delete(hex));
      this.inFlight.set(hex, pending);
    }
    return pending;
  }
}
