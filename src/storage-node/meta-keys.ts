// LevelDB key layout of a storage node. Keys are byte strings so that LevelDB's byte order is the
// listing order. Variable parts are UTF-8 strings ended by 0x00 (they may not contain NUL), so a
// shorter key sorts before its extensions exactly as S3's UTF-8 binary order wants.
//
//   o 0 bucket 0 key 0 <~hlc u64 BE> versionId     -> ObjectVersion   (newest first per key)
//   v 0 bucket 0 key 0 versionId                   -> <~hlc u64 BE>   (finds a version's record)
//   t 0 bucket 0 key 0 versionId                   -> <hlc u64><deleted at ms u64> (tombstone)
//   k 0 bucket 0 key 0 versionId                   -> KeptRecord (what a revertible write replaced)
//   x 0 bucket 0 key 0 versionId                   -> <hlc u64><revision u64><at ms u64> (reverted write)
//   u 0 bucket 0 key 0 uploadId                    -> UploadRecord without parts
//   d 0 bucket 0 key 0 uploadId                    -> <0 u64><deleted at ms u64> (ended upload)
//   p 0 bucket 0 key 0 uploadId 0 <part u32 BE>    -> <hlc u64><DataSegment>
//   r 0 namespace 0 key                            -> Record
//   m                                              -> ClusterMap
import { StoreError } from '../common/errors.js';

const SEPARATOR = 0x00;
const MAX_U64 = 0xffff_ffff_ffff_ffffn;

export enum Space {
  Object = 'o',
  VersionIndex = 'v',
  Tombstone = 't',
  Kept = 'k',
  Reverted = 'x',
  Upload = 'u',
  EndedUpload = 'd',
  Part = 'p',
  Record = 'r',
  ClusterMap = 'm',
}

function checked(value: string, what: string): string {
  if (value.includes('\0')) throw new StoreError('InvalidArgument', `${what} may not contain NUL`);
  return value;
}

function component(value: string, what: string): Buffer {
  return Buffer.from(checked(value, what), 'utf8');
}

/**
 * `space 0 a 0 b 0 ... partial` as a string: NUL is one 0x00 byte in UTF-8, so encoding the joined
 * string once gives the key's bytes (a node builds several keys per record it writes, and a
 * Buffer per part made that a noticeable share of its CPU and garbage).
 */
function joinedKey(space: Space, parts: readonly string[], partial: string): string {
  let joined: string = space;
  for (const part of parts) joined += '\0' + checked(part, 'name');
  return joined + '\0' + checked(partial, 'prefix');
}

/** `space 0 a 0 b 0 ... partial`: the prefix shared by every key under these parts whose next
 *  part starts with `partial` (with no partial, exactly the keys under these parts). */
export function prefixKey(space: Space, parts: readonly string[], partial = ''): Buffer {
  return Buffer.from(joinedKey(space, parts, partial), 'utf8');
}

/** The prefix of a bucket's object keys that start with `keyPrefix`. */
export function objectKeyPrefix(bucket: string, keyPrefix: string): Buffer {
  return prefixKey(Space.Object, [bucket], keyPrefix);
}

/** The key of one record under its parts: `space 0 a 0 b 0`. */
export function recordKey(space: Space, ...parts: string[]): Buffer {
  return Buffer.from(joinedKey(space, parts.slice(0, -1), parts[parts.length - 1] ?? '') + '\0', 'utf8');
}

/** The first key after every version of `key` and every key that extends it with 0x01.. bytes. */
export function afterObjectVersions(bucket: string, key: string): Buffer {
  return Buffer.concat([objectKeyPrefix(bucket, key), Buffer.of(0x01)]);
}

/** The first key after every object key that starts with `keyPrefix` (UTF-8 never has 0xff). */
export function afterObjectPrefix(bucket: string, keyPrefix: string): Buffer {
  return Buffer.concat([objectKeyPrefix(bucket, keyPrefix), Buffer.of(0xff)]);
}

export function invertedHlc(hlc: number): Buffer {
  const out = Buffer.allocUnsafe(8);
  out.writeBigUInt64BE(MAX_U64 - BigInt(hlc));
  return out;
}

export function hlcOfInverted(inverted: Buffer): number {
  return Number(MAX_U64 - inverted.readBigUInt64BE(0));
}

export function objectKey(bucket: string, key: string, invHlc: Buffer, versionId: string): Buffer {
  return Buffer.concat([recordKey(Space.Object, bucket, key), invHlc, component(versionId, 'version id')]);
}


export function partKey(bucket: string, key: string, uploadId: string, partNumber: number): Buffer {
  const number = Buffer.allocUnsafe(4);
  number.writeUInt32BE(partNumber);
  return Buffer.concat([recordKey(Space.Part, bucket, key, uploadId), number]);
}

/** Key of a single-slot record such as the cluster map. */
export function singletonKey(space: Space): Buffer {
  return Buffer.from(space);
}

export function encodeU64Pair(a: number, b: number): Buffer {
  const out = Buffer.allocUnsafe(16);
  out.writeBigUInt64BE(BigInt(a), 0);
  out.writeBigUInt64BE(BigInt(b), 8);
  return out;
}

export function readU64(buffer: Buffer, offset = 0): number {
  return Number(buffer.readBigUInt64BE(offset));
}

/** Splits `space 0 a 0 b 0 rest` into its NUL-ended string parts and the remaining bytes. */
export function splitKey(keyBytes: Buffer, partCount: number): { parts: string[]; rest: Buffer } {
  const parts: string[] = [];
  let start = 2;
  for (let i = 0; i < partCount; i++) {
    const end = keyBytes.indexOf(SEPARATOR, start);
    parts.push(keyBytes.toString('utf8', start, end));
    start = end + 1;
  }
  return { parts, rest: keyBytes.subarray(start) };
}

/** Exclusive upper bound of every key in a space. */
export function spaceEnd(space: Space): Buffer {
  return Buffer.from(String.fromCharCode(space.charCodeAt(0) + 1));
}

export interface KeyRange {
  gte: Buffer;
  lt: Buffer;
}

/** Keys that extend `prefix` with more name bytes (UTF-8, or a 0x00 terminator: never 0xff). */
export function namesStartingWith(prefix: Buffer): KeyRange {
  return { gte: prefix, lt: Buffer.concat([prefix, Buffer.of(0xff)]) };
}

/** Keys under a record key `... 0` followed by binary bytes (inverted hlc, part number). */
export function keysUnder(recordPrefix: Buffer): KeyRange {
  const lt = Buffer.from(recordPrefix);
  lt[lt.length - 1] = SEPARATOR + 1;
  return { gte: recordPrefix, lt };
}
