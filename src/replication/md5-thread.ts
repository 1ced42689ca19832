// MD5 of large bodies off the event loop. A body's bytes already pass through stripe buffers on
// their way to the nodes; the native addon hashes each stripe in place on libuv's thread pool
// (native/erasure/md5.c) while the event loop goes on moving bytes, and several bodies hash on
// several threads at once. On the event loop MD5 took a third of a large PUT's time there. (A
// worker thread fed over postMessage needed its stripes in shared memory, into which V8 copies
// with relaxed atomics at a fifth of memcpy's speed: 5 % of a cluster's CPU in 64 MiB PUTs, perf.)
import { nativeAddon } from '../common/native-addon.js';

/** One running MD5, fed in order; each update's bytes must stay unchanged until it resolves. */
export class ThreadedMd5 {
  private readonly state = nativeAddon.md5Start();
  /** The latest update: the next starts once it is done (one state is hashed by one thread at a time). */
  private tail: Promise<void> = Promise.resolve();

  /** Hash `bytes` next; resolves once the thread pool is done reading them. */
  update(bytes: Uint8Array): Promise<void> {
    this.tail = this.tail.then(() => new Promise((resolve) => nativeAddon.md5Update(this.state, bytes, resolve)));
    return this.tail;
  }

  async digest(): Promise<string> {
    await this.tail;
    return nativeAddon.md5Digest(this.state).toString('hex');
  }
}
