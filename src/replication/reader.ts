// Streaming erasure reader: fetches the data shards of the stripes a range covers and
// reconstructs from parity only when a data shard is missing, corrupt or slow. Memory is one
// stripe set in flight; the caller's stream provides backpressure.
import { BufferPool } from '../common/buffer-pool.js';
import { StoreError } from '../common/errors.js';
import type { pb } from '../common/node-service.js';
import type { Cluster } from './cluster.js';
import type { ShardReader } from './node-client.js';
import { blockSizeFor, codecFor, type Layout, layoutOf, stripeCount, stripeDataSize } from './layout.js';
import { StragglerWatch } from './straggler.js';

/** A shard read that stays silent this long is abandoned for parity. */
const READ_STALL_MS = 5_000;
/** A shard stream that alone keeps a read waiting this long is swapped for a spare. */
const READ_STRAGGLER_MS = 100;

export interface SegmentRead {
  segment: pb.IDataSegment;
  /** Inclusive byte range within the segment. */
  start: number;
  end: number;
  /** Inline segments: shards gathered from the metadata records (null where missing). */
  inlineShards?: Array<Uint8Array | null>;
}

/**
 * Full stripes, lent to whoever consumes the read: the GET response returns each once its socket
 * has written it. A fresh 1 MiB buffer per stripe made V8 run a full collection every 64 MiB
 * read. Only full stripes are pooled, so odd-sized tails never pile up in it.
 */
const stripes = new BufferPool(16);

/** Called with the shard indexes that could not be read, so the segment can be healed. */
export type DegradedHandler = (segment: pb.IDataSegment, badShards: number[]) => void;

export async function* readSegment(cluster: Cluster, read: SegmentRead, onDegraded: DegradedHandler): AsyncGenerator<Buffer> {
  if (read.end < read.start) return;
  const layout = layoutOf(read.segment);
  if (read.segment.inline) {
    const shards = read.inlineShards ?? [];
    // Only missing data shards are damage worth healing: a read asks the data shards' nodes and
    // leaves the parity ones unasked, so their gaps say nothing (nodes that answered without the
    // record are healed from the metadata read itself).
    const missing = dataIndexes(layout).filter((i) => !shards[i]);
    if (missing.length && Number(read.segment.size) > 0) onDegraded(read.segment, missing);
    yield sliceStripe(decodeInline(read.segment, shards), 0, read.start, read.end);
    return;
  }
  const firstStripe = Math.floor(read.start / layout.stripeSize);
  const lastStripe = Math.floor(read.end / layout.stripeSize);
  const shards = new ShardSet(cluster, read.segment, layout, firstStripe * layout.blockSize);
  try {
    for (let s = firstStripe; s <= lastStripe; s++) {
      const dataBytes = stripeDataSize(Number(read.segment.size), layout, s);
      const { data } = await shards.readStripe(blockSizeFor(dataBytes, layout));
      yield sliceStripe(data, s * layout.stripeSize, read.start, read.end);
    }
  } finally {
    shards.close();
    if (shards.bad.size) onDegraded(read.segment, [...shards.bad]);
  }
}

/**
 * Every stripe of a segment with the `wanted` shards rebuilt from k others (never reading the
 * shards in `wanted`): the healer's and rebalancer's source of shard bytes.
 */
export async function* rebuildShards(cluster: Cluster, segment: pb.IDataSegment, wanted: number[]): AsyncGenerator<Buffer[]> {
  const layout = layoutOf(segment);
  const shards = new ShardSet(cluster, segment, layout, 0, wanted, wanted);
  try {
    for (let s = 0; s < stripeCount(Number(segment.size), layout); s++) {
      const { blocks } = await shards.readStripe(blockSizeFor(stripeDataSize(Number(segment.size), layout, s), layout));
      yield wanted.map((i) => blocks[i]!);
    }
  } finally {
    shards.close();
  }
}

function sliceStripe(stripe: Buffer, stripeStart: number, start: number, end: number): Buffer {
  return stripe.subarray(Math.max(0, start - stripeStart), Math.min(stripe.length, end - stripeStart + 1));
}

/** The bytes of an inline segment from the inline shards at hand (null where missing). */
export function decodeInline(segment: pb.IDataSegment, given: ReadonlyArray<Uint8Array | null>): Buffer {
  const size = Number(segment.size ?? 0);
  if (size === 0) return Buffer.alloc(0);
  const layout = layoutOf(segment);
  const blockSize = blockSizeFor(size, layout);
  const total = layout.dataShards + layout.parityShards;
  const present = Array.from({ length: total }, (_, i) => given[i]?.length === blockSize);
  const shards = present.map((ok, i) => (ok ? given[i]! : new Uint8Array(blockSize)));
  if (present.slice(0, layout.dataShards).some((ok) => !ok)) reconstruct(layout, shards, present);
  return Buffer.concat(shards.slice(0, layout.dataShards)).subarray(0, size);
}

function dataIndexes(layout: Layout): number[] {
  return Array.from({ length: layout.dataShards }, (_, i) => i);
}

function reconstruct(layout: Layout, shards: Uint8Array[], present: boolean[], wanted = dataIndexes(layout)): void {
  const codec = codecFor(layout);
  if (!codec || present.filter(Boolean).length < layout.dataShards) {
    throw new StoreError('QuorumFailed', `fewer than ${layout.dataShards} shards of a stripe are readable`);
  }
  codec.reconstruct(shards, present, wanted);
}

/** The shard streams of one segment read: k active, the rest held in reserve. */
class ShardSet {
  private readonly cursors = new Map<number, ShardCursor>();
  readonly bad = new Set<number>();
  private offset: number;

  /** Shards given up as stragglers in this read: read again only if nothing else is left. */
  private readonly slow = new Set<number>();
  private readonly stragglers = new StragglerWatch(READ_STRAGGLER_MS);

  constructor(private readonly cluster: Cluster, private readonly segment: pb.IDataSegment, private readonly layout: Layout,
    startOffset: number, private readonly wanted = dataIndexes(layout), avoid: readonly number[] = []) {
    this.offset = startOffset;
    for (const i of avoid) this.bad.add(i);
    for (let spare = this.nextSpare(); spare !== undefined && this.cursors.size < layout.dataShards; spare = this.nextSpare()) {
      this.open(spare);
    }
  }

  private open(index: number): void {
    const nodeId = this.segment.nodes![index]!;
    if (!this.cluster.isLikelyUp(nodeId)) {
      this.bad.add(index);
      return;
    }
    const stream = this.cluster.client(nodeId).openShardReader({ dataId: this.segment.dataId, shardIndex: index, offset: this.offset });
    this.cursors.set(index, new ShardCursor(stream));
    this.slow.delete(index);
  }

  /**
   * Read one block from k shards, replacing failed ones with spares; data shards come first.
   * Each shard's block lands in place: the data blocks back to back in `data` (the stripe's
   * bytes, no gathering copy), parity blocks in buffers of their own where read or wanted.
   */
  async readStripe(blockSize: number): Promise<{ data: Buffer; blocks: Buffer[] }> {
    const { dataShards, parityShards } = this.layout;
    const data = blockSize === this.layout.blockSize ? stripes.lend(blockSize * dataShards) : Buffer.allocUnsafe(blockSize * dataShards);
    const blocks = Array.from({ length: dataShards + parityShards },
      (_, i) => (i < dataShards ? data.subarray(i * blockSize, (i + 1) * blockSize) : undefined));
    const present = blocks.map(() => false);
    const blockOf = (i: number) => (blocks[i] ??= Buffer.allocUnsafe(blockSize));
    for (;;) {
      const reads = blocks.map((_, i) => {
        const cursor = this.cursors.get(i);
        return cursor && !present[i] ? this.readBlock(i, cursor, blockOf(i), present) : undefined;
      });
      const givenUp = await this.stragglers.step(reads, this.fastSpares());
      for (const i of givenUp) this.giveUp(i);
      await Promise.all(reads.filter((_, i) => !givenUp.includes(i)));
      const have = present.filter(Boolean).length;
      if (have >= dataShards) break;
      const spare = this.nextSpare();
      if (spare === undefined) throw new StoreError('QuorumFailed', `only ${have} of ${dataShards} needed shards are readable`);
      this.open(spare);
    }
    this.offset += blockSize;
    const wanted = this.wanted.filter((i) => !present[i]);
    if (wanted.length) reconstruct(this.layout, blocks.map((_, i) => blockOf(i)), present, wanted);
    return { data, blocks: blocks as Buffer[] };
  }

  private async readBlock(index: number, cursor: ShardCursor, block: Buffer, present: boolean[]): Promise<void> {
    try {
      await cursor.readInto(block);
      present[index] = true;
    } catch (err) {
      if (this.cursors.get(index) === cursor) this.fail(index, err);
    }
  }

  /** A straggler's stream is closed (its node read from last for a while), not counted as bad. */
  private giveUp(index: number): void {
    this.slow.add(index);
    this.cursors.get(index)?.close();
    this.cursors.delete(index);
    this.cluster.markSlow(this.segment.nodes![index]!);
  }

  private fail(index: number, err: unknown): void {
    this.bad.add(index);
    this.cursors.get(index)?.close();
    this.cursors.delete(index);
    if (err instanceof StoreError && err.kind === 'Unavailable') this.cluster.markDown(this.segment.nodes![index]!);
  }

  /** Unread shards, data before parity, nodes lately slow last, stragglers of this read after them. */
  private spares(): number[] {
    const total = this.layout.dataShards + this.layout.parityShards;
    const unread = Array.from({ length: total }, (_, i) => i).filter((i) => !this.cursors.has(i) && !this.bad.has(i));
    return unread.sort((a, b) => this.slowness(a) - this.slowness(b) || a - b);
  }

  /** 0: not known slow; 1: its node was lately slow; 2: given up as a straggler in this read. */
  private slowness(index: number): number {
    if (this.slow.has(index)) return 2;
    return this.cluster.isLikelySlow(this.segment.nodes![index]!) ? 1 : 0;
  }

  private nextSpare(): number | undefined {
    return this.spares()[0];
  }

  /** How many streams could be swapped for a shard on a node not known to be slow. */
  private fastSpares(): number {
    return this.spares().filter((i) => this.slowness(i) === 0).length;
  }

  close(): void {
    for (const cursor of this.cursors.values()) cursor.close();
  }
}

/** Fills blocks from a shard stream, failing if the stream stalls. */
class ShardCursor {
  /** What the stream delivered beyond the last block filled. */
  private leftover: Buffer | undefined;
  private closed = false;

  constructor(private readonly stream: ShardReader) {}

  async readInto(block: Buffer): Promise<void> {
    for (let filled = 0; filled < block.length;) {
      const piece = this.leftover ?? await withTimeout(this.stream.next(), READ_STALL_MS);
      // A block given up on may already be in the caller's hands: never write into it late.
      if (this.closed) throw new StoreError('Unavailable', 'shard read given up');
      if (!piece) throw new StoreError('Corrupt', 'shard ended early');
      const used = piece.copy(block, filled);
      filled += used;
      this.leftover = used < piece.length ? piece.subarray(used) : undefined;
    }
  }

  close(): void {
    this.closed = true;
    this.stream.cancel();
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StoreError('Unavailable', 'shard read stalled')), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
