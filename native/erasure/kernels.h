/* Bulk GF(2^8) matrix multiply over byte shards: out[r] = XOR over c of coef[r][c] * in[c].
 * A "prepared" matrix holds, for every coefficient, the tables each kernel needs (see
 * prepared_layout below), built once per matrix by rs_prepare. */
#ifndef TESSERA_ERASURE_KERNELS_H
#define TESSERA_ERASURE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#define RS_MAX_ROWS 32
#define RS_MAX_COLS 32

/* Per coefficient: the products of the 16 low nibbles and of the 16 high nibbles, each stored
 * twice so a 256-bit shuffle can use them straight from memory, and the 8x8 bit matrix that
 * GF2P8AFFINEQB multiplies by. */
typedef struct {
  uint8_t low[32];
  uint8_t high[32];
  uint64_t affine;
} rs_coefficient_tables;

typedef struct {
  uint32_t rows;
  uint32_t cols;
  rs_coefficient_tables tables[]; /* tables[r * cols + c] */
} rs_prepared;

size_t rs_prepared_size(uint32_t rows, uint32_t cols);
void rs_prepare(rs_prepared *prepared, const uint8_t *coefficients, uint32_t rows, uint32_t cols);

typedef void (*rs_multiply_fn)(const rs_prepared *prepared, const uint8_t *const *in, uint8_t *const *out,
                               size_t length);

typedef struct {
  const char *name;
  rs_multiply_fn multiply;
} rs_kernel;

/* The kernels this CPU can run, best first; returns how many were written (at least one). */
size_t rs_available_kernels(rs_kernel *kernels, size_t capacity);

/* Scalar multiply of bytes [start, end), used on its own and for the tails of the SIMD kernels. */
void rs_multiply_portable_range(const rs_prepared *prepared, const uint8_t *const *in, uint8_t *const *out,
                                size_t start, size_t end);

#endif
