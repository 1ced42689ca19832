// One slow node must not pace a whole erasure-coded transfer. Reads and writes move a stripe at a
// time, each step waiting for every shard stream, so a congested link or a failing disk on one
// node would hold every object to that node's speed. A stream that, step after step, is the only
// one the transfer waits for is a straggler: the reader swaps it for a spare shard, the writer
// leaves its shard to heal — as far as the code's spare shards allow.
import { performance } from 'node:perf_hooks';

/** A stream is a straggler once it alone has held the transfer for `minHeldMs` and at least this share of its time so far. */
const MIN_HELD_SHARE = 0.5;

export class StragglerWatch {
  private readonly started = performance.now();

  /** Reads swap a straggler cheaply (a decode); writes pay a heal, so they wait longer. */
  constructor(private readonly minHeldMs: number) {}

  /** Milliseconds each stream (by index) kept the transfer waiting with its peers done. */
  private readonly held = new Map<number, number>();

  /**
   * Waits until every stream's step (by index; undefined for streams not taking part) settles,
   * or until some of those still pending have become stragglers while at most `spares` are
   * pending; returns the stragglers (empty when every step settled). A straggler's promise may
   * still settle later: the caller gives its stream up.
   */
  async step(steps: ReadonlyArray<Promise<unknown> | undefined>, spares: number): Promise<number[]> {
    const pending = new Set(steps.flatMap((s, i) => (s ? [i] : [])));
    if (pending.size === 0) return [];
    const total = pending.size;
    return new Promise<number[]>((resolve) => {
      let heldSince: number | undefined;
      let timer: NodeJS.Timeout | undefined;
      const account = (now: number) => {
        if (heldSince === undefined) return;
        for (const i of pending) this.held.set(i, (this.held.get(i) ?? 0) + now - heldSince);
        heldSince = now;
      };
      const finish = (stragglers: number[]) => {
        clearTimeout(timer);
        timer = undefined;
        pending.clear();
        resolve(stragglers);
      };
      const review = () => {
        const now = performance.now();
        account(now);
        if (pending.size === 0) return finish([]);
        clearTimeout(timer);
        // Only streams whose peers are all done count as holding the transfer; a step of one stream
        // (a spare read after a swap) has no peers in it, the transfer's other streams being done.
        if (pending.size > spares || (pending.size === total && total > 1)) return;
        heldSince = now;
        const stragglers = [...pending].filter((i) => this.isStraggler(i, now));
        if (stragglers.length) return finish(stragglers);
        timer = setTimeout(review, Math.max(1, Math.min(...[...pending].map((i) => this.dueIn(i, now)))));
      };
      for (const i of pending) {
        void steps[i]!.finally(() => {
          if (!pending.has(i)) return;
          account(performance.now());
          pending.delete(i);
          review();
        }).catch(() => undefined);
      }
      review(); // a lone stream is judged from the start
    });
  }

  private isStraggler(index: number, now: number): boolean {
    const held = this.held.get(index) ?? 0;
    return held >= this.minHeldMs && held >= MIN_HELD_SHARE * (now - this.started);
  }

  /** Milliseconds until the stream becomes a straggler if it keeps holding the transfer alone. */
  private dueIn(index: number, now: number): number {
    const held = this.held.get(index) ?? 0;
    const elapsed = now - this.started;
    // held + t >= minHeldMs and held + t >= share * (elapsed + t)
    return Math.max(this.minHeldMs - held, (MIN_HELD_SHARE * elapsed - held) / (1 - MIN_HELD_SHARE));
  }
}
