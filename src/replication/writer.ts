// Streaming erasure writer: cuts a body into stripes, encodes parity and streams one shard to
// each placement node with backpressure. Memory is a few stripes in flight, whatever the object size.
// Small bodies (up to INLINE_LIMIT) are encoded in one stripe and returned as inline shards,
// so the caller stores each in that node's metadata record: one call per node, no shard files.
import { createHash, randomBytes } from 'node:crypto';
import { BufferPool } from '../common/buffer-pool.js';
import { StoreError } from '../common/errors.js';
import type { pb } from '../common/node-service.js';
import type { Cluster } from './cluster.js';
import { blockSizeFor, codecFor, INLINE_LIMIT, type Layout, shardSize, writeQuorum } from './layout.js';
import { ThreadedMd5 } from './md5-thread.js';
import type { ShardSink } from './node-client.js';
import { StragglerWatch } from './straggler.js';

export interface WrittenSegment {
  segment: pb.IDataSegment;
  md5Hex: string;
  /** Inline segments: shard i, to be stored in nodes[i]'s metadata record. */
  inlineShards?: Buffer[];
  /** Nodes that acknowledged their shard (all placement nodes for inline segments). */
  durableOn: string[];
}

export function newDataId(): string {
  return `${Date.now().toString(36)}-${randomBytes(10).toString('hex')}`;
}

/** Encode one stripe: returns k+m shards of equal length (data zero-padded). */
export function encodeStripe(data: Buffer, layout: Layout): Buffer[] {
  const blockSize = blockSizeFor(data.length, layout);
  const stripe = Buffer.alloc(blockSize * layout.dataShards);
  data.copy(stripe);
  const shards = Array.from({ length: layout.dataShards }, (_, i) => stripe.subarray(i * blockSize, (i + 1) * blockSize));
  const parity = Array.from({ length: layout.parityShards }, () => Buffer.alloc(blockSize));
  codecFor(layout)?.encode(shards, parity);
  return [...shards, ...parity];
}

export interface WriteOptions {
  /** Parts of multipart uploads always get shard files, so completing never moves bytes. */
  allowInline?: boolean;
}

export async function writeSegment(cluster: Cluster, nodes: string[], layout: Layout, body: AsyncIterable<Buffer>,
  options: WriteOptions = {}): Promise<WrittenSegment> {
  const iterator = body[Symbol.asyncIterator]();
  const head = await readUpTo(iterator, INLINE_LIMIT + 1);
  const segment: pb.IDataSegment = {
    dataId: newDataId(),
    layout: { ...layout },
    nodes,
  };
  if (head.ended && head.data.length <= INLINE_LIMIT && options.allowInline !== false) {
    return {
      segment: { ...segment, size: head.data.length, inline: true },
      md5Hex: createHash('md5').update(head.data).digest('hex'),
      inlineShards: head.data.length ? encodeStripe(head.data, layout) : nodes.map(() => Buffer.alloc(0)),
      durableOn: nodes,
    };
  }
  const stream = new StripeStreamer(cluster, nodes, layout, segment.dataId!);
  try {
    let size = await stream.push(head.data);
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
      size = await stream.push(next.value);
    }
    const { durableOn, md5Hex } = await stream.finish();
    return { segment: { ...segment, size }, md5Hex, durableOn };
  } catch (err) {
    await stream.abort();
    throw err;
  }
}

/**
 * Whether a node's confirmation covers the whole shard: one that stored fewer bytes than were sent
 * (its stream cut short, say) holds a shard that would end early on every read, so it counts as
 * not written and the version goes to heal.
 */
export function storedWhole(result: pb.IShardWriteResult | undefined, expectedBytes: number): boolean {
  return result !== undefined && Number(result.bytes) === expectedBytes;
}

async function readUpTo(iterator: AsyncIterator<Buffer>, limit: number): Promise<{ data: Buffer; ended: boolean }> {
  const chunks: Buffer[] = [];
  let length = 0;
  while (length < limit) {
    const next = await iterator.next();
    if (next.done) return { data: Buffer.concat(chunks, length), ended: true };
    chunks.push(next.value);
    length += next.value.length;
  }
  return { data: Buffer.concat(chunks, length), ended: false };
}

/** Stripe buffers, reused across writes: allocating 1.5 MiB per stripe kept the GC busy. */
const stripes = new BufferPool(16);

/** Stripes a write may have waiting for MD5 (which bounds memory when hashing falls behind). */
const MAX_STRIPES_HASHING = 2;
/** A shard stream that alone keeps a write waiting this long is given up, its shard left to heal. */
const WRITE_STRAGGLER_MS = 300;

/** Fills stripes from incoming chunks, sends each shard block to its node and hashes the data. */
class StripeStreamer {
  private readonly writers: Array<ShardSink | undefined>;
  private readonly md5 = new ThreadedMd5();
  /** Stripes handed to MD5 and not yet read by it, oldest first. */
  private readonly hashing: Array<Promise<void>> = [];
  /** The stripe being filled; taken from the pool when the first bytes arrive. */
  private stripe: Buffer | undefined;
  private filled = 0;
  private total = 0;
  private readonly quorum: number;
  private readonly stragglers = new StragglerWatch(WRITE_STRAGGLER_MS);

  constructor(private readonly cluster: Cluster, private readonly nodes: string[], private readonly layout: Layout, private readonly dataId: string) {
    this.quorum = writeQuorum(layout.dataShards, layout.parityShards);
    this.writers = nodes.map((id, shardIndex) => (cluster.isLikelyUp(id)
      ? cluster.client(id).openShardWriter({ dataId, shardIndex, blockSize: layout.blockSize })
      : undefined));
    this.checkQuorum();
  }

  private newStripe(): Buffer {
    return stripes.take(this.layout.blockSize * (this.layout.dataShards + this.layout.parityShards));
  }

  /** A stripe goes back to the pool once every transport and MD5 have released it. */
  private releaser(stripe: Buffer, users: number): () => void {
    let remaining = users;
    return () => {
      if (--remaining === 0) stripes.give(stripe);
    };
  }

  async push(chunk: Buffer): Promise<number> {
    const capacity = this.layout.blockSize * this.layout.dataShards;
    let offset = 0;
    while (offset < chunk.length) {
      this.stripe ??= this.newStripe();
      const n = chunk.copy(this.stripe, this.filled, offset, offset + capacity - this.filled);
      offset += n;
      this.filled += n;
      this.total += n;
      if (this.filled === capacity) await this.flush();
    }
    return this.total;
  }

  /** Encode and send the buffered stripe (the last one may be short). */
  private async flush(): Promise<void> {
    const stripe = this.stripe!;
    const blockSize = blockSizeFor(this.filled, this.layout);
    stripe.fill(0, this.filled, blockSize * this.layout.dataShards);
    const blocks = Array.from({ length: this.layout.dataShards + this.layout.parityShards },
      (_, i) => stripe.subarray(i * blockSize, (i + 1) * blockSize));
    codecFor(this.layout)?.encode(blocks.slice(0, this.layout.dataShards), blocks.slice(this.layout.dataShards));
    const release = this.releaser(stripe, this.writers.filter(Boolean).length + 1);
    this.hashing.push(this.md5.update(stripe.subarray(0, this.filled)).then(release));
    this.stripe = undefined;
    this.filled = 0;
    await this.awaitWriters(this.writers.map((w, i) => w?.write(blocks[i]!, release)));
    if (this.hashing.length > MAX_STRIPES_HASHING) await this.hashing.shift();
    this.checkQuorum();
  }

  /**
   * Waits for one step of every writer, but gives up a writer that keeps the others waiting while
   * a shard beyond the write quorum would still be left: its node's shard is left to heal.
   */
  private async awaitWriters(steps: Array<Promise<unknown> | undefined>): Promise<void> {
    const spares = this.healthyWriters().length - (this.quorum + 1);
    const dropped = await this.stragglers.step(steps, spares);
    for (const i of dropped) {
      this.writers[i]!.abort();
      this.cluster.markSlow(this.nodes[i]!);
    }
    await Promise.all(steps.filter((_, i) => !dropped.includes(i)));
  }

  private healthyWriters(): ShardSink[] {
    return this.writers.filter((w): w is ShardSink => w !== undefined && !w.failed);
  }

  private checkQuorum(): void {
    if (this.healthyWriters().length < this.quorum) {
      const reasons = this.writers.map((w, i) => (w ? w.failed?.message : `node ${this.nodes[i]} is down`)).filter(Boolean);
      throw new StoreError('QuorumFailed', `write quorum lost (${reasons.join('; ')})`);
    }
  }

  /** Flush the tail, close every stream; the nodes that made their shard durable and the data's MD5. */
  async finish(): Promise<{ durableOn: string[]; md5Hex: string }> {
    if (this.filled > 0) await this.flush();
    const finishing = this.writers.map((w) => w?.finish());
    await this.awaitWriters(finishing);
    const [md5Hex, ...results] = await Promise.all([this.md5.digest(), ...finishing]);
    const expected = shardSize(this.total, this.layout);
    const durableOn = this.nodes.filter((_, i) => storedWhole(results[i] as pb.IShardWriteResult | undefined, expected));
    if (durableOn.length < this.quorum) {
      await this.deleteShards(durableOn);
      throw new StoreError('QuorumFailed', `only ${durableOn.length} of ${this.nodes.length} shards became durable`);
    }
    return { durableOn, md5Hex: md5Hex as string };
  }

  async abort(): Promise<void> {
    if (this.stripe) stripes.give(this.stripe);
    this.stripe = undefined;
    for (const w of this.writers) w?.abort();
    await this.deleteShards(this.nodes);
  }

  private async deleteShards(nodeIds: string[]): Promise<void> {
    await this.cluster.fanOut(nodeIds, (client, id) =>
      client.deleteShards([{ dataId: this.dataId, shardIndex: this.nodes.indexOf(id) }]));
  }
}
