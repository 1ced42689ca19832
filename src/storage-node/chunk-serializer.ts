// Serializing ShardChunk replies into one reused scratch buffer. grpc-js copies whatever the
// serializer returns into a freshly framed buffer at once (server-interceptors serializeMessage),
// so the protobuf encoding in between is garbage the moment it is made; for 256 KiB chunks that
// garbage alone kept the GC busy for a quarter of a GetShard's CPU time.
import type { pb } from '../common/node-service.js';

const DATA_FIELD_TAG = 0x0a; // field 1, wire type 2 (length-delimited)
let scratch = Buffer.allocUnsafeSlow(1024 * 1024 + 16);

function writeVarint(target: Buffer, offset: number, value: number): number {
  while (value > 0x7f) {
    target[offset++] = (value & 0x7f) | 0x80;
    value = Math.floor(value / 128);
  }
  target[offset++] = value;
  return offset;
}

/** Encodes `{ data }` as protobuf into the scratch buffer; valid until the next call. */
export function serializeChunkIntoScratch(chunk: pb.IShardChunk): Buffer {
  const data = chunk.data ?? new Uint8Array(0);
  if (data.length === 0) return Buffer.alloc(0);
  if (scratch.length < data.length + 16) scratch = Buffer.allocUnsafeSlow(data.length + 16);
  scratch[0] = DATA_FIELD_TAG;
  const start = writeVarint(scratch, 1, data.length);
  scratch.set(data, start);
  return scratch.subarray(0, start + data.length);
}
