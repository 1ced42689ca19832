/* One thread that hashes the pending updates of many MD5 streams together (md5_hasher.c).
 * Updates of distinct streams run side by side in md5_lanes.c's kernels, several costing about
 * what one does. A lone update waits a moment for another body's while others are mid-upload; a
 * stream alone is hashed straight away. */
#ifndef TESSERA_MD5_HASHER_H
#define TESSERA_MD5_HASHER_H

#include <stddef.h>
#include <stdint.h>

#include "md5_lanes.h"

#define MD5_DIGEST_BYTES 16

/* One message's MD5 in progress. While an update of it is pending only the hasher touches it. */
typedef struct {
  md5_lane lane;
  uint64_t length;
  uint8_t partial[MD5_BLOCK_BYTES]; /* the bytes of the block not yet complete */
  uint32_t partial_length;
  uint32_t in_lane; /* the hasher is hashing an update of this stream (hasher thread only) */
} md5_stream;

void md5_stream_init(md5_stream *stream);
/* The digest of everything hashed so far; the stream is spent. */
void md5_stream_digest(md5_stream *stream, uint8_t digest[MD5_DIGEST_BYTES]);

/* `length` bytes at `bytes` to add to a stream; the submitter leaves both alone until reported. */
typedef struct md5_update {
  struct md5_update *next;
  md5_stream *stream;
  const uint8_t *bytes;
  size_t length;
  size_t blocks_left; /* the hasher's progress */
} md5_update;

typedef enum {
  MD5_AUTO,        /* whichever costs least for the number of streams waiting (md5_lanes.h) */
  MD5_INTERLEAVED, /* never SIMD lanes */
  MD5_SIMD,        /* SIMD lanes for any two or more streams (where the CPU has them) */
} md5_mode;

/* Called on the hasher's thread once an update is hashed. */
typedef void md5_updated_fn(md5_update *update, void *context);

typedef struct md5_hasher md5_hasher;

/* Starts the hasher's thread; NULL if it cannot. */
md5_hasher *md5_hasher_create(md5_updated_fn *updated, void *context);
/* Queues an update. Updates of one stream are hashed in the order submitted. */
void md5_hasher_submit(md5_hasher *hasher, md5_update *update);
void md5_hasher_set_mode(md5_hasher *hasher, md5_mode mode);
/* The stream is digested: no longer a body mid-upload that lone updates wait for. */
void md5_hasher_forget(md5_hasher *hasher, const md5_stream *stream);
/* How many times a lone update has waited for company (tests). */
uint64_t md5_hasher_company_waits(md5_hasher *hasher);
/* Stops and joins the thread; updates not yet reported never are. */
void md5_hasher_destroy(md5_hasher *hasher);

#endif
