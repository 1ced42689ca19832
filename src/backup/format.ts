// The repository's protobuf messages (proto/backup.proto), loaded so that 64-bit fields decode
// as plain numbers like the generated typings say.
import '../common/protobuf-numbers.js';
import { tessera } from '../generated/backup.js';

export const {
  RepoConfig, PackEntry, PackTrailer, PackRef, IndexFile, IndexPage, Snapshot, LockInfo, GcPending, BlobType,
} = tessera.backup;
export type RepoConfig = tessera.backup.RepoConfig;
export type PackEntry = tessera.backup.PackEntry;
export type PackRef = tessera.backup.PackRef;
export type IndexFile = tessera.backup.IndexFile;
export type IndexPage = tessera.backup.IndexPage;
export type Snapshot = tessera.backup.Snapshot;
export type LockInfo = tessera.backup.LockInfo;
export type GcPending = tessera.backup.GcPending;
export type BlobType = tessera.backup.BlobType;

export { ID_BYTES, isZeroIdAt, ZERO_ID } from './chunk-id.js';

/** Decoded messages hold full PackEntry messages, though the generated typings say $Properties. */
export function packEntries(ref: PackRef): PackEntry[] {
  return ref.entries as PackEntry[];
}
