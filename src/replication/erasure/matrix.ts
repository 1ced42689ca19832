// Coefficient matrices over GF(2^8), stored row-major in a Uint8Array.
import { gfInv, gfMul } from './gf256.js';

export interface Matrix {
  readonly rows: number;
  readonly cols: number;
  readonly cells: Uint8Array; // cells[r * cols + c]
}

function zeros(rows: number, cols: number): Matrix {
  return { rows, cols, cells: new Uint8Array(rows * cols) };
}

/**
 * The (k+m) x k systematic encoding matrix: identity on top, a Cauchy matrix below with
 * parity[i][j] = 1 / (x_i + y_j), x_i = k + i, y_j = j. Every square submatrix of a Cauchy matrix
 * is invertible, so any k rows of the whole matrix are too: any k shards rebuild the stripe.
 */
export function systematicCauchy(k: number, m: number): Matrix {
  const matrix = zeros(k + m, k);
  for (let i = 0; i < k; i++) matrix.cells[i * k + i] = 1;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < k; j++) matrix.cells[(k + i) * k + j] = gfInv((k + i) ^ j);
  }
  return matrix;
}

export function selectRows(matrix: Matrix, rows: readonly number[]): Matrix {
  const out = zeros(rows.length, matrix.cols);
  rows.forEach((row, i) => out.cells.set(matrix.cells.subarray(row * matrix.cols, (row + 1) * matrix.cols), i * matrix.cols));
  return out;
}

export function multiply(a: Matrix, b: Matrix): Matrix {
  const out = zeros(a.rows, b.cols);
  for (let r = 0; r < a.rows; r++) {
    for (let c = 0; c < b.cols; c++) {
      let sum = 0;
      for (let i = 0; i < a.cols; i++) sum ^= gfMul(a.cells[r * a.cols + i], b.cells[i * b.cols + c]);
      out.cells[r * out.cols + c] = sum;
    }
  }
  return out;
}

/** Gauss-Jordan inversion of a square matrix; throws if it is singular. */
export function invert(matrix: Matrix): Matrix {
  const n = matrix.rows;
  const work = Uint8Array.from(matrix.cells);
  const inverse = zeros(n, n);
  for (let i = 0; i < n; i++) inverse.cells[i * n + i] = 1;
  const swapRows = (cells: Uint8Array, a: number, b: number): void => {
    const rowA = cells.slice(a * n, (a + 1) * n);
    cells.copyWithin(a * n, b * n, (b + 1) * n);
    cells.set(rowA, b * n);
  };
  const scaleRow = (cells: Uint8Array, row: number, factor: number): void => {
    for (let c = 0; c < n; c++) cells[row * n + c] = gfMul(cells[row * n + c], factor);
  };
  const addScaledRow = (cells: Uint8Array, target: number, source: number, factor: number): void => {
    for (let c = 0; c < n; c++) cells[target * n + c] ^= gfMul(cells[source * n + c], factor);
  };
  for (let col = 0; col < n; col++) {
    let pivot = col;
    while (pivot < n && work[pivot * n + col] === 0) pivot++;
    if (pivot === n) throw new RangeError('matrix is singular');
    if (pivot !== col) {
      swapRows(work, pivot, col);
      swapRows(inverse.cells, pivot, col);
    }
    const scale = gfInv(work[col * n + col]);
    scaleRow(work, col, scale);
    scaleRow(inverse.cells, col, scale);
    for (let row = 0; row < n; row++) {
      const factor = work[row * n + col];
      if (row === col || factor === 0) continue;
      addScaledRow(work, row, col, factor);
      addScaledRow(inverse.cells, row, col, factor);
    }
  }
  return inverse;
}
