/* The MD5 hasher's thread: takes every waiting update of a distinct stream into a lane, hashes
 * the lanes together a slice at a time, retires the finished ones and takes in newcomers between
 * slices. Many streams -> AVX-512 lanes; a few -> interleaved scalar groups of up to 4; one ->
 * the scalar code alone, as fast as a stream can go. */
#define _GNU_SOURCE /* pthread_setname_np */
#include "md5_hasher.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Lanes run a slice of at most this many blocks (16 KiB, about 20 µs) at a time, so that an
 * update that arrives meanwhile joins them soon. */
#define SLICE_BLOCKS 256
/* From this many streams on SIMD lanes cost less than interleaved groups (md5_lanes.h's figures:
 * 2.4/n ms per MB for n lanes, about 0.4 for groups of 3 or 4). */
#define SIMD_FROM_STREAMS 7
#define MAX_ACTIVE MD5_SIMD_LANES
/* An idle hasher that takes in fewer updates than bodies are mid-upload (up to a group of 4) waits
 * up to this long for the others' updates to hash beside: each body sends a stripe every few ms
 * that hashes in about 1, so they rarely arrive at the same moment by themselves, and a group of
 * 4 costs a quarter of what one alone does per byte. A body alone is hashed at once. */
#define COMPANY_WAIT_NS 5000000
/* A body counts as mid-upload from an update until its digest, or until it has sent nothing for
 * this long (a body abandoned without a digest soon stops holding others back). */
#define MID_UPLOAD_NS 50000000
#define RECENT_STREAMS 32

struct md5_hasher {
  pthread_mutex_t lock;
  pthread_cond_t wake;
  /* Under the lock: */
  md5_update *queue_head, *queue_tail; /* submitted and not yet in a lane, oldest first */
  md5_mode mode;
  int stopping;
  struct {
    const md5_stream *stream; /* compared, never read: it may be gone */
    uint64_t submitted_ns;
  } recent[RECENT_STREAMS]; /* the latest update of each body lately sent, NULL once digested */
  uint64_t company_waits;
  /* Fixed: */
  md5_updated_fn *updated;
  void *context;
  int simd;
  pthread_t thread;
  /* The hasher thread's own: */
  md5_update *active[MAX_ACTIVE];
  unsigned active_count;
};

static const uint32_t MD5_INITIAL[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};

void md5_stream_init(md5_stream *stream) {
  memset(stream, 0, sizeof *stream);
  memcpy(stream->lane.h, MD5_INITIAL, sizeof MD5_INITIAL);
}

static void hash_partial_block(md5_stream *stream) {
  md5_lane *lane = &stream->lane;
  lane->data = stream->partial;
  md5_interleaved(&lane, 1, 1);
  stream->partial_length = 0;
}

void md5_stream_digest(md5_stream *stream, uint8_t digest[MD5_DIGEST_BYTES]) {
  const uint64_t bits = stream->length * 8;
  stream->partial[stream->partial_length++] = 0x80;
  if (stream->partial_length > MD5_BLOCK_BYTES - 8) {
    memset(stream->partial + stream->partial_length, 0, MD5_BLOCK_BYTES - stream->partial_length);
    hash_partial_block(stream);
  }
  memset(stream->partial + stream->partial_length, 0, MD5_BLOCK_BYTES - 8 - stream->partial_length);
  for (int i = 0; i < 8; i++) stream->partial[MD5_BLOCK_BYTES - 8 + i] = (uint8_t)(bits >> (8 * i));
  hash_partial_block(stream);
  for (int i = 0; i < MD5_DIGEST_BYTES; i++) digest[i] = (uint8_t)(stream->lane.h[i / 4] >> (8 * (i % 4)));
}

/* Tops up the stream's partial block from the update's first bytes and points the lane at the
 * update's whole blocks. */
static void begin_update(md5_update *update) {
  md5_stream *stream = update->stream;
  size_t taken = 0;
  if (stream->partial_length > 0 && update->length > 0) {
    const size_t room = MD5_BLOCK_BYTES - stream->partial_length;
    taken = update->length < room ? update->length : room;
    memcpy(stream->partial + stream->partial_length, update->bytes, taken);
    stream->partial_length += (uint32_t)taken;
    if (stream->partial_length == MD5_BLOCK_BYTES) hash_partial_block(stream);
  }
  stream->length += update->length;
  stream->lane.data = update->bytes + taken;
  update->blocks_left = (update->length - taken) / MD5_BLOCK_BYTES;
}

/* Keeps the bytes after the update's last whole block for the next. */
static void end_update(md5_update *update) {
  md5_stream *stream = update->stream;
  const size_t rest = (size_t)(update->bytes + update->length - stream->lane.data);
  if (rest > 0) memcpy(stream->partial + stream->partial_length, stream->lane.data, rest);
  stream->partial_length += (uint32_t)rest;
}

/* Moves waiting updates into free lanes, oldest first, skipping streams already in a lane (their
 * next update waits its turn). Under the lock. */
static void admit_waiting(md5_hasher *hasher) {
  md5_update *previous = NULL, *update = hasher->queue_head;
  while (update && hasher->active_count < MAX_ACTIVE) {
    md5_update *next = update->next;
    if (update->stream->in_lane) {
      previous = update;
    } else {
      if (previous) previous->next = next;
      else hasher->queue_head = next;
      if (hasher->queue_tail == update) hasher->queue_tail = previous;
      update->stream->in_lane = 1;
      hasher->active[hasher->active_count++] = update;
    }
    update = next;
  }
}

typedef void md5_kernel(md5_lane *const lanes[], unsigned count, size_t blocks);

/* One slice of a group of lanes: as many blocks as the shortest has left, at most SLICE_BLOCKS. */
static void run_group(md5_kernel *kernel, md5_update *const updates[], md5_lane *const lanes[], unsigned count) {
  size_t blocks = SLICE_BLOCKS;
  for (unsigned i = 0; i < count; i++)
    if (updates[i]->blocks_left < blocks) blocks = updates[i]->blocks_left;
  kernel(lanes, count, blocks);
  for (unsigned i = 0; i < count; i++) updates[i]->blocks_left -= blocks;
}

static void hash_slice(md5_hasher *hasher, md5_mode mode) {
  md5_update *updates[MAX_ACTIVE];
  md5_lane *lanes[MAX_ACTIVE];
  unsigned count = 0;
  for (unsigned i = 0; i < hasher->active_count; i++) {
    if (hasher->active[i]->blocks_left == 0) continue;
    updates[count] = hasher->active[i];
    lanes[count++] = &hasher->active[i]->stream->lane;
  }
  const int simd = hasher->simd && count >= 2 && (mode == MD5_SIMD || (mode == MD5_AUTO && count >= SIMD_FROM_STREAMS));
  if (simd) {
    run_group(md5_simd, updates, lanes, count);
    return;
  }
  /* Groups as even as can be: 5 streams hash as 3 + 2, not 4 + 1. */
  const unsigned groups = (count + MD5_MAX_INTERLEAVED - 1) / MD5_MAX_INTERLEAVED;
  for (unsigned g = 0; g < groups; g++) {
    const unsigned start = g * count / groups, end = (g + 1) * count / groups;
    run_group(md5_interleaved, updates + start, lanes + start, end - start);
  }
}

static void retire_finished(md5_hasher *hasher) {
  unsigned kept = 0;
  for (unsigned i = 0; i < hasher->active_count; i++) {
    md5_update *update = hasher->active[i];
    if (update->blocks_left > 0) {
      hasher->active[kept++] = update;
      continue;
    }
    end_update(update);
    update->stream->in_lane = 0;
    hasher->updated(update, hasher->context);
  }
  hasher->active_count = kept;
}

static uint64_t now_ns(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

/* Bodies that sent an update lately and have not been digested. Under the lock. */
static unsigned bodies_mid_upload(const md5_hasher *hasher, uint64_t now) {
  unsigned count = 0;
  for (unsigned i = 0; i < RECENT_STREAMS; i++)
    if (hasher->recent[i].stream && now - hasher->recent[i].submitted_ns < MID_UPLOAD_NS) count++;
  return count;
}

/* Holds the updates just taken in from idle back until as many bodies are in lanes as are
 * mid-upload (at most a group) or COMPANY_WAIT_NS pass, taking in newcomers. Under the lock. */
static void wait_for_company(md5_hasher *hasher) {
  const uint64_t now = now_ns();
  unsigned wanted = bodies_mid_upload(hasher, now);
  if (wanted > MD5_MAX_INTERLEAVED) wanted = MD5_MAX_INTERLEAVED;
  if (hasher->active_count >= wanted) return;
  hasher->company_waits++;
  const uint64_t deadline_ns = now + COMPANY_WAIT_NS;
  const struct timespec deadline = {(time_t)(deadline_ns / 1000000000u), (long)(deadline_ns % 1000000000u)};
  while (!hasher->stopping && hasher->active_count < wanted) {
    if (pthread_cond_timedwait(&hasher->wake, &hasher->lock, &deadline) != 0) return;
    admit_waiting(hasher);
  }
}

static void *run(void *argument) {
  md5_hasher *hasher = argument;
  for (;;) {
    pthread_mutex_lock(&hasher->lock);
    while (!hasher->stopping && hasher->active_count == 0 && !hasher->queue_head)
      pthread_cond_wait(&hasher->wake, &hasher->lock);
    if (hasher->stopping) {
      pthread_mutex_unlock(&hasher->lock);
      return NULL;
    }
    const unsigned admitted_from = hasher->active_count;
    admit_waiting(hasher);
    if (admitted_from == 0) wait_for_company(hasher);
    const md5_mode mode = hasher->mode;
    pthread_mutex_unlock(&hasher->lock);
    for (unsigned i = admitted_from; i < hasher->active_count; i++) begin_update(hasher->active[i]);
    hash_slice(hasher, mode);
    retire_finished(hasher);
  }
}

md5_hasher *md5_hasher_create(md5_updated_fn *updated, void *context) {
  md5_hasher *hasher = calloc(1, sizeof *hasher);
  if (!hasher) return NULL;
  hasher->updated = updated;
  hasher->context = context;
  hasher->mode = MD5_AUTO;
  hasher->simd = md5_simd_supported();
  pthread_mutex_init(&hasher->lock, NULL);
  pthread_condattr_t monotonic;
  pthread_condattr_init(&monotonic);
  pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
  pthread_cond_init(&hasher->wake, &monotonic);
  pthread_condattr_destroy(&monotonic);
  if (pthread_create(&hasher->thread, NULL, run, hasher) != 0) {
    pthread_cond_destroy(&hasher->wake);
    pthread_mutex_destroy(&hasher->lock);
    free(hasher);
    return NULL;
  }
#if defined(__linux__)
  pthread_setname_np(hasher->thread, "tessera-md5");
#endif
  return hasher;
}

/* Under the lock: the stream's slot in `recent`, else a free or the stalest one. */
static void note_submitted(md5_hasher *hasher, const md5_stream *stream) {
  unsigned slot = 0;
  for (unsigned i = 0; i < RECENT_STREAMS; i++) {
    if (hasher->recent[i].stream == stream) {
      slot = i;
      break;
    }
    if (!hasher->recent[i].stream || hasher->recent[i].submitted_ns < hasher->recent[slot].submitted_ns) slot = i;
  }
  hasher->recent[slot].stream = stream;
  hasher->recent[slot].submitted_ns = now_ns();
}

void md5_hasher_forget(md5_hasher *hasher, const md5_stream *stream) {
  pthread_mutex_lock(&hasher->lock);
  for (unsigned i = 0; i < RECENT_STREAMS; i++)
    if (hasher->recent[i].stream == stream) hasher->recent[i].stream = NULL;
  pthread_mutex_unlock(&hasher->lock);
}

uint64_t md5_hasher_company_waits(md5_hasher *hasher) {
  pthread_mutex_lock(&hasher->lock);
  const uint64_t waits = hasher->company_waits;
  pthread_mutex_unlock(&hasher->lock);
  return waits;
}

void md5_hasher_submit(md5_hasher *hasher, md5_update *update) {
  update->next = NULL;
  pthread_mutex_lock(&hasher->lock);
  if (hasher->queue_tail) hasher->queue_tail->next = update;
  else hasher->queue_head = update;
  hasher->queue_tail = update;
  note_submitted(hasher, update->stream);
  pthread_cond_signal(&hasher->wake);
  pthread_mutex_unlock(&hasher->lock);
}

void md5_hasher_set_mode(md5_hasher *hasher, md5_mode mode) {
  pthread_mutex_lock(&hasher->lock);
  hasher->mode = mode;
  pthread_mutex_unlock(&hasher->lock);
}

void md5_hasher_destroy(md5_hasher *hasher) {
  pthread_mutex_lock(&hasher->lock);
  hasher->stopping = 1;
  pthread_cond_signal(&hasher->wake);
  pthread_mutex_unlock(&hasher->lock);
  pthread_join(hasher->thread, NULL);
  pthread_cond_destroy(&hasher->wake);
  pthread_mutex_destroy(&hasher->lock);
  free(hasher);
}
