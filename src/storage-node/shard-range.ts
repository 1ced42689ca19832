// Streaming a byte range of a shard, block by verified block: shared by the gRPC GetShard
// handler and the bulk channel, which differ only in how bytes reach the wire.
import type { ShardRef, ShardStore } from './shard-store.js';

/** Sends one slice; `release` must be called once the bytes are no longer needed. */
export type SliceSink = (bytes: Buffer, release: () => void) => Promise<void>;

export async function streamShardRange(shards: ShardStore, ref: ShardRef, offset: number, length: number,
  send: SliceSink, cancelled: () => boolean): Promise<void> {
  const reader = await shards.openShard(ref);
  try {
    const { blockSize, dataLength } = reader.layout;
    const start = Math.min(offset, dataLength);
    const end = length ? Math.min(dataLength, start + length) : dataLength;
    for (let block = Math.floor(start / blockSize); block * blockSize < end && !cancelled(); block++) {
      const buffer = shards.pool.take(blockSize);
      const data = await reader.readVerifiedBlock(block, buffer).catch((err: unknown) => {
        shards.pool.give(buffer);
        throw err;
      });
      const from = Math.max(start - block * blockSize, 0);
      const to = Math.min(end - block * blockSize, data.length);
      await send(data.subarray(from, to), () => shards.pool.give(buffer));
    }
  } finally {
    await reader.close();
  }
}
