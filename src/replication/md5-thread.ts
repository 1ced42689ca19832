// MD5 of large bodies off the event loop. A body's bytes already pass through stripe buffers on
// their way to the nodes; the native addon hashes each stripe in place on a thread of its own
// (native/erasure/md5.c) while the event loop goes on moving bytes. That thread hashes the bodies
// arriving together side by side (up to 4 in one loop of scalar code, more in AVX-512 lanes),
// several costing about what one does: MD5 was half of a large PUT's gateway CPU. (A worker
// thread fed over postMessage needed its stripes in shared memory, into which V8 copies with
// relaxed atomics at a fifth of memcpy's speed: 5 % of a cluster's CPU in 64 MiB PUTs, perf.)
import { nativeAddon } from '../common/native-addon.js';

/** One running MD5, fed in order; each update's bytes must stay unchanged until it resolves. */
export class ThreadedMd5 {
  private readonly state = nativeAddon.md5Start();
  /** The latest update; updates finish in order, so once it has every earlier one has. */
  private last: Promise<void> = Promise.resolve();

  /** Hash `bytes` next; resolves once the MD5 thread is done reading them. */
  update(bytes: Uint8Array): Promise<void> {
    this.last = new Promise((resolve) => nativeAddon.md5Update(this.state, bytes, resolve));
    return this.last;
  }

  async digest(): Promise<string> {
    await this.last;
    return nativeAddon.md5Digest(this.state).toString('hex');
  }
}
