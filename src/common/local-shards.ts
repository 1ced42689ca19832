// A storage node's shards reached without a socket when the gateway runs in the same process
// (`tessera start`). The node's bulk server registers its shard store under its bulk address; a
// client that finds that address here calls the store directly, so shard bytes are copied once in
// memory instead of crossing loopback TCP both ways.
import { SameProcessRegistry } from './same-process.js';
export interface LocalShardRef {
  dataId: string;
  shardIndex: number;
}

/** Receives one slice of a shard read; `release` says the slice's memory may be reused. */
export type LocalSliceSink = (bytes: Buffer, release: () => void) => Promise<void>;

/** The bulk channel's two calls, as the node's shard store answers them. */
export interface LocalShards {
  /** The same as a bulk put: a whole shard from `chunks` (each may be reused once the next is asked for). */
  write(ref: LocalShardRef, blockSize: number, chunks: AsyncIterable<Uint8Array>): Promise<{ bytes: number; blocks: number }>;
  /** The same as a bulk get: verified slices of a byte range (length 0: to the end) until `cancelled()`. */
  read(ref: LocalShardRef, offset: number, length: number, send: LocalSliceSink, cancelled: () => boolean): Promise<void>;
}

/** Shard stores by the bulk address their node advertises. */
export const localShards = new SameProcessRegistry<LocalShards>();
