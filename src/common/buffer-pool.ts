// A small pool of read/write buffers keyed by size. Allocating a fresh block buffer per read and
// letting the GC hand it back to the kernel made receive cost swing 5x; reusing a few keeps the
// working set warm and steady.
export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();

  constructor(private readonly keepPerSize = 8) {}

  take(size: number): Buffer {
    return this.free.get(size)?.pop() ?? Buffer.allocUnsafeSlow(size);
  }

  give(buffer: Buffer): void {
    const list = this.free.get(buffer.length) ?? [];
    if (list.length >= this.keepPerSize) return;
    list.push(buffer);
    this.free.set(buffer.length, list);
  }
}
