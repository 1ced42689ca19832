// Typed errors that cross layer boundaries. Lower layers raise a StoreError with a kind;
// the gateway maps kinds to S3 error codes in one place (src/gateway/errors.ts).

export type StoreErrorKind =
  | 'NotFound'          // object, version, shard, upload or record does not exist
  | 'Corrupt'           // a shard block failed its xxHash64 check
  | 'DiskFull'          // ENOSPC or the node's capacity limit
  | 'Unavailable'       // a node (or too many nodes) could not be reached
  | 'QuorumFailed'      // fewer than the write/read quorum answered
  | 'Conflict'          // a newer write already won, or a precondition on current state failed
  | 'Unauthenticated'   // the cluster secret was missing or wrong
  | 'InvalidArgument'   // the caller's request was malformed
  | 'Internal';

export class StoreError extends Error {
  constructor(
    readonly kind: StoreErrorKind,
    message: string,
    readonly detail: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = `StoreError(${kind})`;
  }
}

export function isStoreError(err: unknown, kind?: StoreErrorKind): err is StoreError {
  return err instanceof StoreError && (kind === undefined || err.kind === kind);
}
