// Exact-length reads from a socket opened with `onread` (net.connect's option), parsed
// synchronously as the kernel delivers the bytes: headers land in one reused staging buffer, and
// a payload the caller gives a buffer for is read by the kernel straight into it. A socket's
// 'data' events hand over a fresh 64 KiB buffer per read, which the NBD client then copied into
// each 2 MiB read reply and the GC collected: for an incremental backup's 160 MB that was a copy
// and an allocation per 64 KiB on the main thread.
//
// The next read's target is chosen right after each delivery (node asks `onread.buffer` then), so
// a parser must name what it wants next synchronously, inside the callback it is given.
import type { SocketConnectOpts } from 'node:net';

/** Staging room for headers and short payloads. */
const STAGE_BYTES = 64 * 1024;
/** A payload with at least this much left is read straight into its buffer, else staged and copied. */
const DIRECT_MIN_BYTES = 8 * 1024;

interface Into {
  kind: 'into';
  target: Buffer;
  filled: number;
  then: () => void;
}

type Want = { kind: 'bytes'; n: number; then: (bytes: Buffer) => void } | Into;

export class DirectReader {
  private readonly stage = Buffer.allocUnsafe(STAGE_BYTES);
  /** Staged bytes not yet consumed: stage[start, end). */
  private start = 0;
  private end = 0;
  private want: Want | undefined;
  /** The payload the last read went straight into, if it did. */
  private direct: Into | undefined;
  private draining = false;
  private failure: Error | undefined;
  /** Rejects the waiting read(), if one waits. */
  private rejectRead: ((err: Error) => void) | undefined;

  /** @param onFailure called once, with what went wrong (a parser's throw, or the socket's end) */
  constructor(private readonly onFailure: (err: Error) => void) {}

  /** The `onread` option for net.connect that feeds this reader. */
  get onread(): NonNullable<SocketConnectOpts['onread']> {
    return { buffer: () => this.nextBuffer(), callback: (length: number) => this.received(length) };
  }

  /** Calls `then` with the next `n` bytes (n <= 64 KiB): a view of the staging buffer, valid only during the call. */
  expect(n: number, then: (bytes: Buffer) => void): void {
    if (n > STAGE_BYTES) throw new Error(`DirectReader: ${n} bytes do not fit the staging buffer`);
    this.setWant({ kind: 'bytes', n, then });
  }

  /** Fills `target` with the next target.length bytes, then calls `then`. */
  expectInto(target: Buffer, then: () => void): void {
    this.setWant({ kind: 'into', target, filled: 0, then });
  }

  /** The next `n` bytes in a buffer of their own. */
  read(n: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      const target = Buffer.allocUnsafe(n);
      this.rejectRead = reject;
      this.expectInto(target, () => { this.rejectRead = undefined; resolve(target); });
    });
  }

  /** The socket ended or failed: every later and waiting read fails with `err`. */
  fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.want = undefined;
    this.rejectRead?.(err);
    this.rejectRead = undefined;
    this.onFailure(err);
  }

  private setWant(want: Want): void {
    if (this.want) throw new Error('DirectReader: one read at a time');
    if (this.failure) return;
    this.want = want;
    this.drain();
  }

  private nextBuffer(): Buffer {
    const want = this.want;
    const staged = this.end - this.start;
    this.direct = want?.kind === 'into' && staged === 0 && want.target.length - want.filled >= DIRECT_MIN_BYTES ? want : undefined;
    if (this.direct) return this.direct.target.subarray(this.direct.filled);
    if (this.start > 0) this.stage.copy(this.stage, 0, this.start, this.end);
    this.start = 0;
    this.end = staged;
    // Full only if the peer sent what nobody asked for (NBD servers only answer).
    if (staged === STAGE_BYTES) this.fail(new Error('NBD peer sent more than was asked for'));
    return this.stage.subarray(this.end % STAGE_BYTES);
  }

  private received(length: number): boolean {
    if (this.direct) this.direct.filled += length;
    else this.end += length;
    this.drain();
    return true;
  }

  /** Hands staged bytes to what is wanted, as long as both last; a parser that throws fails the reader. */
  private drain(): void {
    if (this.draining) return;
    this.draining = true;
    try {
      for (let want = this.want; want; want = this.want) {
        if (want.kind === 'into') {
          const copied = this.stage.copy(want.target, want.filled, this.start, Math.min(this.end, this.start + want.target.length - want.filled));
          this.start += copied;
          want.filled += copied;
          if (want.filled < want.target.length) break;
          this.want = undefined;
          want.then();
        } else {
          if (this.end - this.start < want.n) break;
          const bytes = this.stage.subarray(this.start, this.start + want.n);
          this.start += want.n;
          this.want = undefined;
          want.then(bytes);
        }
      }
    } catch (err) {
      this.fail(err as Error);
    } finally {
      this.draining = false;
    }
  }
}
