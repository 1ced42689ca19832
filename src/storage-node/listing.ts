// Listing of a bucket's object keys in UTF-8 byte order, as one node sees them. Delimiter roll-up
// happens here: a common prefix is emitted once and the iterator then seeks past every key under
// it, so a prefix holding a million keys costs one seek, not a million reads.
import { pb } from '../common/node-service.js';
import type { Db } from './group-commit.js';
import { afterObjectPrefix, afterObjectVersions, objectKey, objectKeyPrefix, recordKey, Space, splitKey } from './meta-keys.js';
import { withoutInline } from './meta-store.js';

export type ListEntry = { commonPrefix: string } | { version: pb.ObjectVersion };

export interface ListQuery {
  bucket: string;
  prefix: string;
  /** Exclusive: keys after it. A start_after equal to a common prefix skips that prefix. */
  startAfter: string;
  /** With allVersions: resume after this version of startAfter's key. */
  startAfterVersion: string;
  delimiter: string;
  allVersions: boolean;
  includeDeleteMarkers: boolean;
}

export function listQueryOf(request: pb.IListRequest): ListQuery {
  return {
    bucket: request.bucket ?? '',
    prefix: request.prefix ?? '',
    startAfter: request.startAfter ?? '',
    startAfterVersion: request.startAfterVersion ?? '',
    delimiter: request.delimiter ?? '',
    allVersions: request.allVersions ?? false,
    includeDeleteMarkers: request.includeDeleteMarkers ?? false,
  };
}

/** Where listing resumes: just after start_after (or its start_after_version), if inside the range. */
async function resumePoint(db: Db, query: ListQuery): Promise<Buffer | undefined> {
  const { bucket, startAfter, startAfterVersion } = query;
  if (!startAfter) return undefined;
  if (query.allVersions && startAfterVersion) {
    const inverted = await db.get(recordKey(Space.VersionIndex, bucket, startAfter, startAfterVersion));
    if (inverted) return Buffer.concat([objectKey(bucket, startAfter, inverted, startAfterVersion), Buffer.of(0)]);
  }
  return afterObjectVersions(bucket, startAfter);
}

/** Every entry of the listing, in order; the caller stops pulling at its limit. */
export async function* listEntries(db: Db, query: ListQuery): AsyncGenerator<ListEntry> {
  const { bucket, prefix, delimiter, allVersions } = query;
  const start = objectKeyPrefix(bucket, prefix);
  const end = afterObjectPrefix(bucket, prefix);
  const iterator = db.iterator({ gte: start, lt: end });
  // classic-level asserts (aborting the process) when a seek past the range meets an empty
  // snapshot, so seeks stay inside [start, end) and a target at or past the end ends the listing.
  const seek = (target: Buffer): boolean => {
    if (Buffer.compare(target, end) >= 0) return false;
    if (Buffer.compare(target, start) > 0) iterator.seek(target);
    return true;
  };
  try {
    const resume = await resumePoint(db, query);
    if (resume && !seek(resume)) return;
    let previousKey: string | undefined;
    for (let entry = await iterator.next(); entry; entry = await iterator.next()) {
      const key = splitKey(entry[0], 2).parts[1]!;
      if (!allVersions && key === previousKey) {
        if (!seek(afterObjectVersions(bucket, key))) return; // older versions of a key already decided
        continue;
      }
      previousKey = key;
      const version = pb.ObjectVersion.decode(entry[1]);
      if (!allVersions && version.deleteMarker && !query.includeDeleteMarkers) continue;
      const delimiterAt = delimiter ? key.indexOf(delimiter, prefix.length) : -1;
      if (delimiterAt >= 0) {
        const commonPrefix = key.slice(0, delimiterAt + delimiter.length);
        if (commonPrefix !== query.startAfter) yield { commonPrefix };
        if (!seek(afterObjectPrefix(bucket, commonPrefix))) return;
        continue;
      }
      yield { version: withoutInline(version) };
    }
  } finally {
    await iterator.close();
  }
}
