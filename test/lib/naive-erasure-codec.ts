// A deliberately plain Reed-Solomon codec: a full 64 KiB GF(2^8) product table and one JavaScript
// loop per byte, solving the linear system afresh on every reconstruct. It is the oracle for the
// codec's property tests and the baseline of `npm run bench -- codec`. It shares no code with
// src/replication/erasure, only the definition of the code (same field, same Cauchy parity rows).
import type { ErasureCodec } from '../../src/replication/erasure/codec.js';

const PRODUCT = new Uint8Array(256 * 256); // PRODUCT[a * 256 + b] = a * b in GF(2^8) mod 0x11d
for (let a = 0; a < 256; a++) {
  for (let b = 0; b < 256; b++) {
    let product = 0;
    for (let bit = 0, shifted = a; bit < 8; bit++) {
      if (b & (1 << bit)) product ^= shifted;
      shifted <<= 1;
      if (shifted & 0x100) shifted ^= 0x11d;
    }
    PRODUCT[a * 256 + b] = product;
  }
}

function inverse(a: number): number {
  for (let b = 1; b < 256; b++) if (PRODUCT[a * 256 + b] === 1) return b;
  throw new RangeError('no inverse');
}

/** Row r of the systematic generator: unit vector for data shards, 1/((k+i) xor j) for parity i. */
function generatorRow(k: number, r: number): number[] {
  return Array.from({ length: k }, (_, j) => (r < k ? Number(r === j) : inverse(r ^ j)));
}

/** out = XOR over c of coefficients[c] * inputs[c], byte by byte. */
function combine(coefficients: number[], inputs: readonly Uint8Array[], out: Uint8Array): void {
  out.fill(0);
  coefficients.forEach((coefficient, c) => {
    const input = inputs[c];
    const base = coefficient * 256;
    for (let i = 0; i < out.length; i++) out[i] ^= PRODUCT[base + input[i]];
  });
}

/** Inverts a square matrix given as rows (Gauss-Jordan on [A | I]). */
function invertRows(rows: number[][]): number[][] {
  const n = rows.length;
  const work = rows.map((row, i) => [...row, ...Array.from({ length: n }, (_, j) => Number(i === j))]);
  for (let col = 0; col < n; col++) {
    const pivot = work.findIndex((row, i) => i >= col && row[col] !== 0);
    if (pivot < 0) throw new RangeError('singular');
    [work[col], work[pivot]] = [work[pivot], work[col]];
    const scale = inverse(work[col][col]);
    work[col] = work[col].map((v) => PRODUCT[v * 256 + scale]);
    for (let r = 0; r < n; r++) {
      const factor = work[r][col];
      if (r !== col && factor !== 0) work[r] = work[r].map((v, c) => v ^ PRODUCT[factor * 256 + work[col][c]]);
    }
  }
  return work.map((row) => row.slice(n));
}

export function createNaiveCodec(dataShards: number, parityShards: number): ErasureCodec {
  const k = dataShards;
  return {
    dataShards,
    parityShards,
    encode(data, parity) {
      parity.forEach((out, i) => combine(generatorRow(k, k + i), data, out));
    },
    reconstruct(shards, present, wanted) {
      const sources = shards.map((_, i) => i).filter((i) => present[i]).slice(0, k);
      if (sources.length < k) throw new RangeError('too few shards');
      const decode = invertRows(sources.map((i) => generatorRow(k, i)));
      const sourceShards = sources.map((i) => shards[i]);
      const missing = (wanted ?? shards.map((_, i) => i)).filter((i) => !present[i]);
      for (const i of missing.filter((j) => j < k)) combine(decode[i], sourceShards, shards[i]);
      if (missing.every((i) => i < k)) return;
      const data = shards.slice(0, k).map((shard, d) => {
        if (present[d] || missing.includes(d)) return shard;
        const out = new Uint8Array(shard.length);
        combine(decode[d], sourceShards, out);
        return out;
      });
      for (const i of missing.filter((j) => j >= k)) combine(generatorRow(k, i), data, shards[i]);
    },
  };
}
