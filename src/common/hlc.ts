// Hybrid logical clock packed into one JS-safe integer: milliseconds * 4096 + logical counter.
// (Good until the year 2109 within Number.MAX_SAFE_INTEGER.) Newest HLC wins on every node,
// so concurrent writers converge on one winner without locks.
const LOGICAL_BITS = 4096;

export class HybridClock {
  private last = 0;

  constructor(private readonly wallClock: () => number = Date.now) {}

  /** A timestamp greater than every one this clock has issued or observed. */
  now(): number {
    const physical = this.wallClock() * LOGICAL_BITS;
    this.last = physical > this.last ? physical : this.last + 1;
    return this.last;
  }

  /** Merge a timestamp seen from elsewhere so later local stamps order after it. */
  observe(remote: number): void {
    if (remote > this.last) this.last = remote;
  }
}

export function hlcToMillis(hlc: number): number {
  return Math.floor(hlc / LOGICAL_BITS);
}
