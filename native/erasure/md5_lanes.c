/* MD5 compression of several messages at once: interleaved scalar code for up to 4, AVX-512
 * lanes for up to 16 (md5_lanes.h says when each wins). Both run md5_round_template.h's steps over
 * a "lane type" whose operations act on every message. */
#include "md5_lanes.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "md5_round_template.h"

/* GCC would pack the interleaved messages' scalar operations into vectors (SLP vectorization),
 * putting them on the slower vector units: 3 messages then hash at 280 MB/s each, not 800. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-tree-slp-vectorize")
#endif

#define INLINE static inline __attribute__((always_inline))
/* BMI1's ANDN does G's c AND NOT d in one instruction: 3 interleaved messages hash 5 % faster. */
#if defined(__x86_64__) && defined(__linux__)
#define CLONES __attribute__((target_clones("bmi", "default")))
#else
#define CLONES
#endif

static uint32_t load_le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- Interleaved: N messages' words side by side in a struct the compiler keeps in registers.
 * Each block word is loaded when its step needs it, not all 16 up front, so registers go to the
 * chaining values (4 messages still run out of them: see md5_lanes.h's figures). */
#define DEFINE_WAYS(N)                                                                                   \
  typedef struct { uint32_t v[N]; } words##N;                                                           \
  typedef struct { const uint8_t *p[N]; } blocks##N;                                                    \
  INLINE words##N add##N(words##N x, words##N y) {                                                      \
    for (int i = 0; i < N; i++) x.v[i] += y.v[i];                                                       \
    return x;                                                                                           \
  }                                                                                                     \
  INLINE words##N addk##N(words##N x, uint32_t k) {                                                     \
    for (int i = 0; i < N; i++) x.v[i] += k;                                                            \
    return x;                                                                                           \
  }                                                                                                     \
  INLINE words##N rol##N(words##N x, int s) {                                                           \
    for (int i = 0; i < N; i++) x.v[i] = x.v[i] << s | x.v[i] >> (32 - s);                              \
    return x;                                                                                           \
  }                                                                                                     \
  INLINE words##N f##N(words##N x, words##N y, words##N z) {                                            \
    for (int i = 0; i < N; i++) x.v[i] = z.v[i] ^ (x.v[i] & (y.v[i] ^ z.v[i]));                         \
    return x;                                                                                           \
  }                                                                                                     \
  INLINE words##N g_off##N(words##N x, words##N z) {                                                   \
    for (int i = 0; i < N; i++) x.v[i] &= ~z.v[i];                                                      \
    return x;                                                                                           \
  }                                                                                                     \
  INLINE words##N g_on##N(words##N x, words##N z) {                                                     \
    for (int i = 0; i < N; i++) x.v[i] &= z.v[i];                                                       \
    return x;                                                                                           \
  }                                                                                                     \
  INLINE words##N h##N(words##N x, words##N y, words##N z) { /* x, made last, is XORed last */          \
    for (int i = 0; i < N; i++) x.v[i] ^= y.v[i] ^ z.v[i];                                              \
    return x;                                                                                           \
  }                                                                                                     \
  INLINE words##N i##N(words##N x, words##N y, words##N z) {                                            \
    for (int i = 0; i < N; i++) x.v[i] = y.v[i] ^ (x.v[i] | ~z.v[i]);                                   \
    return x;                                                                                           \
  }                                                                                                     \
  INLINE words##N word##N(blocks##N m, int k) {                                                         \
    words##N w;                                                                                         \
    for (int i = 0; i < N; i++) w.v[i] = load_le32(m.p[i] + 4 * k);                                     \
    return w;                                                                                           \
  }

#define WAYS(op, x) _Generic((x), words1: op##1, words2: op##2, words3: op##3, words4: op##4)
#define ADD(x, y) WAYS(add, x)((x), (y))
#define ADDK(x, k) WAYS(addk, x)((x), (k))
#define ROL(x, s) WAYS(rol, x)((x), (s))
#define F(x, y, z) WAYS(f, x)((x), (y), (z))
#define G_OFF(x, z) WAYS(g_off, x)((x), (z))
#define G_ON(x, z) WAYS(g_on, x)((x), (z))
#define H(x, y, z) WAYS(h, x)((x), (y), (z))
#define I(x, y, z) WAYS(i, x)((x), (y), (z))
#define WORD(m, k) _Generic((m), blocks1: word1, blocks2: word2, blocks3: word3, blocks4: word4)((m), (k))

DEFINE_WAYS(1)
DEFINE_WAYS(2)
DEFINE_WAYS(3)
DEFINE_WAYS(4)

#define DEFINE_INTERLEAVED(N)                                                                           \
  CLONES static void interleaved##N(md5_lane *const lanes[], size_t blocks) {                             \
    words##N a, b, c, d;                                                                                \
    blocks##N m;                                                                                        \
    for (int i = 0; i < N; i++) {                                                                       \
      a.v[i] = lanes[i]->h[0], b.v[i] = lanes[i]->h[1], c.v[i] = lanes[i]->h[2], d.v[i] = lanes[i]->h[3]; \
      m.p[i] = lanes[i]->data;                                                                          \
    }                                                                                                   \
    for (; blocks > 0; blocks--) {                                                                      \
      const words##N a0 = a, b0 = b, c0 = c, d0 = d;                                                    \
      MD5_ROUNDS(a, b, c, d, m);                                                                        \
      a = ADD(a, a0), b = ADD(b, b0), c = ADD(c, c0), d = ADD(d, d0);                                   \
      for (int i = 0; i < N; i++) m.p[i] += MD5_BLOCK_BYTES;                                            \
    }                                                                                                   \
    for (int i = 0; i < N; i++) {                                                                       \
      lanes[i]->h[0] = a.v[i], lanes[i]->h[1] = b.v[i], lanes[i]->h[2] = c.v[i], lanes[i]->h[3] = d.v[i]; \
      lanes[i]->data = m.p[i];                                                                          \
    }                                                                                                   \
  }

DEFINE_INTERLEAVED(1)
DEFINE_INTERLEAVED(2)
DEFINE_INTERLEAVED(3)
DEFINE_INTERLEAVED(4)

void md5_interleaved(md5_lane *const lanes[], unsigned count, size_t blocks) {
  switch (count) {
    case 1: interleaved1(lanes, blocks); break;
    case 2: interleaved2(lanes, blocks); break;
    case 3: interleaved3(lanes, blocks); break;
    case 4: interleaved4(lanes, blocks); break;
  }
}

#undef ADD
#undef ADDK
#undef ROL
#undef F
#undef G_OFF
#undef G_ON
#undef H
#undef I
#undef WORD

#if defined(__x86_64__)
/* ---- AVX-512: word k of 16 messages in one vector. VPTERNLOGD does each round function. */
#define TARGET_AVX512 __attribute__((target("avx512f")))
#define ADD(x, y) _mm512_add_epi32((x), (y))
#define ADDK(x, k) _mm512_add_epi32((x), _mm512_set1_epi32((int)(k)))
#define ROL(x, s) _mm512_rol_epi32((x), (s))
#define F(x, y, z) _mm512_ternarylogic_epi32((x), (y), (z), 0xca)
#define G_OFF(x, z) _mm512_andnot_si512((z), (x))
#define G_ON(x, z) _mm512_and_si512((x), (z))
#define H(x, y, z) _mm512_ternarylogic_epi32((x), (y), (z), 0x96)
#define I(x, y, z) _mm512_ternarylogic_epi32((x), (y), (z), 0x39)
#define WORD(m, k) ((m)[k])

/* m[k] = word k of every lane's block: each lane's block loaded whole (zeros for lanes beyond
 * `count`), then a 16 x 16 transpose of 32-bit words in three stages: pairs of words within
 * 128-bit chunks, pairs of pairs, then the chunks themselves. */
INLINE TARGET_AVX512 void load_blocks(__m512i m[16], const uint8_t *const data[MD5_SIMD_LANES], unsigned count) {
  __m512i r[16], t[16];
  for (unsigned lane = 0; lane < 16; lane++)
    r[lane] = lane < count ? _mm512_loadu_si512((const void *)data[lane]) : _mm512_setzero_si512();
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  /* r[4g + o]: lanes 4g to 4g+3, word 4j + o in 128-bit chunk j. */
  for (int g = 0; g < 4; g++) {
    r[4 * g + 0] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
    r[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
    r[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
    r[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
  }
  for (int o = 0; o < 4; o++) {
    const __m512i low01 = _mm512_shuffle_i32x4(r[o], r[4 + o], 0x44), high01 = _mm512_shuffle_i32x4(r[o], r[4 + o], 0xee);
    const __m512i low23 = _mm512_shuffle_i32x4(r[8 + o], r[12 + o], 0x44), high23 = _mm512_shuffle_i32x4(r[8 + o], r[12 + o], 0xee);
    m[o] = _mm512_shuffle_i32x4(low01, low23, 0x88);
    m[4 + o] = _mm512_shuffle_i32x4(low01, low23, 0xdd);
    m[8 + o] = _mm512_shuffle_i32x4(high01, high23, 0x88);
    m[12 + o] = _mm512_shuffle_i32x4(high01, high23, 0xdd);
  }
}

static TARGET_AVX512 void simd(md5_lane *const lanes[], unsigned count, size_t blocks) {
  uint32_t words[4][MD5_SIMD_LANES] = {{0}};
  const uint8_t *data[MD5_SIMD_LANES];
  for (unsigned lane = 0; lane < count; lane++) {
    for (int w = 0; w < 4; w++) words[w][lane] = lanes[lane]->h[w];
    data[lane] = lanes[lane]->data;
  }
  __m512i a = _mm512_loadu_si512(words[0]), b = _mm512_loadu_si512(words[1]);
  __m512i c = _mm512_loadu_si512(words[2]), d = _mm512_loadu_si512(words[3]);
  for (; blocks > 0; blocks--) {
    __m512i m[16];
    load_blocks(m, data, count);
    const __m512i a0 = a, b0 = b, c0 = c, d0 = d;
    MD5_ROUNDS(a, b, c, d, m);
    a = ADD(a, a0), b = ADD(b, b0), c = ADD(c, c0), d = ADD(d, d0);
    for (unsigned lane = 0; lane < count; lane++) data[lane] += MD5_BLOCK_BYTES;
  }
  _mm512_storeu_si512(words[0], a), _mm512_storeu_si512(words[1], b);
  _mm512_storeu_si512(words[2], c), _mm512_storeu_si512(words[3], d);
  for (unsigned lane = 0; lane < count; lane++) {
    for (int w = 0; w < 4; w++) lanes[lane]->h[w] = words[w][lane];
    lanes[lane]->data = data[lane];
  }
}

int md5_simd_supported(void) { return __builtin_cpu_supports("avx512f"); }

void md5_simd(md5_lane *const lanes[], unsigned count, size_t blocks) { simd(lanes, count, blocks); }
#else
int md5_simd_supported(void) { return 0; }

void md5_simd(md5_lane *const lanes[], unsigned count, size_t blocks) { md5_interleaved(lanes, count, blocks); }
#endif
