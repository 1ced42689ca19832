// The restore's writes to the image: a few in flight (so the disk always has the next one), and
// writes still waiting that meet end to end leave as one. Chunks arrive in pack order, which is
// only roughly disk order, and a deduplicated or later-changed chunk lands far from its
// neighbours; joining what waits gives the disk large writes (64 KiB direct writes run at a third
// of the speed of 1 MiB ones on the bench's disk). Small writes can be parked: copied aside and
// held back until a neighbour arrives to leave with it, or until flush().

interface PendingWrite {
  offset: number;
  parts: Buffer[];
  length: number;
  /** Copied aside and already reported done (see WriteQueueOptions.park). */
  parked: boolean;
  done: Array<{ resolve: () => void; reject: (err: Error) => void }>;
}

export type WriteOut = (offset: number, parts: Buffer[]) => Promise<void>;

export interface WriteQueueOptions {
  /** Writes in flight. */
  depth: number;
  /** Most bytes of a joined write (single writes may be larger). */
  maxBytes: number;
  /** Most parts of a joined write (IOV_MAX). */
  maxParts?: number;
  /**
   * Writes shorter than `below` bytes that no waiting write meets are copied into `arena` (at
   * offsets that are multiples of `alignment`) while it has room, reported done at once, and held
   * back to leave with a neighbour that comes later.
   */
  park?: { below: number; arena: Buffer; alignment: number };
}

export class WriteQueue {
  /** Waiting writes, parked or not, by offset and by end. */
  private readonly byOffset = new Map<number, PendingWrite>();
  private readonly byEnd = new Map<number, PendingWrite>();
  /** Waiting writes that are not parked, in arrival order (the oldest leaves first). */
  private readonly ready = new Set<PendingWrite>();
  private inFlight = 0;
  private pumpQueued = false;
  private arenaUsed = 0;
  /** The first failure of a write that carried parked parts (whose callers were told done). */
  private parkedFailure: Error | undefined;
  private readonly drained: Array<() => void> = [];

  constructor(private readonly writeOut: WriteOut, private readonly options: WriteQueueOptions) {}

  /** Resolves once `parts`, back to back from `offset`, are written (or parked: see flush). */
  write(offset: number, parts: Buffer[]): Promise<void> {
    const length = parts.reduce((sum, p) => sum + p.length, 0);
    const copy = this.parkedCopy(offset, length, parts);
    const pending: PendingWrite = { offset, parts: copy ? [copy] : parts, length, parked: copy !== undefined, done: [] };
    this.byOffset.set(offset, pending);
    this.byEnd.set(offset + length, pending);
    if (pending.parked) return Promise.resolve();
    return new Promise((resolve, reject) => {
      pending.done.push({ resolve, reject });
      this.ready.add(pending);
      // Writes queued in the same tick (a batch's runs) wait for each other, to be joined.
      if (this.pumpQueued) return;
      this.pumpQueued = true;
      queueMicrotask(() => { this.pumpQueued = false; this.pump(); });
    });
  }

  /** Writes out what is parked and waits for every write; throws if one carrying parked parts failed. */
  async flush(): Promise<void> {
    for (const pending of this.byOffset.values()) this.ready.add(pending);
    this.pump();
    if (this.inFlight > 0) await new Promise<void>((resolve) => this.drained.push(resolve));
    if (this.parkedFailure) throw this.parkedFailure;
  }

  /** A copy in the arena of a small write that no waiting write meets, or undefined. */
  private parkedCopy(offset: number, length: number, parts: Buffer[]): Buffer | undefined {
    const park = this.options.park;
    if (!park || length >= park.below) return undefined;
    const meetsReady = (w: PendingWrite | undefined) => w !== undefined && this.ready.has(w);
    if (meetsReady(this.byEnd.get(offset)) || meetsReady(this.byOffset.get(offset + length))) return undefined;
    const at = Math.ceil(this.arenaUsed / park.alignment) * park.alignment;
    if (at + length > park.arena.length) return undefined;
    this.arenaUsed = at + length;
    const copy = park.arena.subarray(at, at + length);
    let filled = 0;
    for (const part of parts) filled += part.copy(copy, filled);
    return copy;
  }

  private pump(): void {
    while (this.inFlight < this.options.depth && this.ready.size > 0) {
      const chain = this.joinAround(this.ready.values().next().value!);
      const done = chain.flatMap((w) => w.done);
      const carriesParked = chain.some((w) => w.parked);
      this.inFlight++;
      this.writeOut(chain[0]!.offset, chain.flatMap((w) => w.parts)).then(
        () => { for (const d of done) d.resolve(); },
        (err: Error) => {
          if (carriesParked) this.parkedFailure ??= err;
          for (const d of done) d.reject(err);
        },
      ).finally(() => {
        this.inFlight--;
        this.pump();
        if (this.inFlight === 0) for (const resolve of this.drained.splice(0)) resolve();
      });
    }
  }

  /** Takes `write` and the waiting writes that meet it end to end, up to the limits, in disk order. */
  private joinAround(write: PendingWrite): PendingWrite[] {
    const { maxBytes, maxParts = 1024 } = this.options;
    this.take(write);
    const chain = [write];
    let length = write.length;
    let parts = write.parts.length;
    const join = (next: PendingWrite | undefined, at: 'start' | 'end'): boolean => {
      if (!next || length + next.length > maxBytes || parts + next.parts.length > maxParts) return false;
      this.take(next);
      if (at === 'start') chain.unshift(next);
      else chain.push(next);
      length += next.length;
      parts += next.parts.length;
      return true;
    };
    while (join(this.byEnd.get(chain[0]!.offset), 'start'));
    while (join(this.byOffset.get(chain[0]!.offset + length), 'end'));
    return chain;
  }

  private take(write: PendingWrite): void {
    this.byOffset.delete(write.offset);
    this.byEnd.delete(write.offset + write.length);
    this.ready.delete(write);
  }
}
