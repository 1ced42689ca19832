// Bulk multiply of shards by a coefficient matrix: outputs[r] = XOR over c of cells[r][c] * inputs[c].
// Interim JavaScript kernel; the native SIMD kernel replaces it.
import { gfMul } from './gf256.js';
import type { Matrix } from './matrix.js';

export interface PreparedMatrix {
  readonly rows: number;
  readonly cols: number;
  readonly products: Uint8Array; // 256 products per coefficient
}

export function prepare(matrix: Matrix): PreparedMatrix {
  const products = new Uint8Array(matrix.cells.length * 256);
  matrix.cells.forEach((coefficient, i) => {
    for (let x = 0; x < 256; x++) products[i * 256 + x] = gfMul(coefficient, x);
  });
  return { rows: matrix.rows, cols: matrix.cols, products };
}

export function applyMatrix(prepared: PreparedMatrix, inputs: readonly Uint8Array[], outputs: readonly Uint8Array[]): void {
  for (let r = 0; r < prepared.rows; r++) {
    const out = outputs[r];
    out.fill(0);
    for (let c = 0; c < prepared.cols; c++) {
      const table = prepared.products.subarray((r * prepared.cols + c) * 256);
      const input = inputs[c];
      for (let i = 0; i < out.length; i++) out[i] ^= table[input[i]];
    }
  }
}
