// A storage node's unary calls made without gRPC when the gateway runs in the same process
// (`tessera start`), as MinIO calls its local disks directly rather than through its storage REST
// API. The node registers its handlers under its gRPC address; a client that finds that address
// here skips the HTTP/2 framing, the cluster token and the loopback socket, but keeps the wire
// format: requests and replies are still encoded and decoded, so the node sees exactly what gRPC
// would have delivered. (Shard streams: see local-shards.ts.)
import { SameProcessRegistry } from './same-process.js';

export interface LocalCalls {
  /** One unary call by method path; rejects with a gRPC-style status error ({ code, details }). */
  unary(path: string, request: Buffer): Promise<Buffer>;
}

/** Unary handlers by the gRPC address of their node. */
export const localCalls = new SameProcessRegistry<LocalCalls>();
