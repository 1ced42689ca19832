// A snapshot's index: the ids of all its chunks in disk order, cut into content-addressed pages
// (level 0), whose ids are again cut into pages up to a single root. A page whose chunks did not
// change has the same id as in the parent snapshot and is stored once, so an incremental snapshot
// costs index pages in proportion to the change; the root id is a Merkle hash of the whole image.
import { mapLimited } from '../common/concurrency.js';
import { StoreError } from '../common/errors.js';
import { ID_BYTES, IndexPage } from './format.js';
import { blobInRange, planRangeReads, readRange } from './pack.js';
import type { BlobIndex, BlobLocation, Repository } from './repository.js';

export const DEFAULT_FANOUT = 1024;

export interface TreeRoot {
  root: Uint8Array;
  depth: number;
}

export interface EncodedPage {
  id: Buffer;
  body: Buffer;
}

export interface BuiltTree {
  root: Buffer;
  depth: number;
  pages: EncodedPage[];
}

/** Builds the page tree over `chunkIds` (ID_BYTES per chunk); `idOf` names a page by its bytes. */
export function buildTree(chunkIds: Buffer, fanout: number, idOf: (body: Buffer) => Buffer): BuiltTree {
  const pages: EncodedPage[] = [];
  let ids = chunkIds;
  for (let level = 0; ; level++) {
    const levelIds: Buffer[] = [];
    const span = fanout * ID_BYTES;
    for (let at = 0; at < ids.length || at === 0; at += span) {
      const body = Buffer.from(IndexPage.encode({ level, ids: ids.subarray(at, at + span) }).finish());
      const id = idOf(body);
      pages.push({ id, body });
      levelIds.push(id);
      if (ids.length === 0) break;
    }
    if (levelIds.length === 1) return { root: levelIds[0]!, depth: level + 1, pages };
    ids = Buffer.concat(levelIds);
  }
}

/**
 * Reads a snapshot's chunk ids, fetching (and verifying) every page of its tree. A level's pages
 * are fetched in few ranged GETs (a backup stores its pages together, so neighbours in a pack
 * share one), each distinct page once.
 */
export async function readChunkIds(repo: Repository, index: BlobIndex, tree: TreeRoot, concurrency = 64, onPage?: (id: Buffer) => void): Promise<Buffer> {
  let ids = Buffer.from(tree.root);
  for (let level = tree.depth - 1; level >= 0; level--) {
    const count = ids.length / ID_BYTES;
    const pages = new Map<string, BlobLocation>();
    for (let i = 0; i < count; i++) {
      const id = ids.subarray(i * ID_BYTES, (i + 1) * ID_BYTES);
      onPage?.(id);
      const location = index.get(id);
      if (!location) throw new StoreError('NotFound', `index page ${id.toString('hex')} is missing`);
      pages.set(id.toString('hex'), location);
    }
    const bodies = new Map<string, Buffer>();
    await mapLimited(planRangeReads([...pages.values()]), concurrency, async (range) => {
      const stored = await readRange(repo.store, range);
      for (const { entry } of range.blobs) {
        const page = IndexPage.decode(repo.codec.decodeEntry(blobInRange(stored, range, entry), entry));
        const hex = Buffer.from(entry.id).toString('hex');
        if (page.level !== level) throw new StoreError('Corrupt', `index page ${hex} is at level ${page.level}, expected ${level}`);
        bodies.set(hex, Buffer.from(page.ids));
      }
    });
    ids = Buffer.concat(Array.from({ length: count }, (_, i) => bodies.get(ids.toString('hex', i * ID_BYTES, (i + 1) * ID_BYTES))!));
  }
  return ids;
}
