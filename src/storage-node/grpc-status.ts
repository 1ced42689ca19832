// Every failure of a node call leaves as a gRPC status the cluster client can act on; nothing
// thrown by a handler may take the process down.
import * as grpc from '@grpc/grpc-js';
import { isStoreError, type StoreErrorKind } from '../common/errors.js';
import { fileError } from './shard-store.js';

const codeOfKind: Record<StoreErrorKind, grpc.status> = {
  NotFound: grpc.status.NOT_FOUND,
  Corrupt: grpc.status.DATA_LOSS,
  DiskFull: grpc.status.RESOURCE_EXHAUSTED,
  Unavailable: grpc.status.UNAVAILABLE,
  QuorumFailed: grpc.status.UNAVAILABLE,
  Conflict: grpc.status.FAILED_PRECONDITION,
  Unauthenticated: grpc.status.UNAUTHENTICATED,
  InvalidArgument: grpc.status.INVALID_ARGUMENT,
  Internal: grpc.status.INTERNAL,
};

export interface CallStatus {
  code: grpc.status;
  details: string;
  /** Unexpected errors are worth a log line; expected ones (not found, disk full) are not. */
  unexpected: boolean;
}

export function statusOf(err: unknown): CallStatus {
  if ((err as NodeJS.ErrnoException)?.code === 'ERR_STREAM_PREMATURE_CLOSE') {
    return { code: grpc.status.CANCELLED, details: 'the caller went away mid-stream', unexpected: false };
  }
  const typed = fileError(err, 'file');
  if (isStoreError(typed)) return { code: codeOfKind[typed.kind], details: typed.message, unexpected: typed.kind === 'Internal' };
  const message = err instanceof Error ? err.message : String(err);
  return { code: grpc.status.INTERNAL, details: `internal error: ${message}`, unexpected: true };
}

/** A ServiceError-shaped object, as grpc-js expects in callbacks and stream 'error' events. */
export function serviceError(status: CallStatus): grpc.ServiceError {
  return Object.assign(new Error(status.details), { code: status.code, details: status.details, metadata: new grpc.Metadata() });
}
