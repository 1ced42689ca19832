// Shard streams to a node in this process (see src/common/local-shards.ts): the ShardSink and
// ShardReader of the bulk channel, with the node's shard store on the other end of an in-memory
// hand-off instead of a socket.
import type { LocalShards } from '../common/local-shards.js';
import { StoreError } from '../common/errors.js';
import type { pb } from '../common/node-service.js';
import { awaitConfirmation, silentNode } from './bulk-client.js';
import type { ShardReader, ShardSink } from './node-client.js';

interface Slice {
  bytes: Buffer;
  release?: () => void;
}

/**
 * Passes slices from a producer to a consumer, at most `capacity` waiting. A slice is released
 * when the consumer asks for the next one (it is done with it by then) or the hand-off fails.
 */
class HandOff {
  private readonly waiting: Slice[] = [];
  private current: Slice | undefined;
  private ended = false;
  failure: StoreError | undefined;
  private wakeConsumer: (() => void) | undefined;
  private wakeProducer: (() => void) | undefined;

  constructor(private readonly capacity: number) {}

  /** Resolves once there is room for more (or the hand-off failed). */
  async push(bytes: Buffer, release?: () => void): Promise<void> {
    if (this.failure) { release?.(); return; }
    this.waiting.push({ bytes, release });
    this.wake();
    while (this.waiting.length > this.capacity && !this.failure) await new Promise<void>((resolve) => { this.wakeProducer = resolve; });
  }

  end(): void {
    this.ended = true;
    this.wake();
  }

  fail(err: StoreError): void {
    this.failure ??= err;
    for (const slice of this.waiting.splice(0)) slice.release?.();
    this.wake();
  }

  /** The next slice; undefined once the producer ended; throws once the hand-off failed. */
  async next(): Promise<Buffer | undefined> {
    this.current?.release?.();
    this.current = undefined;
    while (!this.waiting.length) {
      if (this.failure) throw this.failure;
      if (this.ended) return undefined;
      await new Promise<void>((resolve) => { this.wakeConsumer = resolve; });
    }
    this.current = this.waiting.shift()!;
    this.wake();
    return this.current.bytes;
  }

  async *slices(): AsyncGenerator<Buffer> {
    for (let bytes = await this.next(); bytes; bytes = await this.next()) yield bytes;
  }

  private wake(): void {
    const wakers = [this.wakeConsumer, this.wakeProducer];
    this.wakeConsumer = this.wakeProducer = undefined;
    for (const wake of wakers) wake?.();
  }
}

/** Blocks queued per local shard stream: enough that encoding the next stripe overlaps the store's write. */
const QUEUED_BLOCKS = 2;

function asStoreError(err: unknown, nodeId: string): StoreError {
  return err instanceof StoreError ? err
    : new StoreError('Internal', `node ${nodeId}: ${(err as Error).message}`, { nodeId });
}

export class LocalShardWriter implements ShardSink {
  private readonly blocks = new HandOff(QUEUED_BLOCKS);
  private readonly result: Promise<pb.IShardWriteResult>;

  constructor(readonly nodeId: string, shards: LocalShards, header: pb.IShardHeader, private readonly idleMs: number) {
    const ref = { dataId: header.dataId ?? '', shardIndex: header.shardIndex ?? 0 };
    this.result = shards.write(ref, header.blockSize ?? 0, this.blocks.slices());
    this.result.catch((err: unknown) => this.blocks.fail(asStoreError(err, nodeId)));
  }

  get failed(): StoreError | undefined {
    return this.blocks.failure;
  }

  write(data: Uint8Array, release?: () => void): Promise<void> {
    return this.blocks.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength), release);
  }

  async finish(): Promise<pb.IShardWriteResult | undefined> {
    this.blocks.end();
    return awaitConfirmation(this.result, this.idleMs, () => this.blocks.fail(silentNode(this.nodeId)));
  }

  abort(): void {
    this.blocks.fail(new StoreError('Unavailable', 'aborted'));
  }
}

/** A shard read from the node in this process; each chunk stays valid until the next call. */
export function openLocalReader(nodeId: string, shards: LocalShards, read: pb.IShardRead): ShardReader {
  const slices = new HandOff(1);
  const ref = { dataId: read.dataId ?? '', shardIndex: read.shardIndex ?? 0 };
  shards.read(ref, read.offset ?? 0, read.length ?? 0, (bytes, release) => slices.push(bytes, release), () => slices.failure !== undefined)
    .then(() => slices.end(), (err: unknown) => slices.fail(asStoreError(err, nodeId)));
  return {
    next: () => slices.next(),
    cancel: () => slices.fail(new StoreError('Unavailable', 'cancelled')),
  };
}
