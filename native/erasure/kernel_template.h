/* One SIMD kernel, instantiated by kernels.c once per instruction set. The includer defines:
 *   KERNEL          function name               TARGET      GCC target string
 *   VEC             vector type                 VEC_BYTES   its width
 *   MAX_GROUP       outputs kept in registers   KERNEL_STATE declarations the MUL step needs
 *   LOAD(p) STORE(p, v) XOR(a, b) ZERO()
 *   SPLIT(x)        prepare input vector x for MUL (e.g. split into nibbles)
 *   MUL(t, x)       product of input x (after SPLIT) by the coefficient whose tables are *t
 *   GROUP_CASES     GROUP_CASE(1) ... GROUP_CASE(MAX_GROUP)
 * Each input vector is loaded once per group of outputs and multiplied into MAX_GROUP
 * accumulators that stay in registers; the stripe is walked in chunks that stay in cache.
 * The template undefines its parameters at the end, ready for the next instance. */

#define CHUNK_BYTES 8192
#define PASTE_(a, b) a##b
#define PASTE(a, b) PASTE_(a, b)
#define KERNEL_GROUP PASTE(KERNEL, _group)

static inline __attribute__((always_inline, target(TARGET))) void KERNEL_GROUP(
    const rs_prepared *prepared, uint32_t first_row, const uint8_t *const *in, uint8_t *const *out,
    size_t start, size_t end, const int group) {
  const uint32_t cols = prepared->cols;
  KERNEL_STATE;
  for (size_t pos = start; pos < end; pos += VEC_BYTES) {
    VEC acc[MAX_GROUP];
#pragma GCC unroll 16
    for (int g = 0; g < group; g++) acc[g] = ZERO();
    for (uint32_t c = 0; c < cols; c++) {
      VEC x = LOAD(in[c] + pos);
      SPLIT(x);
      const rs_coefficient_tables *t = &prepared->tables[first_row * cols + c];
#pragma GCC unroll 16
      for (int g = 0; g < group; g++) acc[g] = XOR(acc[g], MUL(&t[g * cols], x));
    }
#pragma GCC unroll 16
    for (int g = 0; g < group; g++) STORE(out[first_row + g] + pos, acc[g]);
  }
}

static __attribute__((target(TARGET))) void KERNEL(const rs_prepared *prepared, const uint8_t *const *in,
                                                   uint8_t *const *out, size_t length) {
  const size_t vector_end = length - length % VEC_BYTES;
  for (size_t start = 0; start < vector_end; start += CHUNK_BYTES) {
    const size_t end = start + CHUNK_BYTES < vector_end ? start + CHUNK_BYTES : vector_end;
    for (uint32_t row = 0; row < prepared->rows; row += MAX_GROUP) {
      const uint32_t left = prepared->rows - row;
      switch (left < MAX_GROUP ? left : MAX_GROUP) {
#define GROUP_CASE(n) case n: KERNEL_GROUP(prepared, row, in, out, start, end, n); break;
        GROUP_CASES
#undef GROUP_CASE
      }
    }
  }
  rs_multiply_portable_range(prepared, in, out, vector_end, length);
}

#undef CHUNK_BYTES
#undef KERNEL
#undef TARGET
#undef VEC
#undef VEC_BYTES
#undef MAX_GROUP
#undef GROUP_CASES
#undef KERNEL_STATE
#undef LOAD
#undef STORE
#undef XOR
#undef ZERO
#undef SPLIT
#undef MUL
#undef KERNEL_GROUP
#undef PASTE
#undef PASTE_
