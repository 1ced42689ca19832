// Calibrated rates for weighted rendezvous hashing.
//
// HRW scores are exponential races: node i's score is Exp(rate_i). Taking the first j finishers
// is weighted sampling without replacement, which under-serves heavy nodes once j * weight is a
// noticeable part of the total (10 nodes weighing 4/6/8/10, 6 shards per object: a weight-10 node
// is in 77% of objects instead of 91%, a weight-4 node in 44% instead of 36%). So we solve for rates whose top-j inclusion probabilities equal the weight
// shares: compute each node's inclusion probability by integrating over the race, then scale its
// rate by target / actual until they agree. Equal weights need no calibration, so clusters of
// equal nodes keep HRW's exact minimal movement; with mixed weights the rates shift slightly
// when the map changes (measured by `npm run bench -- placement`).

/** How many shards a group of nodes takes per object: `base`, or `base + 1` with chance `extraChance`. */
export interface ShardCount {
  base: number;
  extraChance: number;
}

const MAX_ITERATIONS = 60;
const TOLERANCE = 1e-5;
const ALMOST_CERTAIN = 1 - 1e-6;
const SEGMENT_STEPS = 128;

/**
 * How many shards each zone takes when objects are spread round-robin over zones of these sizes:
 * every zone gets `level` (or all its nodes if fewer), and the zones with nodes to spare share
 * the remaining shards, each with an even chance. Calibrating as if that chance were independent
 * of which nodes lead the zone is close, not exact: with 4 zones of weights 1..4 and 6 shards,
 * nodes get within 2% of their weight share. Zones themselves get their even part whatever
 * they weigh: spreading over zones comes first.
 */
export function zoneShardCounts(zoneSizes: readonly number[], count: number): ShardCount[] {
  const filled = (level: number) => zoneSizes.reduce((sum, size) => sum + Math.min(size, level), 0);
  const largest = Math.max(...zoneSizes);
  let level = 0;
  while (level < largest && filled(level + 1) <= count) level++;
  const competing = zoneSizes.filter((size) => size > level).length;
  const extraChance = competing ? (count - filled(level)) / competing : 0;
  return zoneSizes.map((size) => (size <= level ? { base: size, extraChance: 0 } : { base: level, extraChance }));
}

/** Rates for HRW among `weights` so that each node's expected shard count is proportional to its weight. */
export function calibratedRates(weights: readonly number[], count: ShardCount): Float64Array {
  const rates = Float64Array.from(weights);
  const n = weights.length;
  const highest = count.base + (count.extraChance > 0 ? 1 : 0);
  if (highest === 0 || n <= count.base || weights.every((w) => w === weights[0])) return rates;
  const targets = inclusionTargets(weights, count.base + count.extraChance);
  // A node in (almost) every placement only needs a rate high enough: it grows until it is; the
  // others must match their targets, and keep their total, as zones compete by their rates.
  const certain = (i: number) => targets[i]! >= ALMOST_CERTAIN;
  const uncertainTotal = (values: ArrayLike<number>) => Array.from(values).reduce((sum, v, i) => sum + (certain(i) ? 0 : v), 0);
  const total = uncertainTotal(weights);
  for (let iteration = 0; iteration < MAX_ITERATIONS; iteration++) {
    const actual = inclusionProbabilities(rates, count, highest);
    let worst = 0;
    for (let i = 0; i < n; i++) {
      if (certain(i)) {
        if (actual[i]! < targets[i]!) rates[i] = rates[i]! * 4;
      } else {
        worst = Math.max(worst, Math.abs(actual[i]! / targets[i]! - 1));
        rates[i] = rates[i]! * Math.min(targets[i]! / actual[i]!, 4);
      }
    }
    const scale = total > 0 ? total / uncertainTotal(rates) : 1;
    for (let i = 0; i < n; i++) if (!certain(i)) rates[i] = rates[i]! * scale;
    if (worst < TOLERANCE) break;
  }
  return rates;
}

/**
 * Each node's share of `expected` shards per object, proportional to weight; a node whose share
 * would reach one shard is in every placement and the rest is shared among the others.
 */
function inclusionTargets(weights: readonly number[], expected: number): Float64Array {
  const targets = new Float64Array(weights.length);
  const capped = new Set<number>();
  for (;;) {
    let free = 0;
    weights.forEach((w, i) => { if (!capped.has(i)) free += w; });
    const perWeight = (expected - capped.size) / free;
    const before = capped.size;
    weights.forEach((w, i) => { if (!capped.has(i) && w * perWeight >= ALMOST_CERTAIN) capped.add(i); });
    if (capped.size === before) {
      weights.forEach((w, i) => { targets[i] = capped.has(i) ? ALMOST_CERTAIN : w * perWeight; });
      return targets;
    }
  }
}

/**
 * P(node i is among the first `base` finishers), or `base + 1` with chance extraChance, in a race
 * of exponential clocks with the given rates:
 *   integral over t of rate_i e^(-rate_i t) * P(fewer than j of the other clocks finished by t) dt,
 * by Simpson's rule. The count distribution of the others comes from prefix and suffix
 * Poisson-binomial tables, truncated at `highest` finishers.
 */
function inclusionProbabilities(rates: Float64Array, count: ShardCount, highest: number): Float64Array {
  const n = rates.length;
  const total = rates.reduce((a, b) => a + b, 0);
  const sums = new Float64Array(n);
  const prefix = new Float64Array((n + 1) * highest);
  const suffix = new Float64Array((n + 1) * highest);
  const integrand = new Float64Array(n);
  // Segments of SEGMENT_STEPS Simpson steps; each segment doubles the step, for long tails.
  let step = (0.05 * highest) / total;
  let start = 0;
  for (let segment = 0; segment < 40; segment++, start += SEGMENT_STEPS * step, step *= 2) {
    let vanished = true;
    for (let point = 0; point <= SEGMENT_STEPS; point++) {
      vanished = raceIntegrand(rates, start + point * step, count, highest, prefix, suffix, integrand) && vanished;
      const simpson = point === 0 || point === SEGMENT_STEPS ? 1 : point % 2 === 1 ? 4 : 2;
      for (let i = 0; i < n; i++) sums[i] = sums[i]! + (simpson * step * integrand[i]!) / 3;
    }
    if (vanished) break;
  }
  return sums;
}

/** Fills `out[i]` with the integrand at time t; returns whether it is negligible for every node. */
function raceIntegrand(rates: Float64Array, t: number, count: ShardCount, highest: number,
  prefix: Float64Array, suffix: Float64Array, out: Float64Array): boolean {
  const n = rates.length;
  const finished = (i: number) => -Math.expm1(-rates[i]! * t);
  // prefix[i * h + k] = P(k of nodes 0..i-1 finished); suffix[i * h + k] = P(k of nodes i..n-1 finished).
  poissonBinomialTable(n, highest, finished, prefix, (row) => row - 1);
  poissonBinomialTable(n, highest, finished, suffix, (row) => n - row, true);
  let negligible = true;
  for (let i = 0; i < n; i++) {
    let fewerThanBase = 0;
    let exactlyBase = 0;
    for (let a = 0; a < highest; a++) {
      const left = prefix[i * highest + a]!;
      if (left === 0) continue;
      for (let b = 0; a + b < highest; b++) {
        const p = left * suffix[(i + 1) * highest + b]!;
        if (a + b < count.base) fewerThanBase += p;
        else exactlyBase += p;
      }
    }
    const stillIn = fewerThanBase + count.extraChance * exactlyBase;
    const density = rates[i]! * Math.exp(-rates[i]! * t);
    out[i] = density * stillIn;
    if (out[i]! > 1e-12 * rates[i]!) negligible = false;
  }
  return negligible;
}

/**
 * table[row * h + k] = P(exactly k of the first `row` nodes (in the given direction) finished),
 * for k < h. `nodeOf(row)` is the node added at that row.
 */
function poissonBinomialTable(n: number, h: number, finished: (i: number) => number, table: Float64Array,
  nodeOf: (row: number) => number, fromEnd = false): void {
  const rowIndex = (row: number) => (fromEnd ? n - row : row);
  table.fill(0);
  table[rowIndex(0) * h] = 1;
  for (let row = 1; row <= n; row++) {
    const p = finished(nodeOf(row));
    const from = rowIndex(row - 1) * h;
    const to = rowIndex(row) * h;
    table[to] = table[from]! * (1 - p);
    for (let k = 1; k < h; k++) table[to + k] = table[from + k]! * (1 - p) + table[from + k - 1]! * p;
  }
}
