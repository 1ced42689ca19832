// The metadata channel: the node's unary calls (PutMeta, GetMeta, ... the same protobuf requests
// and replies as gRPC) over one plain TCP connection per client and node, many calls in flight at
// once. A 4 KiB PUT on the 6-node cluster is six record writes and a GET four record reads, and
// under gRPC each call cost the gateway and the node HTTP/2 streams, headers, a call stack of
// interceptors and several promises and timers — more CPU than the records in it. The gRPC service
// stays the contract: a node advertises the channel in Health.meta_address, and clients use gRPC
// where it has none (node TLS, an older node) or it cannot be reached.
//
// Every message is a frame: u32 length of the rest, then
//   hello (client, first):   "TSM1", u8 node-id length, the node id it means to reach, cluster token
//   welcome (node):          u32 0, u8 status: OK, else UNAUTHENTICATED or NOT_FOUND (another node
//                            listens there now: ports are not kept across restarts) and the node
//                            hangs up without running any call
//   request (client):        u32 call id, u8 method-name length, method name, request bytes
//   answer (node):           u32 call id, u8 gRPC status code, reply bytes (or UTF-8 details)
// All integers big-endian. Answers come in any order; the call id pairs them with requests.

export const META_MAGIC = Buffer.from('TSM1');
/** As gRPC's message limit on node channels (bulkChannelOptions). */
export const MAX_META_FRAME = 64 * 1024 * 1024;
/** A hello holds a node id (up to 255 bytes) and a cluster token. */
export const MAX_HELLO_FRAME = 1024;

/** One frame: the u32 length, then `parts`. */
export function frame(parts: readonly Buffer[]): Buffer {
  const length = parts.reduce((sum, part) => sum + part.length, 0);
  const out = Buffer.allocUnsafe(4 + length);
  out.writeUInt32BE(length, 0);
  let at = 4;
  for (const part of parts) at += part.copy(out, at);
  return out;
}

export function helloFrame(nodeId: string, token: string): Buffer {
  const id = Buffer.from(nodeId);
  return frame([META_MAGIC, Buffer.of(id.length), id, Buffer.from(token)]);
}

export function parseHello(bytes: Buffer): { nodeId: string; token: string } | undefined {
  if (bytes.length < 5 || !bytes.subarray(0, 4).equals(META_MAGIC)) return undefined;
  const idEnd = 5 + bytes.readUInt8(4);
  return { nodeId: bytes.toString('utf8', 5, idEnd), token: bytes.toString('utf8', idEnd) };
}

export function requestFrame(id: number, method: string, request: Buffer): Buffer {
  const head = Buffer.allocUnsafe(5);
  head.writeUInt32BE(id, 0);
  head.writeUInt8(method.length, 4);
  return frame([head, Buffer.from(method, 'latin1'), request]);
}

export function answerFrame(id: number, code: number, body: Buffer): Buffer {
  const head = Buffer.allocUnsafe(5);
  head.writeUInt32BE(id, 0);
  head.writeUInt8(code, 4);
  return frame([head, body]);
}

/** The id and status of an answer (or welcome), and its body. */
export function parseAnswer(bytes: Buffer): { id: number; code: number; body: Buffer } {
  return { id: bytes.readUInt32BE(0), code: bytes.readUInt8(4), body: bytes.subarray(5) };
}

export function parseRequest(bytes: Buffer): { id: number; method: string; request: Buffer } {
  const nameEnd = 5 + bytes.readUInt8(4);
  return { id: bytes.readUInt32BE(0), method: bytes.toString('latin1', 5, nameEnd), request: bytes.subarray(nameEnd) };
}

export class FrameTooLarge extends Error {}

/**
 * Cuts a byte stream into frames. Small frames arrive many to a socket read, so they are sliced
 * out of the read's buffer; the reads of a frame split across several are joined once it is whole.
 */
export class FrameSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes the frame at the start of `pending` needs in all (its length prefix included). */
  private needed = 4;

  constructor(public maxFrame = MAX_META_FRAME) {}

  /** The frames `chunk` completes: slices of the socket's read buffers (fresh per read, never reused). */
  push(chunk: Buffer): Buffer[] {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes < this.needed) return [];
    const data = this.pending.length === 1 ? chunk : Buffer.concat(this.pending, this.pendingBytes);
    const frames: Buffer[] = [];
    let at = 0;
    for (;;) {
      const left = data.length - at;
      this.needed = left < 4 ? 4 : 4 + data.readUInt32BE(at);
      if (this.needed - 4 > this.maxFrame) throw new FrameTooLarge(`metadata frame of ${this.needed - 4} bytes`);
      if (left < this.needed) break;
      frames.push(data.subarray(at + 4, at + this.needed));
      at += this.needed;
    }
    this.pending = at < data.length ? [data.subarray(at)] : [];
    this.pendingBytes = data.length - at;
    return frames;
  }
}
