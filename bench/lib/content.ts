// Deterministic object content, so a reader can check every byte of a GET without the writer
// storing anything. A pseudo-random pattern of PATTERN_BYTES (an odd length, so it never lines up
// with stripes or parts) is made once from the seed; the object at `key` is that pattern, started
// at an offset derived from seed + key and repeated. Chunks are zero-copy views of the pattern,
// and checking is a memcmp against the same views: no GiB buffers, no per-byte JavaScript.
import { createCipheriv, createHash } from 'node:crypto';

const PATTERN_BYTES = 4 * 1024 * 1024 + 4093;
export const CHUNK_BYTES = 256 * 1024;

export class ContentGenerator {
  /** The pattern followed by its first CHUNK_BYTES, so any chunk is one contiguous view. */
  private readonly pattern: Buffer;

  constructor(readonly seed: string) {
    const key = createHash('sha256').update(`tessera-bench:${seed}`).digest();
    const keystream = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
    const pattern = keystream.update(Buffer.alloc(PATTERN_BYTES));
    this.pattern = Buffer.concat([pattern, pattern.subarray(0, CHUNK_BYTES)]);
  }

  private startOf(key: string): number {
    return createHash('sha256').update(`${this.seed}\0${key}`).digest().readUIntBE(0, 6) % PATTERN_BYTES;
  }

  /** The object's bytes from `offset` for `length` bytes, as views of at most CHUNK_BYTES. */
  *chunks(key: string, offset: number, length: number): Generator<Buffer> {
    let position = (this.startOf(key) + offset) % PATTERN_BYTES;
    for (let left = length; left > 0;) {
      const n = Math.min(left, CHUNK_BYTES);
      yield this.pattern.subarray(position, position + n);
      position = (position + n) % PATTERN_BYTES;
      left -= n;
    }
  }

  /** One buffer of the object's bytes; for small bodies only. */
  bytes(key: string, offset: number, length: number): Buffer {
    if (length <= CHUNK_BYTES) return this.chunks(key, offset, length).next().value ?? Buffer.alloc(0);
    return Buffer.concat([...this.chunks(key, offset, length)]);
  }

  verifier(key: string, offset: number, length: number): ContentVerifier {
    return new ContentVerifier(this.startOf(key) + offset, length, this.pattern);
  }
}

/** Checks a stream of received chunks against the expected content, as they arrive. */
export class ContentVerifier {
  private position: number;
  private received = 0;
  private mismatchAt = -1;

  constructor(start: number, private readonly expectedLength: number, private readonly pattern: Buffer) {
    this.position = start % PATTERN_BYTES;
  }

  update(chunk: Uint8Array): void {
    for (let done = 0; done < chunk.length;) {
      const n = Math.min(chunk.length - done, CHUNK_BYTES, this.expectedLength - this.received);
      if (n <= 0) { this.received += chunk.length - done; return; } // longer than expected
      if (this.mismatchAt < 0 && Buffer.compare(chunk.subarray(done, done + n), this.pattern.subarray(this.position, this.position + n)) !== 0) {
        this.mismatchAt = this.received;
      }
      this.position = (this.position + n) % PATTERN_BYTES;
      this.received += n;
      done += n;
    }
  }

  /** Why the content is wrong, or undefined when it is exactly what was written. */
  problem(): string | undefined {
    if (this.received !== this.expectedLength) return `size ${this.received}, expected ${this.expectedLength}`;
    if (this.mismatchAt >= 0) return `content differs near byte ${this.mismatchAt}`;
    return undefined;
  }
}
