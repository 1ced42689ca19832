// Checks that snapshots can be restored: every index page and every chunk they reference is in
// the store and matches its hash. Each blob is fetched once (coalesced ranged GETs), however many
// snapshots share it.
import { mapLimited } from '../common/concurrency.js';
import { isStoreError } from '../common/errors.js';
import { ID_BYTES, type Snapshot, ZERO_ID } from './format.js';
import { blobInRange, planRangeReads, readRange } from './pack.js';
import type { BlobLocation, Repository } from './repository.js';
import { readChunkIds } from './tree.js';

export interface VerifyProblem {
  snapshot: string;
  disk: string;
  kind: 'missing' | 'corrupt';
  /** Chunk or page id, or a description of the broken index. */
  what: string;
}

export interface VerifyReport {
  snapshots: number;
  blobsChecked: number;
  bytesChecked: number;
  problems: VerifyProblem[];
}

export async function verify(repo: Repository, snapshots: Snapshot[], concurrency = 8): Promise<VerifyReport> {
  const index = await repo.loadIndex();
  const report: VerifyReport = { snapshots: snapshots.length, blobsChecked: 0, bytesChecked: 0, problems: [] };
  const users = new Map<string, Snapshot[]>();
  for (const snapshot of snapshots) {
    let ids: Buffer;
    try {
      ids = await readChunkIds(repo, index, snapshot);
    } catch (err) {
      if (!isStoreError(err)) throw err;
      report.problems.push({ snapshot: snapshot.id, disk: snapshot.disk, kind: isStoreError(err, 'Corrupt') ? 'corrupt' : 'missing', what: `index: ${err.message}` });
      continue;
    }
    for (let at = 0; at < ids.length; at += ID_BYTES) {
      const id = ids.subarray(at, at + ID_BYTES);
      if (id.equals(ZERO_ID)) continue;
      const hex = id.toString('hex');
      const list = users.get(hex);
      if (!list) users.set(hex, [snapshot]);
      else if (list[list.length - 1] !== snapshot) list.push(snapshot);
    }
  }
  const record = (hex: string, kind: VerifyProblem['kind']) => {
    for (const s of users.get(hex)!) report.problems.push({ snapshot: s.id, disk: s.disk, kind, what: `chunk ${hex}` });
  };
  const located: BlobLocation[] = [];
  for (const hex of users.keys()) {
    const location = index.blobs.get(hex);
    if (location) located.push(location);
    else record(hex, 'missing');
  }
  await mapLimited(planRangeReads(located), concurrency, async (range) => {
    let body: Buffer;
    try {
      body = await readRange(repo.store, range);
    } catch (err) {
      if (!isStoreError(err, 'NotFound')) throw err;
      for (const { entry } of range.blobs) record(Buffer.from(entry.id).toString('hex'), 'missing');
      return;
    }
    for (const { entry } of range.blobs) {
      report.blobsChecked++;
      report.bytesChecked += entry.length;
      try {
        repo.codec.decodeEntry(blobInRange(body, range, entry), entry, true);
      } catch (err) {
        if (!isStoreError(err, 'Corrupt')) throw err;
        record(Buffer.from(entry.id).toString('hex'), 'corrupt');
      }
    }
  });
  return report;
}
