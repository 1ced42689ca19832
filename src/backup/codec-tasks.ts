// The CPU-heavy blob work of a backup or restore, as batches that can run on a worker thread:
// naming chunks (hash, zero detection), encoding new ones (compress, seal), opening fetched ones
// (open, decompress, verify). A batch's results come back in one buffer so they cross threads
// without copies.
import { type BlobCodec } from './blob-codec.js';
import { ID_BYTES } from './format.js';

/** One stored blob inside a fetched range. */
export interface StoredBlob {
  offset: number;
  length: number;
  id: Uint8Array;
  compressed: boolean;
}

export type CodecTask =
  /** Ids of the chunkSize pieces of `data`; all-zero pieces get ZERO_ID (all zero bytes). */
  | { op: 'name'; data: Uint8Array; chunkSize: number }
  /** Stored forms of the blobs, back to back. */
  | { op: 'encode'; data: Uint8Array; lengths: number[] }
  /** Plaintexts of the blobs found in `data`, back to back, each verified against its id. */
  | { op: 'decode'; data: Uint8Array; blobs: StoredBlob[] };

export interface CodecResult {
  data: Uint8Array;
  /** Byte length of each item in `data` (encode, decode). */
  lengths: number[];
  /** Per encoded blob: kept compressed. */
  compressed: boolean[];
}

export function runCodecTask(codec: BlobCodec, task: CodecTask): CodecResult {
  switch (task.op) {
    case 'name': return nameChunks(codec, Buffer.from(task.data.buffer, task.data.byteOffset, task.data.byteLength), task.chunkSize);
    case 'encode': {
      const encoded = pieces(task.data, task.lengths).map((plain) => codec.encode(plain));
      return { ...concatenate(encoded.map((e) => e.stored)), compressed: encoded.map((e) => e.compressed) };
    }
    case 'decode': {
      const plains = task.blobs.map((b) => codec.decode(Buffer.from(task.data.buffer, task.data.byteOffset + b.offset, b.length), b.id, b.compressed));
      return { ...concatenate(plains), compressed: [] };
    }
  }
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

export function pieces(data: Uint8Array, lengths: number[]): Buffer[] {
  let at = data.byteOffset;
  return lengths.map((length) => {
    const piece = Buffer.from(data.buffer, at, length);
    at += length;
    return piece;
  });
}

/** Copies the parts into one fresh (transferable, unpooled) buffer. */
export function concatenate(parts: Uint8Array[]): { data: Uint8Array; lengths: number[] } {
  const data = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
  let at = 0;
  for (const part of parts) {
    data.set(part, at);
    at += part.length;
  }
  return { data, lengths: parts.map((p) => p.length) };
}
