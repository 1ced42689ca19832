/* One SIMD kernel, instantiated by kernels.c once per instruction set. The includer defines:
 *   KERNEL        function name              TARGET     GCC target string
 *   PREFIX, BITS  intrinsic family: _mm/128, _mm256/256 or _mm512/512
 *   MAX_GROUP     outputs kept in registers (at most 8)
 *   KERNEL_STATE  declarations that SPLIT and MUL use
 *   SPLIT(x)      prepare input vector x for MUL (e.g. split it into nibbles)
 *   MUL(t, x)     product of input x (after SPLIT) by the coefficient whose tables are *t
 * Each input vector is loaded once per group of outputs and multiplied into MAX_GROUP
 * accumulators that stay in registers; the stripe is walked in chunks that stay in cache.
 * The template undefines its parameters at the end, ready for the next instance. */

#define PASTE_(a, b) a##b
#define PASTE(a, b) PASTE_(a, b)
#define PASTE3(a, b, c) PASTE(PASTE(a, b), c)
#define VEC PASTE3(__m, BITS, i)
#define VEC_BYTES (BITS / 8)
#define LOAD(p) PASTE3(PREFIX, _loadu_si, BITS)((const void *)(p))
#define STORE(p, v) PASTE3(PREFIX, _storeu_si, BITS)((void *)(p), (v))
#define XOR(a, b) PASTE3(PREFIX, _xor_si, BITS)((a), (b))
#define ZERO() PASTE3(PREFIX, _setzero_si, BITS)()
#define KERNEL_GROUP PASTE(KERNEL, _group)
#define CHUNK_BYTES 8192
/* With a dozen or more streams the hardware prefetchers fall behind on stripes not in cache;
 * prefetching each input this far ahead doubled the cold-cache rate (prefetches never fault,
 * so running past the end of a shard is harmless). */
#define PREFETCH_DISTANCE 1024

static inline __attribute__((always_inline, target(TARGET))) void KERNEL_GROUP(
    const rs_prepared *prepared, uint32_t first_row, const uint8_t *const *in, uint8_t *const *out,
    size_t start, size_t end, const int group) {
  const uint32_t cols = prepared->cols;
  KERNEL_STATE;
  for (size_t pos = start; pos < end; pos += VEC_BYTES) {
    VEC acc[MAX_GROUP];
#pragma GCC unroll 8
    for (int g = 0; g < group; g++) acc[g] = ZERO();
    for (uint32_t c = 0; c < cols; c++) {
      __builtin_prefetch(in[c] + pos + PREFETCH_DISTANCE);
      VEC x = LOAD(in[c] + pos);
      SPLIT(x);
      const rs_coefficient_tables *t = &prepared->tables[first_row * cols + c];
#pragma GCC unroll 8
      for (int g = 0; g < group; g++) acc[g] = XOR(acc[g], MUL(&t[g * cols], x));
    }
#pragma GCC unroll 8
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
      /* A constant group size per call lets the compiler keep the accumulators in registers. */
      switch (left < MAX_GROUP ? left : MAX_GROUP) {
        case 1: KERNEL_GROUP(prepared, row, in, out, start, end, 1); break;
        case 2: KERNEL_GROUP(prepared, row, in, out, start, end, 2); break;
        case 3: KERNEL_GROUP(prepared, row, in, out, start, end, 3); break;
        case 4: KERNEL_GROUP(prepared, row, in, out, start, end, 4); break;
#if MAX_GROUP > 4
        case 5: KERNEL_GROUP(prepared, row, in, out, start, end, 5); break;
        case 6: KERNEL_GROUP(prepared, row, in, out, start, end, 6); break;
#endif
#if MAX_GROUP > 6
        case 7: KERNEL_GROUP(prepared, row, in, out, start, end, 7); break;
        case 8: KERNEL_GROUP(prepared, row, in, out, start, end, 8); break;
#endif
      }
    }
  }
  rs_multiply_portable_range(prepared, in, out, vector_end, length);
}

#undef PASTE_
#undef PASTE
#undef PASTE3
#undef VEC
#undef VEC_BYTES
#undef LOAD
#undef STORE
#undef XOR
#undef ZERO
#undef KERNEL_GROUP
#undef CHUNK_BYTES
#undef PREFETCH_DISTANCE
#undef KERNEL
#undef TARGET
#undef PREFIX
#undef BITS
#undef MAX_GROUP
#undef KERNEL_STATE
#undef SPLIT
#undef MUL
