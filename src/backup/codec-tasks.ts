// The CPU-heavy blob work of a backup or restore, as batches that can run on a worker thread:
// naming chunks (hash, zero detection), encoding new ones (compress, seal), opening fetched ones
// (open, decompress, verify). A batch's results come back in one buffer so they cross threads
// without copies.
import { type BlobCodec, rawLengths } from './blob-codec.js';
import { ID_BYTES } from './chunk-id.js';

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
  /** Stored forms of the pieces of `data`, back to back. */
  | { op: 'encode'; data: Uint8Array; pieces: ChunkPiece[] }
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
}

export function runCodecTask(codec: BlobCodec, task: CodecTask): CodecResult {
  switch (task.op) {
    case 'name': return { ...nameChunks(codec, view(task.data, 0, task.data.byteLength), task.chunkSize), input: task.data };
    case 'encode': return encodeChunks(codec, task.data, task.pieces);
    case 'decode':
      // Each plaintext goes straight to its place in the caller's output buffer.
      codec.decodeBlobs(task.data, task.blobs, task.ids, task.out);
      return { data: task.out, input: task.data, lengths: rawLengths(task.blobs), compressed: [] };
  }
}

/** The stored forms of the pieces, back to back in one fresh (transferable, unpooled) buffer. */
function encodeChunks(codec: BlobCodec, data: Uint8Array, chunks: ChunkPiece[]): CodecResult {
  const out = Buffer.from(new ArrayBuffer(chunks.reduce((sum, p) => sum + p.length + codec.overhead, 0)));
  const lengths: number[] = [];
  const compressed: boolean[] = [];
  let at = 0;
  for (const piece of chunks) {
    const encoded = codec.encodeInto(view(data, piece.offset, piece.length), piece.id, out.subarray(at));
    lengths.push(encoded.length);
    compressed.push(encoded.compressed);
    at += encoded.length;
  }
  // Packs keep the stored forms until uploaded: well-compressed ones move to a buffer their size.
  return { data: at < out.length / 2 ? new Uint8Array(out.subarray(0, at)) : out.subarray(0, at), lengths, compressed };
}

function nameChunks(codec: BlobCodec, data: Buffer, chunkSize: number): CodecResult {
  const count = Math.ceil(data.length / chunkSize);
  const ids = new Uint8Array(count * ID_BYTES);
  for (let i = 0; i < count; i++) {
    const chunk = data.subarray(i * chunkSize, (i + 1) * chunkSize);
    if (!isZero(chunk)) ids.set(codec.idOf(chunk), i * ID_BYTES);
  }
  return { data: ids, lengths: [], compressed: [] };
}

const ZEROES = Buffer.alloc(256 * 1024);

function isZero(chunk: Buffer): boolean {
  for (let at = 0; at < chunk.length; at += ZEROES.length) {
    const piece = chunk.subarray(at, at + ZEROES.length);
    if (!piece.equals(ZEROES.subarray(0, piece.length))) return false;
  }
  return true;
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

