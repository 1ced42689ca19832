// The CPU-heavy blob work of a backup or restore, as batches that can run on a worker thread:
// naming chunks (hash, zero detection), encoding new ones (compress, seal), opening fetched ones
// (open, decompress, verify). A batch's results come back in one buffer so they cross threads
// without copies.
import { type BlobCodec, rawLengths } from './blob-codec.js';
import { ID_BYTES, ZERO_ID } from './chunk-id.js';

/** A byte range of a task's data. */
export interface Piece {
  offset: number;
  length: number;
}

/** A chunk to encode: a byte range of the task's data and its id. */
export interface ChunkPiece extends Piece {
  id: Uint8Array;
}

export type CodecTask =
  /** Ids of the chunkSize pieces of `data`, which comes back too; all-zero pieces get ZERO_ID. */
  | { op: 'name'; data: Uint8Array; chunkSize: number }
  /**
   * Stored forms of pieces of `data`, back to back into `out` (room for each piece and the codec's
   * overhead). The pieces travel packed (offset and length each, packPieces) and their ids back to
   * back: an object per piece, each with its own id array, cost ~0.1 ms per batch to cross threads.
   */
  | { op: 'encode'; data: Uint8Array; pieces: Float64Array; ids: Uint8Array; out: Uint8Array }
  /**
   * 'name', then 'encode' of every chunk that is not all zero, in one trip: for reads whose chunks
   * are new in nearly every case (an incremental's dirty extents). `lengths` has an entry per
   * chunk (0 for a zero chunk), and the ids come in `ids`.
   */
  | { op: 'name and encode'; data: Uint8Array; chunkSize: number; out: Uint8Array }
  /**
   * Plaintexts of the blobs found in `data`, back to back into `out`, each verified against its
   * id. The blobs travel packed (packBlobs) and their ids back to back in `ids`: one typed array
   * crosses threads ~10x faster than an object per blob (~0.5 ms per batch of 150 blobs).
   */
  | { op: 'decode'; data: Uint8Array; blobs: Float64Array; ids: Uint8Array; out: Uint8Array };

export interface CodecResult {
  data: Uint8Array;
  /** name, decode: the task's data, handed back. */
  input?: Uint8Array;
  /** Byte length of each item in `data` (encode, decode). */
  lengths: number[];
  /** Per encoded blob: kept compressed. */
  compressed: boolean[];
  /** encode: the stored forms moved to a buffer of their own, leaving `out` unused. */
  compacted?: boolean;
  /** name and encode: the chunks' ids. */
  ids?: Uint8Array;
}

export function runCodecTask(codec: BlobCodec, task: CodecTask): CodecResult {
  switch (task.op) {
    case 'name': return { data: codec.nameChunks(task.data, task.chunkSize), lengths: [], compressed: [], input: task.data };
    case 'encode': return encodeChunks(codec, task);
    case 'name and encode': return nameAndEncodeChunks(codec, task);
    case 'decode':
      // Each plaintext goes straight to its place in the caller's output buffer.
      codec.decodeBlobs(task.data, task.blobs, task.ids, task.out);
      return { data: task.out, input: task.data, lengths: rawLengths(task.blobs), compressed: [] };
  }
}

/**
 * The stored forms of the pieces, back to back in the task's `out`; a well-compressed batch moves
 * to a fresh buffer its size (packs keep stored forms until uploaded, and `out` is free at once).
 */
function encodeChunks(codec: BlobCodec, { data, pieces, ids, out }: Extract<CodecTask, { op: 'encode' }>): CodecResult {
  const { length, stored } = codec.encodeBlobs(data, pieces, ids, out);
  const lengths = Array.from({ length: stored.length / 2 }, (_, i) => stored[2 * i]!);
  const compressed = Array.from({ length: stored.length / 2 }, (_, i) => stored[2 * i + 1] === 1);
  const compacted = length < out.byteLength / 2;
  return { data: compacted ? new Uint8Array(out.subarray(0, length)) : out.subarray(0, length), lengths, compressed, compacted };
}

/** The ids of a task's chunks, and the stored forms of those that are not all zero. */
function nameAndEncodeChunks(codec: BlobCodec, { data, chunkSize, out }: Extract<CodecTask, { op: 'name and encode' }>): CodecResult {
  const ids = codec.nameChunks(data, chunkSize);
  const chunks = Array.from({ length: ids.length / ID_BYTES }, (_, i) => ({ offset: i * chunkSize, length: Math.min(chunkSize, data.byteLength - i * chunkSize), id: ids.subarray(i * ID_BYTES, (i + 1) * ID_BYTES) }));
  const isData = chunks.map((chunk) => !ZERO_ID.equals(chunk.id));
  const live = chunks.filter((_, i) => isData[i]);
  const encoded = encodeChunks(codec, { op: 'encode', data, pieces: packPieces(live), ids: packIds(live), out });
  // Per chunk, with nothing stored for a zero chunk.
  let next = 0;
  const lengths = isData.map((stored) => (stored ? encoded.lengths[next++]! : 0));
  next = 0;
  const compressed = isData.map((stored) => stored && encoded.compressed[next++]!);
  return { ...encoded, lengths, compressed, ids, input: data };
}

/** The ids of `items`, back to back, as encode and decode tasks take them. */
export function packIds(items: ReadonlyArray<{ id: Uint8Array }>): Uint8Array {
  const ids = new Uint8Array(items.length * ID_BYTES);
  items.forEach((item, i) => ids.set(item.id, i * ID_BYTES));
  return ids;
}

/** Pieces as an encode task takes them: offset and length each. */
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

