// A restore's CPU-heavy blob work (open, decompress, verify) as batches that can run on a worker
// thread, and the packed forms batches of chunks and blobs travel in (a backup's naming and
// encoding: encode-lanes.ts). A batch's results come back in one buffer so they cross threads
// without copies.
import { type BlobCodec, rawLengths } from './blob-codec.js';
import { ID_BYTES } from './chunk-id.js';

/** A byte range of a task's data. */
export interface Piece {
  offset: number;
  length: number;
}

/** A chunk to encode: a byte range of a read and its id. */
export interface ChunkPiece extends Piece {
  id: Uint8Array;
}

/**
 * Plaintexts of the blobs found in `data`, back to back into `out`, each verified against its id.
 * The blobs travel packed (packBlobs) and their ids back to back in `ids`: one typed array crosses
 * threads ~10x faster than an object per blob (~0.5 ms per batch of 150 blobs).
 */
export type CodecTask = { op: 'decode'; data: Uint8Array; blobs: Float64Array; ids: Uint8Array; out: Uint8Array };

export interface CodecResult {
  data: Uint8Array;
  /** The task's data, handed back. */
  input: Uint8Array;
  /** Byte length of each plaintext in `data`. */
  lengths: number[];
}

export function runCodecTask(codec: BlobCodec, task: CodecTask): CodecResult {
  // Each plaintext goes straight to its place in the caller's output buffer.
  codec.decodeBlobs(task.data, task.blobs, task.ids, task.out);
  return { data: task.out, input: task.data, lengths: rawLengths(task.blobs) };
}

/** The ids of `items`, back to back, as encode and decode batches take them. */
export function packIds(items: ReadonlyArray<{ id: Uint8Array }>): Uint8Array {
  const ids = new Uint8Array(items.length * ID_BYTES);
  items.forEach((item, i) => ids.set(item.id, i * ID_BYTES));
  return ids;
}

/** Pieces as an encode batch takes them: offset and length each. */
export function packPieces(pieces: Piece[]): Float64Array {
  const packed = new Float64Array(pieces.length * 2);
  pieces.forEach((p, i) => packed.set([p.offset, p.length], i * 2));
  return packed;
}

/**
 * The buffers among `data` that move between threads (transferred, not copied); shared memory is
 * seen by both threads and stays where it is.
 */
export function movable(data: Uint8Array[]): ArrayBuffer[] {
  return data.map((d) => d.buffer).filter((b): b is ArrayBuffer => !(b instanceof SharedArrayBuffer));
}

/** A Buffer over part of `data`, without copying. */
export function view(data: Uint8Array, offset: number, length: number): Buffer {
  return Buffer.from(data.buffer, data.byteOffset + offset, length);
}

export function pieces(data: Uint8Array, lengths: number[]): Buffer[] {
  let at = data.byteOffset;
  return lengths.map((length) => {
    const piece = Buffer.from(data.buffer, at, length);
    at += length;
    return piece;
  });
}

