// Streaming a byte range of a shard, block by verified block: shared by the gRPC GetShard
// handler and the bulk channel, which differ only in how bytes reach the wire.
import type { ShardRef, ShardStore } from './shard-store.js';

/** Sends one slice; `release` must be called once the bytes are no longer needed. */
export type SliceSink = (bytes: Buffer, release: () => void) => Promise<void>;

/**
 * Bytes read from disk at a time: a direct read costs mostly per read (on this machine 0.32 ms of
 * CPU per MB in 256 KiB reads, 0.13 in 1 MiB reads).
 */
const READ_BYTES = 1024 * 1024;

export async function streamShardRange(shards: ShardStore, ref: ShardRef, offset: number, length: number,
  send: SliceSink, cancelled: () => boolean): Promise<void> {
  const reader = await shards.openShard(ref);
  try {
    const { blockSize, dataLength } = reader.layout;
    const blocksPerRead = Math.max(1, Math.floor(READ_BYTES / blockSize));
    const start = Math.min(offset, dataLength);
    const end = length ? Math.min(dataLength, start + length) : dataLength;
    for (let block = Math.floor(start / blockSize); block * blockSize < end && !cancelled(); block += blocksPerRead) {
      const buffer = shards.blockBuffer(blockSize * blocksPerRead);
      const count = Math.min(blocksPerRead, Math.ceil(end / blockSize) - block);
      const data = await reader.readVerifiedBlocks(block, count, buffer).catch((err: unknown) => {
        shards.returnBuffer(buffer);
        throw err;
      });
      const from = Math.max(start - block * blockSize, 0);
      const to = Math.min(end - block * blockSize, data.length);
      await send(data.subarray(from, to), () => shards.returnBuffer(buffer));
    }
  } finally {
    await reader.close();
  }
}
