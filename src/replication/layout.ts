// Erasure layout arithmetic: stripes, shard blocks and quorums. One stripe is up to
// `stripeSize` bytes of object data cut into k equal blocks (the last block zero-padded)
// plus m parity blocks; the last stripe of a segment may be shorter.
import type { pb } from '../common/node-service.js';
import { createCodec, type ErasureCodec } from './erasure/index.js';

export const STRIPE_SIZE = 1024 * 1024;
/** Segments up to this size keep their shards inline in the metadata records. */
export const INLINE_LIMIT = 128 * 1024;
const ALIGN = 64;

export interface Layout {
  dataShards: number;
  parityShards: number;
  stripeSize: number;
  blockSize: number;
}

const alignUp = (n: number) => Math.ceil(n / ALIGN) * ALIGN;

export function makeLayout(dataShards: number, parityShards: number, stripeSize = STRIPE_SIZE): Layout {
  return { dataShards, parityShards, stripeSize, blockSize: alignUp(Math.ceil(stripeSize / dataShards)) };
}

export function layoutOf(segment: pb.IDataSegment): Layout {
  const l = segment.layout!;
  return { dataShards: l.dataShards!, parityShards: l.parityShards ?? 0, stripeSize: l.stripeSize!, blockSize: l.blockSize! };
}

export function stripeCount(size: number, layout: Layout): number {
  return Math.ceil(size / layout.stripeSize);
}

/** Bytes of object data in stripe `index`. */
export function stripeDataSize(size: number, layout: Layout, index: number): number {
  return Math.min(layout.stripeSize, size - index * layout.stripeSize);
}

/** Bytes each shard holds for a stripe carrying `dataBytes` of object data. */
export function blockSizeFor(dataBytes: number, layout: Layout): number {
  return dataBytes >= layout.stripeSize ? layout.blockSize : alignUp(Math.ceil(dataBytes / layout.dataShards));
}

/** Total bytes of one shard of a segment. */
export function shardSize(size: number, layout: Layout): number {
  const stripes = stripeCount(size, layout);
  if (stripes === 0) return 0;
  return (stripes - 1) * layout.blockSize + blockSizeFor(stripeDataSize(size, layout, stripes - 1), layout);
}

/** A write is acknowledged once this many shards (and metadata records) are durable. */
export function writeQuorum(dataShards: number, parityShards: number): number {
  return dataShards === parityShards ? Math.min(dataShards + 1, dataShards + parityShards) : dataShards;
}

/** Metadata answers needed so a read overlaps every acknowledged write. */
export function readQuorum(dataShards: number, parityShards: number): number {
  return dataShards + parityShards - writeQuorum(dataShards, parityShards) + 1;
}

/** Default erasure code for a cluster of `nodes` nodes. */
export function defaultErasure(nodes: number): { dataShards: number; parityShards: number } {
  if (nodes >= 16) return { dataShards: 12, parityShards: 4 };
  if (nodes >= 12) return { dataShards: 8, parityShards: 4 };
  if (nodes >= 6) return { dataShards: 4, parityShards: 2 };
  if (nodes >= 4) return { dataShards: 2, parityShards: 2 };
  if (nodes >= 3) return { dataShards: 2, parityShards: 1 };
  if (nodes === 2) return { dataShards: 1, parityShards: 1 };
  return { dataShards: 1, parityShards: 0 };
}

const codecs = new Map<string, ErasureCodec>();

/** The (cached) codec for a layout; undefined when it has no parity. */
export function codecFor(layout: Layout): ErasureCodec | undefined {
  if (layout.parityShards === 0) return undefined;
  const key = `${layout.dataShards}+${layout.parityShards}`;
  let codec = codecs.get(key);
  if (!codec) codecs.set(key, (codec = createCodec(layout.dataShards, layout.parityShards)));
  return codec;
}
