// Garbage collection: mark every blob a snapshot references, then sweep packs no snapshot needs,
// and repack packs that are mostly garbage. Safe while backups run, in two phases:
//  1. a gc run condemns unneeded packs (older than the grace period) in gc/pending; backups that
//     start afterwards never reuse blobs from condemned packs (they upload them again);
//  2. a later gc run deletes condemned packs that are still unneeded, once every backup that was
//     running when they were condemned has finished (its lock is gone or stale).
// Locks are read before snapshots are listed, so a backup that finishes in between is seen.
// Packs under Object Lock retention are never deleted or repacked.
import { mapLimited } from '../common/concurrency.js';
import { ID_BYTES, type PackEntry, type PackRef, packEntries, ZERO_ID } from './format.js';
import { packIdOfKey, packKey, PackWriter, planRangeReads, readRange, blobInRange } from './pack.js';
import { type BlobIndex, newId, type Repository } from './repository.js';
import { readChunkIds } from './tree.js';

export interface GcOptions {
  /** Packs younger than this are never condemned (time for an interrupted backup to resume). */
  graceMs: number;
  /** Repack packs whose needed share of bytes is below this (0 disables repacking). */
  repackBelow?: number;
  dryRun?: boolean;
  now?: number;
}

export interface GcReport {
  snapshots: number;
  packs: number;
  blobsInUse: number;
  condemned: number;
  deleted: number;
  deletedBytes: number;
  repacked: number;
  /** Condemned packs kept because a backup that started before they were condemned still runs. */
  waitingForBackups: number;
  locked: number;
}

export async function gc(repo: Repository, options: GcOptions): Promise<GcReport> {
  const lock = options.dryRun ? undefined : await repo.acquireLock('gc');
  try {
    return await collect(repo, options);
  } finally {
    await lock?.release();
  }
}

async function collect(repo: Repository, options: GcOptions): Promise<GcReport> {
  const now = options.now ?? Date.now();
  const backups = (await repo.liveLocks(now)).filter((l) => l.kind === 'backup');
  const pending = await repo.readGcPending();
  const snapshots = await repo.listSnapshots();
  const index = await repo.loadIndex();
  const listed = new Map((await repo.store.listAll('packs/')).map((o) => [packIdOfKey(o.key), o]));

  const needed = await markNeeded(repo, index, snapshots);
  const neededBytes = new Map<string, number>();
  for (const hex of needed) {
    const location = index.blobs.get(hex);
    if (location) neededBytes.set(location.pack, (neededBytes.get(location.pack) ?? 0) + location.entry.length);
  }
  const report: GcReport = {
    snapshots: snapshots.length, packs: listed.size, blobsInUse: needed.size,
    condemned: 0, deleted: 0, deletedBytes: 0, repacked: 0, waitingForBackups: 0, locked: 0,
  };

  const locked = (ref: PackRef | undefined) => (ref?.lockUntilMs ?? 0) > now;
  const oldEnough = (pack: string) => now - (listed.get(pack)?.lastModified.getTime() ?? now) >= options.graceMs;
  const packBytes = (ref: PackRef) => packEntries(ref).reduce((sum, e) => sum + e.length, 0);

  // Mostly-garbage packs: copy their needed blobs into new packs; the old ones become unneeded.
  const repackBelow = options.repackBelow ?? 0;
  const sparse = [...index.packs.values()].filter((ref) => {
    const used = neededBytes.get(ref.pack) ?? 0;
    return used > 0 && used < repackBelow * packBytes(ref) && oldEnough(ref.pack) && !locked(ref) && !pending.packs.includes(ref.pack);
  });
  const repackedTo: PackRef[] = [];
  if (sparse.length > 0 && !options.dryRun) {
    repackedTo.push(...await repack(repo, index, sparse, needed));
    for (const ref of sparse) neededBytes.delete(ref.pack);
    report.repacked = sparse.length;
  }

  const unneeded = [...listed.keys()].filter((pack) => !neededBytes.has(pack) && oldEnough(pack));
  report.locked = unneeded.filter((pack) => locked(index.packs.get(pack))).length;
  const candidates = unneeded.filter((pack) => !locked(index.packs.get(pack)));
  const backupsStillRunning = backups.some((b) => b.startedMs <= pending.timeMs);
  const deletable = backupsStillRunning ? [] : candidates.filter((pack) => pending.packs.includes(pack));
  const stillCondemned = candidates.filter((pack) => !deletable.includes(pack));
  report.condemned = stillCondemned.length;
  report.waitingForBackups = backupsStillRunning ? candidates.filter((pack) => pending.packs.includes(pack)).length : 0;
  report.deleted = deletable.length;
  report.deletedBytes = deletable.reduce((sum, pack) => sum + (listed.get(pack)?.size ?? 0), 0);
  if (options.dryRun) return report;

  await repo.writeGcPending({ timeMs: Date.now(), packs: stillCondemned });
  // One index file for everything that stays, then drop the files it replaces, then the packs.
  // Repacked packs leave the index: their blobs now resolve to the new packs.
  const gone = new Set([...deletable, ...sparse.map((ref) => ref.pack)]);
  const kept = [...index.packs.values()].filter((ref) => !gone.has(ref.pack) && listed.has(ref.pack));
  await repo.writeIndex(`gc-${newId()}`, [...kept, ...repackedTo]);
  await repo.store.deleteMany(index.files);
  await repo.store.deleteMany(deletable.map(packKey));
  return report;
}

/** Hex ids of every chunk and index page any snapshot references. */
async function markNeeded(repo: Repository, index: BlobIndex, snapshots: { root: Uint8Array; depth: number }[]): Promise<Set<string>> {
  const needed = new Set<string>();
  for (const snapshot of snapshots) {
    const ids = await readChunkIds(repo, index, snapshot, 16, (pageId) => needed.add(pageId.toString('hex')));
    for (let at = 0; at < ids.length; at += ID_BYTES) {
      const id = ids.subarray(at, at + ID_BYTES);
      if (!id.equals(ZERO_ID)) needed.add(id.toString('hex'));
    }
  }
  return needed;
}

/** Copies the needed blobs of `packs` into new packs, stored bytes as they are (no re-encoding). */
async function repack(repo: Repository, index: BlobIndex, packs: PackRef[], needed: Set<string>): Promise<PackRef[]> {
  const writer = new PackWriter(repo.store, repo.codec, { targetSize: 16 * 1024 * 1024, maxUploads: 2 });
  const locations = packs.flatMap((ref) => packEntries(ref)
    .filter((e: PackEntry) => needed.has(Buffer.from(e.id).toString('hex')) && index.get(e.id)?.pack === ref.pack)
    .map((entry) => ({ pack: ref.pack, entry })));
  await mapLimited(planRangeReads(locations), 1, async (range) => {
    const body = await readRange(repo.store, range);
    for (const { entry } of range.blobs) await writer.addStored(entry, Buffer.from(blobInRange(body, range, entry)));
  });
  return writer.finish();
}
