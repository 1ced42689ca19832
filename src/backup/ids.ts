// Time-ordered ids of snapshots, index files and locks; apart from repository.ts so that a backup
// can name its snapshot (and a qcow2's checkpoint) before the repository code has loaded.
import { randomBytes } from 'node:crypto';

/** `20261128T074000123Z-1a2b3c4d`: sorting the ids sorts by time. */
export function newId(now = new Date()): string {
  return `${now.toISOString().replace(/[-:.]/g, '')}-${randomBytes(4).toString('hex')}`;
}
