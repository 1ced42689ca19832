// On-disk format of one shard: the data, then one xxHash64 per block, then a fixed footer.
// The checksums travel in the same file as the data, so a single rename makes both durable and
// they can never disagree about which write they belong to.
//
//   [data: dataLength bytes][table: blockCount x u64 BE xxHash64][footer: 24 bytes]
//   footer = magic "TSH1" | blockSize u32 | dataLength u64 | xxHash64(table + first 16 footer bytes)
import type { FileHandle } from 'node:fs/promises';
import xxhash from 'xxhash-wasm';
import { StoreError } from '../common/errors.js';
import { nativeAddon } from '../common/native-addon.js';

const hasher = await xxhash();
const MAGIC = 0x54534831; // "TSH1"
export const FOOTER_BYTES = 24;
export const MAX_BLOCK_SIZE = 16 * 1024 * 1024;

/** xxHash64 of a block, natively on the block's own memory (xxhash-wasm copies it into its own first, at half the speed). */
export function blockChecksum(block: Uint8Array): bigint {
  return nativeAddon.xxh64(block);
}

/** A fast 32-bit hash of a name, to spread shard files over directories. */
export function nameHash(name: string): number {
  return hasher.h32(name);
}

export function blockCountOf(dataLength: number, blockSize: number): number {
  return Math.ceil(dataLength / blockSize);
}

/** Table and footer that close a shard file holding `dataLength` bytes. */
export function encodeTrailer(checksums: readonly bigint[], blockSize: number, dataLength: number): Buffer {
  const trailer = Buffer.allocUnsafe(checksums.length * 8 + FOOTER_BYTES);
  checksums.forEach((sum, i) => trailer.writeBigUInt64BE(sum, i * 8));
  const footer = checksums.length * 8;
  trailer.writeUInt32BE(MAGIC, footer);
  trailer.writeUInt32BE(blockSize, footer + 4);
  trailer.writeBigUInt64BE(BigInt(dataLength), footer + 8);
  trailer.writeBigUInt64BE(hasher.h64Raw(trailer.subarray(0, footer + 16)), footer + 16);
  return trailer;
}

export interface ShardLayout {
  blockSize: number;
  dataLength: number;
  checksums: bigint[];
}

/** Reads and checks the trailer of an open shard file; a damaged trailer is a corrupt shard. */
export async function readTrailer(file: FileHandle, fileSize: number, name: string): Promise<ShardLayout> {
  const corrupt = (why: string) => new StoreError('Corrupt', `shard ${name}: ${why}`, { block: 0 });
  if (fileSize < FOOTER_BYTES) throw corrupt('file shorter than its footer');
  const footer = Buffer.allocUnsafe(FOOTER_BYTES);
  await file.read(footer, 0, FOOTER_BYTES, fileSize - FOOTER_BYTES);
  if (footer.readUInt32BE(0) !== MAGIC) throw corrupt('bad footer magic');
  const blockSize = footer.readUInt32BE(4);
  const dataLength = Number(footer.readBigUInt64BE(8));
  const blockCount = blockSize > 0 ? blockCountOf(dataLength, blockSize) : -1;
  if (blockCount < 0 || dataLength + blockCount * 8 + FOOTER_BYTES !== fileSize) throw corrupt('size does not match footer');
  const table = Buffer.allocUnsafe(blockCount * 8 + FOOTER_BYTES);
  await file.read(table, 0, table.length, dataLength);
  if (hasher.h64Raw(table.subarray(0, blockCount * 8 + 16)) !== footer.readBigUInt64BE(16)) throw corrupt('checksum table damaged');
  const checksums: bigint[] = [];
  for (let i = 0; i < blockCount; i++) checksums.push(table.readBigUInt64BE(i * 8));
  return { blockSize, dataLength, checksums };
}
