// The history of a fault run: every operation a client invoked, when it started and ended (one
// monotonic clock), and what the client saw. Written values are named, and their bytes derive
// from the name, so any body read back identifies the write it came from — or none (corrupt).
import { createCipheriv, createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';

/** Did a write take effect? `ok`: acknowledged. `unknown`: an error or no answer; it may have. */
export type WriteOutcome = 'ok' | 'unknown';

export type WriteKind = 'put' | 'multipart' | 'delete';

export interface WriteOp {
  kind: WriteKind;
  key: string;
  /** Name of the value written; null for a delete. */
  value: string | null;
  invokedAt: number;
  completedAt: number;
  outcome: WriteOutcome;
  /**
   * Whether the gateway answered at all. A write that got an answer (even an error) was stamped
   * with its clock before the answer, so it cannot win over writes started after it.
   */
  answered: boolean;
  /** HTTP status, or a transport error code, as the client saw it. */
  status: string;
}

export interface ReadOp {
  key: string;
  invokedAt: number;
  completedAt: number;
  /** The value's name (null: 404), or undefined when the read failed. */
  value?: string | null;
  /** Bytes that match no value ever written to the key. */
  corrupt?: boolean;
  status: string;
}

export interface ListOp {
  invokedAt: number;
  completedAt: number;
  status: string;
}

export interface WrittenValue {
  key: string;
  size: number;
  sha256: string;
}

/** The bytes of a named value: an AES-CTR keystream keyed by the name (fast, distinct per value). */
export function valueBytes(name: string, size: number): Buffer {
  const key = createHash('sha256').update(`tessera-fault-value:${name}`).digest();
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size));
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

export class History {
  readonly writes: WriteOp[] = [];
  readonly reads: ReadOp[] = [];
  readonly lists: ListOp[] = [];
  /** Every value ever sent, by name. */
  readonly values = new Map<string, WrittenValue>();
  /** Value names by key and content hash, to name what a read returned. */
  private readonly byContent = new Map<string, string>();
  private readonly started = performance.now();

  now(): number {
    return performance.now() - this.started;
  }

  /** Register a value about to be written and return its bytes. */
  newValue(key: string, name: string, size: number): Buffer {
    const bytes = valueBytes(name, size);
    const hash = sha256(bytes);
    this.values.set(name, { key, size, sha256: hash });
    this.byContent.set(`${key}\u0000${hash}`, name);
    return bytes;
  }

  /** The name of the value written to `key` whose bytes these are, if any. */
  identify(key: string, body: Buffer): string | undefined {
    return this.byContent.get(`${key}\u0000${sha256(body)}`);
  }

  get keys(): string[] {
    return [...new Set(this.writes.map((w) => w.key))].sort();
  }
}
