/* GF(2^8) (polynomial 0x11d) multiply kernels: portable C, and on x86-64 SSSE3 / AVX2
 * split-nibble shuffles (PSHUFB) and GFNI affine transforms (GF2P8AFFINEQB), chosen at run time
 * by what the CPU supports. */
#include "kernels.h"

#include <string.h>

static uint8_t gf_mul(uint8_t a, uint8_t b) {
  uint8_t product = 0;
  while (b) {
    if (b & 1) product ^= a;
    a = (uint8_t)((a << 1) ^ ((a & 0x80) ? 0x1d : 0));
    b >>= 1;
  }
  return product;
}

/* GF2P8AFFINEQB computes result bit i as the parity of (matrix byte 7-i AND x). Multiplying by c
 * is linear over GF(2): bit i of c*x is the XOR over set bits j of x of bit i of c*2^j. */
static uint64_t affine_matrix(uint8_t coefficient) {
  uint64_t matrix = 0;
  for (int i = 0; i < 8; i++) {
    uint8_t row = 0;
    for (int j = 0; j < 8; j++) row |= (uint8_t)(((gf_mul(coefficient, (uint8_t)(1u << j)) >> i) & 1) << j);
    matrix |= (uint64_t)row << (8 * (7 - i));
  }
  return matrix;
}

size_t rs_prepared_size(uint32_t rows, uint32_t cols) {
  return sizeof(rs_prepared) + (size_t)rows * cols * sizeof(rs_coefficient_tables);
}

void rs_prepare(rs_prepared *prepared, const uint8_t *coefficients, uint32_t rows, uint32_t cols) {
  prepared->rows = rows;
  prepared->cols = cols;
  for (size_t i = 0; i < (size_t)rows * cols; i++) {
    rs_coefficient_tables *t = &prepared->tables[i];
    for (int n = 0; n < 16; n++) {
      t->low[n] = t->low[n + 16] = gf_mul(coefficients[i], (uint8_t)n);
      t->high[n] = t->high[n + 16] = gf_mul(coefficients[i], (uint8_t)(n << 4));
    }
    t->affine = affine_matrix(coefficients[i]);
  }
}

void rs_multiply_portable_range(const rs_prepared *prepared, const uint8_t *const *in, uint8_t *const *out,
                                size_t start, size_t end) {
  for (uint32_t r = 0; r < prepared->rows; r++) {
    uint8_t *o = out[r];
    memset(o + start, 0, end - start);
    for (uint32_t c = 0; c < prepared->cols; c++) {
      const rs_coefficient_tables *t = &prepared->tables[r * prepared->cols + c];
      const uint8_t *x = in[c];
      for (size_t i = start; i < end; i++) o[i] ^= t->low[x[i] & 15] ^ t->high[x[i] >> 4];
    }
  }
}

static void multiply_portable(const rs_prepared *prepared, const uint8_t *const *in, uint8_t *const *out,
                              size_t length) {
  rs_multiply_portable_range(prepared, in, out, 0, length);
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

/* Split-nibble multiply: x * c = table_low[x & 15] ^ table_high[x >> 4], with PSHUFB doing 16
 * (or, per 128-bit lane, 32/64) table lookups at once. */
#define NIBBLE_STATE(prefix, bits) \
  const VEC nibble_mask = prefix##_set1_epi8(0x0f); \
  VEC x_high
#define NIBBLE_SPLIT(prefix, bits, x) \
  (x_high = prefix##_and_si##bits(prefix##_srli_epi64((x), 4), nibble_mask), (x) = prefix##_and_si##bits((x), nibble_mask))
#define NIBBLE_MUL(prefix, bits, t, x)                                                         \
  prefix##_xor_si##bits(prefix##_shuffle_epi8(prefix##_loadu_si##bits((const void *)(t)->low), (x)), \
                        prefix##_shuffle_epi8(prefix##_loadu_si##bits((const void *)(t)->high), x_high))

/* SSSE3: 16 bytes a step. */
#define KERNEL multiply_ssse3
#define TARGET "ssse3"
#define PREFIX _mm
#define BITS 128
#define MAX_GROUP 4
#define KERNEL_STATE NIBBLE_STATE(_mm, 128)
#define SPLIT(x) NIBBLE_SPLIT(_mm, 128, x)
#define MUL(t, x) NIBBLE_MUL(_mm, 128, t, x)
#include "kernel_template.h"

/* AVX2: 32 bytes a step; both 128-bit lanes of a table load hold the same 16 products. */
#define KERNEL multiply_avx2
#define TARGET "avx2"
#define PREFIX _mm256
#define BITS 256
#define MAX_GROUP 6
#define KERNEL_STATE NIBBLE_STATE(_mm256, 256)
#define SPLIT(x) NIBBLE_SPLIT(_mm256, 256, x)
#define MUL(t, x) NIBBLE_MUL(_mm256, 256, t, x)
#include "kernel_template.h"

/* GFNI: one GF2P8AFFINEQB per coefficient and vector, with the coefficient's bit matrix. */
#define KERNEL multiply_avx2_gfni
#define TARGET "avx2,gfni"
#define PREFIX _mm256
#define BITS 256
#define MAX_GROUP 8
#define KERNEL_STATE
#define SPLIT(x)
#define MUL(t, x) _mm256_gf2p8affine_epi64_epi8((x), _mm256_set1_epi64x((long long)(t)->affine), 0)
#include "kernel_template.h"

#define KERNEL multiply_avx512_gfni
#define TARGET "avx512f,avx512bw,gfni"
#define PREFIX _mm512
#define BITS 512
#define MAX_GROUP 8
#define KERNEL_STATE
#define SPLIT(x)
#define MUL(t, x) _mm512_gf2p8affine_epi64_epi8((x), _mm512_set1_epi64((long long)(t)->affine), 0)
#include "kernel_template.h"

#endif

size_t rs_available_kernels(rs_kernel *kernels, size_t capacity) {
  size_t count = 0;
#define OFFER(kernel_name, fn) \
  if (count < capacity) kernels[count++] = (rs_kernel){kernel_name, fn}
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  const int gfni = __builtin_cpu_supports("gfni");
  if (gfni && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"))
    OFFER("avx512-gfni", multiply_avx512_gfni);
  if (gfni && __builtin_cpu_supports("avx2")) OFFER("avx2-gfni", multiply_avx2_gfni);
  if (__builtin_cpu_supports("avx2")) OFFER("avx2", multiply_avx2);
  if (__builtin_cpu_supports("ssse3")) OFFER("ssse3", multiply_ssse3);
#endif
  OFFER("portable", multiply_portable);
#undef OFFER
  return count;
}
