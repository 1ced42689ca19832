// Systematic Reed-Solomon over GF(2^8): `createCodec(k, m)` returns an ErasureCodec whose bulk work
// runs in a native SIMD kernel. Recovery (decode) matrices are cached per erasure pattern.
import { StoreError } from '../../common/errors.js';
import type { ErasureCodec } from './codec.js';
import { applyMatrix, availableKernels, kernelIndex, prepare, type PreparedMatrix } from './kernel.js';
import { invert, multiply, selectRows, systematicCauchy, type Matrix } from './matrix.js';

export type { ErasureCodec } from './codec.js';
export { availableKernels };

export const MAX_DATA_SHARDS = 16;
export const MAX_PARITY_SHARDS = 16;
const RECOVERY_CACHE_SIZE = 64;

class ReedSolomonCodec implements ErasureCodec {
  private readonly encodeMatrix: Matrix;
  private readonly parityRows: PreparedMatrix;
  /** Recovery matrices by erasure pattern (see reconstruct), least recently used first. */
  private readonly recoveryMatrices = new Map<number, PreparedMatrix>();

  constructor(readonly dataShards: number, readonly parityShards: number, private readonly kernel: number) {
    this.encodeMatrix = systematicCauchy(dataShards, parityShards);
    this.parityRows = prepare(selectRows(this.encodeMatrix, range(dataShards, dataShards + parityShards)));
  }

  encode(data: readonly Uint8Array[], parity: readonly Uint8Array[]): void {
    expectCount('data', data, this.dataShards);
    expectCount('parity', parity, this.parityShards);
    expectSameLength([...data, ...parity]);
    applyMatrix(this.kernel, this.parityRows, data, parity);
  }

  reconstruct(shards: readonly Uint8Array[], present: readonly boolean[], wanted?: readonly number[]): void {
    const total = this.dataShards + this.parityShards;
    expectCount('shard', shards, total);
    expectCount('present flag', present, total);
    expectSameLength(shards);
    if (wanted?.some((i) => !Number.isInteger(i) || i < 0 || i >= total)) {
      throw new StoreError('InvalidArgument', `wanted shard index out of range 0..${total - 1}`, { wanted });
    }
    // Read the first k present shards; write the wanted missing ones. The key gives each shard
    // one ternary digit (0 unused, 1 source, 2 target): 3^32 < 2^53, so it is an exact number.
    const sources: number[] = [];
    const targets: number[] = [];
    let key = 0;
    for (let i = 0, digit = 1; i < total; i++, digit *= 3) {
      if (present[i]) {
        if (sources.length < this.dataShards) { sources.push(i); key += digit; }
      } else if (!wanted || wanted.includes(i)) {
        targets.push(i);
        key += 2 * digit;
      }
    }
    if (targets.length === 0) return;
    if (sources.length < this.dataShards) {
      throw new StoreError('InvalidArgument', `reconstruct needs ${this.dataShards} shards, ${sources.length} present`);
    }
    applyMatrix(this.kernel, this.recoveryMatrix(key, sources, targets), sources.map((i) => shards[i]), targets.map((i) => shards[i]));
  }

  /**
   * Rows of the encoding matrix turn data into shards; inverting the rows of the sources turns
   * sources back into data, so (target rows) x (inverse of source rows) turns sources into targets.
   */
  private recoveryMatrix(key: number, sources: number[], targets: number[]): PreparedMatrix {
    let matrix = this.recoveryMatrices.get(key);
    if (matrix) {
      this.recoveryMatrices.delete(key); // re-inserted below: the Map's order is the LRU order
    } else {
      const decode = invert(selectRows(this.encodeMatrix, sources));
      matrix = prepare(multiply(selectRows(this.encodeMatrix, targets), decode));
      if (this.recoveryMatrices.size >= RECOVERY_CACHE_SIZE) this.recoveryMatrices.delete(this.recoveryMatrices.keys().next().value as number);
    }
    this.recoveryMatrices.set(key, matrix);
    return matrix;
  }
}

export interface CodecOptions {
  /** One of availableKernels; the fastest by default. Tests and benchmarks pin one to compare them. */
  kernel?: string;
}

export function createCodec(dataShards: number, parityShards: number, options: CodecOptions = {}): ErasureCodec {
  if (!Number.isInteger(dataShards) || dataShards < 1 || dataShards > MAX_DATA_SHARDS
    || !Number.isInteger(parityShards) || parityShards < 1 || parityShards > MAX_PARITY_SHARDS) {
    throw new StoreError('InvalidArgument',
      `erasure layout ${dataShards}+${parityShards} outside 1..${MAX_DATA_SHARDS} + 1..${MAX_PARITY_SHARDS}`);
  }
  return new ReedSolomonCodec(dataShards, parityShards, kernelIndex(options.kernel));
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

function expectCount(what: string, items: readonly unknown[], count: number): void {
  if (items.length !== count) throw new StoreError('InvalidArgument', `expected ${count} ${what}s, got ${items.length}`);
}

function expectSameLength(shards: readonly Uint8Array[]): void {
  const length = shards[0]?.length ?? 0;
  if (shards.some((s) => s.length !== length)) throw new StoreError('InvalidArgument', 'shards differ in length');
}
