// An HDR-like log-linear histogram of non-negative integers (latencies in microseconds).
// Values below 128 are counted exactly; above, each power-of-two range is split into 64 equal
// buckets, so a reported value is within 1/64 (1.6%) of the true one. Fixed-size counts make it
// cheap to record, to send between worker threads, and to merge by adding.
const SUB_BUCKET_BITS = 6;
const SUB_BUCKETS = 1 << SUB_BUCKET_BITS; // per power of two
const EXACT_LIMIT = SUB_BUCKETS * 2; // values below are their own bucket
const MAX_EXPONENT = 32 - SUB_BUCKET_BITS - 1; // covers values up to 2^32 - 1
const BUCKETS = (MAX_EXPONENT + 2) * SUB_BUCKETS;
const MAX_VALUE = 2 ** 32 - 1;

export interface HistogramData {
  counts: number[];
  count: number;
  min: number;
  max: number;
  sum: number;
}

function bucketOf(value: number): number {
  if (value < EXACT_LIMIT) return value;
  const exponent = 32 - Math.clz32(value) - (SUB_BUCKET_BITS + 1);
  return exponent * SUB_BUCKETS + (value >>> exponent);
}

/** The largest value that falls in a bucket. */
function bucketHighest(index: number): number {
  if (index < EXACT_LIMIT) return index;
  const exponent = Math.floor(index / SUB_BUCKETS) - 1;
  const mantissa = index - exponent * SUB_BUCKETS;
  return (mantissa + 1) * 2 ** exponent - 1;
}

export class Histogram {
  private readonly counts = new Float64Array(BUCKETS);
  count = 0;
  min = Infinity;
  max = 0;
  sum = 0;

  record(value: number): void {
    const v = Math.min(MAX_VALUE, Math.max(0, Math.round(value)));
    this.counts[bucketOf(v)]!++;
    this.count++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  merge(other: Histogram | HistogramData): void {
    const counts = other instanceof Histogram ? other.counts : other.counts;
    for (let i = 0; i < counts.length; i++) this.counts[i]! += counts[i]!;
    this.count += other.count;
    this.sum += other.sum;
    this.min = Math.min(this.min, other.min);
    this.max = Math.max(this.max, other.max);
  }

  /** The value at or below which `p` percent of the recorded values fall (nearest rank). */
  percentile(p: number): number {
    if (this.count === 0) return 0;
    if (p >= 100) return this.max;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(this.max, Math.max(this.min, bucketHighest(i)));
    }
    return this.max;
  }

  mean(): number {
    return this.count === 0 ? 0 : this.sum / this.count;
  }

  /** Non-empty buckets as [highest value, count], for drawing the distribution. */
  buckets(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    for (let i = 0; i < BUCKETS; i++) if (this.counts[i]) out.push([bucketHighest(i), this.counts[i]!]);
    return out;
  }

  toJSON(): HistogramData {
    return { counts: Array.from(this.counts), count: this.count, min: this.min, max: this.max, sum: this.sum };
  }

  static from(data: HistogramData): Histogram {
    const h = new Histogram();
    h.merge(data);
    return h;
  }
}
