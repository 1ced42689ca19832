/* MD5's compression function over several independent messages at once (md5_lanes.c).
 * MD5 is one long dependency chain per message, so a lone message runs at the chain's latency
 * whatever the hardware; several messages hashed in one loop fill the execution units that one
 * leaves idle, each costing little more than it would alone. Two ways:
 *   interleaved  up to 4 messages in general-purpose registers, step by step in one loop. Runs
 *                anywhere. On this project's machines (AMD Zen 5) 1 message hashes at about
 *                925 MB/s (OpenSSL: 865), 2 at 920 each, 3 at 850 each, 4 at 620 each (out of
 *                registers): 1.08, 0.54, 0.39 and 0.40 ms of CPU per MB.
 *   simd         up to 16 messages, one per 32-bit lane of AVX-512. Each hashes at about 420 MB/s
 *                (Zen 5's vector adds and rotates take 2 cycles where scalar ones take 1), so it
 *                wins only with many messages: 2.4/n ms per MB for n, 6.7 GB/s for 16. */
#ifndef TESSERA_MD5_LANES_H
#define TESSERA_MD5_LANES_H

#include <stddef.h>
#include <stdint.h>

#define MD5_BLOCK_BYTES 64
#define MD5_MAX_INTERLEAVED 4
#define MD5_SIMD_LANES 16

/* One message in progress: its chaining values (A, B, C, D) and its next block. */
typedef struct {
  uint32_t h[4];
  const uint8_t *data;
} md5_lane;

/* Hashes `blocks` 64-byte blocks of each of `count` lanes (1 to MD5_MAX_INTERLEAVED), advancing
 * each lane's data past them. */
void md5_interleaved(md5_lane *const lanes[], unsigned count, size_t blocks);

/* Whether this CPU runs md5_simd. */
int md5_simd_supported(void);

/* As md5_interleaved, for 1 to MD5_SIMD_LANES lanes in AVX-512 vectors. */
void md5_simd(md5_lane *const lanes[], unsigned count, size_t blocks);

#endif
