// Bulk multiply of shards by a coefficient matrix, outputs[r] = XOR over c of cells[r][c] * inputs[c],
// in the native addon (native/erasure/): SIMD kernels chosen by what the CPU supports, working on
// the callers' buffers in place.
import { StoreError } from '../../common/errors.js';
import { nativeAddon as addon } from '../../common/native-addon.js';
import type { Matrix } from './matrix.js';

/** Kernels this CPU can run, fastest first (e.g. avx512-gfni, avx2-gfni, avx2, ssse3, portable). */
export const availableKernels: readonly string[] = addon.kernels();

/** A coefficient matrix expanded into the lookup tables the kernels use. */
export interface PreparedMatrix {
  readonly rows: number;
  readonly cols: number;
  readonly tables: Uint8Array;
}

export function prepare(matrix: Matrix): PreparedMatrix {
  return { rows: matrix.rows, cols: matrix.cols, tables: addon.prepare(matrix.cells, matrix.rows, matrix.cols) };
}

/** Index into availableKernels of the kernel to use; throws for a kernel this CPU lacks. */
export function kernelIndex(name: string = availableKernels[0]): number {
  const index = availableKernels.indexOf(name);
  if (index < 0) {
    throw new StoreError('InvalidArgument', `erasure kernel ${name} is not available here (have ${availableKernels.join(', ')})`);
  }
  return index;
}

export function applyMatrix(kernel: number, prepared: PreparedMatrix, inputs: readonly Uint8Array[], outputs: readonly Uint8Array[]): void {
  addon.multiply(kernel, prepared.tables, inputs, outputs);
}
