// A small pool of buffers keyed by size (a node's shard blocks, the gateway's stripes). Allocating
// a fresh block buffer per read and letting the GC hand it back to the kernel made a node's
// receive cost swing 5x; reusing a few keeps the working set warm and steady.
export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();

  constructor(private readonly keepPerSize = 8, private readonly allocate: (size: number) => Buffer = Buffer.allocUnsafeSlow) {}

  take(size: number): Buffer {
    return this.free.get(size)?.pop() ?? this.allocate(size);
  }

  give(buffer: Buffer): void {
    const list = this.free.get(buffer.length) ?? [];
    if (list.length >= this.keepPerSize) return;
    list.push(buffer);
    this.free.set(buffer.length, list);
  }

  /**
   * A buffer handed to a consumer several layers away (a GET's stripe, sent by the HTTP response):
   * its last user returns it with returnLent() on any view of it; one never returned is simply
   * collected. The buffer must own its memory (the default allocator's buffers do).
   */
  lend(size: number): Buffer {
    const buffer = this.take(size);
    lenders.set(buffer.buffer, { pool: this, buffer });
    return buffer;
  }
}

/** Lent buffers by their memory, so a view of one finds its way back to its pool. */
const lenders = new WeakMap<ArrayBufferLike, { pool: BufferPool; buffer: Buffer }>();

/** Hands a lent buffer back to its pool: the caller (its last user) holds no view of it after this. */
export function returnLent(view: Uint8Array): void {
  const lender = lenders.get(view.buffer);
  if (!lender) return;
  lenders.delete(view.buffer);
  lender.pool.give(lender.buffer);
}
