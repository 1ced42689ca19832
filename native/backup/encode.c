/* The backup's blob naming and encoding (src/backup/blob-codec.ts describes the stored form), a
 * batch per call on a codec thread: each chunk named (HMAC-SHA256 under the naming key, or
 * SHA-256 when unencrypted; an all-zero chunk gets the all-zero id), and each blob zstd-compressed
 * straight into its place in the caller's output buffer and sealed there in place (AES-256-GCM,
 * a random nonce in front, the tag behind). Node's crypto set a cipher up per blob and gave each
 * sealed blob a fresh buffer (a page fault per 4 KiB) that was then copied into the output; here
 * one OpenSSL context keeps the key schedule, the HMAC key's pads are hashed once, and nothing is
 * copied but a blob stored as it is in an unencrypted repository.
 *   encoder(encKey: Uint8Array | null, macKey: Uint8Array | null, bindIds: boolean, level: number, lanes: number): object
 *       encKey: 32 bytes to seal under (null: blobs stored unsealed); macKey: the HMAC key chunks
 *       are named under (null: SHA-256); bindIds: each seal authenticates the blob's id as
 *       additional data; level: zstd's compression level; lanes: batches it runs at a time
 *   encodeBatch(encoder, data, chunkSize, ids, pieces, out, stored, done?): number | undefined
 *       chunkSize > 0 (pieces null): names each chunkSize piece of data (the last may be shorter)
 *       into ids, back to back; with out and stored, also encodes every chunk not all zero, and
 *       (0, 0) goes into stored for the others. chunkSize 0: encodes pieces (Float64Array of
 *       offset in data, length per blob; their ids back to back in ids).
 *       The stored forms go back to back into out (room for each plaintext + 28 bytes); stored
 *       gets (length, compressed 1/0) per blob; the bytes written are returned, or with `done`
 *       the batch runs on libuv's thread pool and done(error | null, written) is called (the
 *       arrays must be left alone until then). A blob is kept compressed only when that saves at
 *       least 1/32 of it.
 * An encoder runs as many batches at a time as it has lanes; more wait for a free lane. */
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include <zstd.h>

#include "args.h"
#include "encode.h"

#define ID_BYTES 32
#define NONCE_BYTES 12
#define TAG_BYTES 16
#define SHA256_BLOCK 64
#define PIECE_FIELDS 2
#define STORED_FIELDS 2
/* Nonces are cut from random bytes drawn this many at a time. */
#define NONCE_POOL (4096 - 4096 % NONCE_BYTES)

/* What one batch at a time works with. */
typedef struct {
  EVP_CIPHER_CTX *cipher; /* NULL: blobs are stored unsealed */
  int bind_ids;
  EVP_MD_CTX *inner, *outer; /* HMAC: SHA-256 with the key's inner and outer pad hashed; NULL: plain SHA-256 */
  EVP_MD_CTX *digest;        /* the working copy */
  ZSTD_CCtx *zstd;
  int level;
  uint8_t nonces[NONCE_POOL];
  size_t nonces_used;
} lane;

/* Lanes for as many batches at a time; a batch on libuv's pool waits there for a free one, so
 * the next batch starts the moment one is done, without a turn of the JS thread. */
typedef struct {
  size_t count;
  lane **lanes;
  int *busy;
  uv_mutex_t lock;
  uv_cond_t freed;
} encoder;

static const napi_type_tag ENCODER_TAG = {0x7465737365726162ULL, 0x656e636f64657231ULL};

static void free_lane(lane *e) {
  if (!e) return;
  EVP_CIPHER_CTX_free(e->cipher);
  EVP_MD_CTX_free(e->inner);
  EVP_MD_CTX_free(e->outer);
  EVP_MD_CTX_free(e->digest);
  ZSTD_freeCCtx(e->zstd);
  free(e);
}

static void free_encoder(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  encoder *e = data;
  for (size_t i = 0; i < e->count; i++) free_lane(e->lanes[i]);
  uv_mutex_destroy(&e->lock);
  uv_cond_destroy(&e->freed);
  free(e->lanes);
  free(e->busy);
  free(e);
}

/* HMAC (RFC 2104) with the 32-byte key's padded blocks hashed once: a chunk's id is then
 * SHA-256(outer || SHA-256(inner || chunk)) from copies of the two states. */
static int set_mac_key(lane *e, const uint8_t *key) {
  uint8_t inner_pad[SHA256_BLOCK], outer_pad[SHA256_BLOCK];
  memset(inner_pad, 0x36, SHA256_BLOCK);
  memset(outer_pad, 0x5c, SHA256_BLOCK);
  for (int i = 0; i < KEY_BYTES; i++) {
    inner_pad[i] ^= key[i];
    outer_pad[i] ^= key[i];
  }
  e->inner = EVP_MD_CTX_new();
  e->outer = EVP_MD_CTX_new();
  return e->inner && e->outer && EVP_DigestInit_ex(e->inner, EVP_sha256(), NULL) == 1 &&
         EVP_DigestUpdate(e->inner, inner_pad, SHA256_BLOCK) == 1 && EVP_DigestInit_ex(e->outer, EVP_sha256(), NULL) == 1 &&
         EVP_DigestUpdate(e->outer, outer_pad, SHA256_BLOCK) == 1;
}

static lane *new_lane(const uint8_t *enc_key, const uint8_t *mac_key, int bind_ids, int level) {
  lane *e = calloc(1, sizeof(lane));
  if (!e) return NULL;
  e->bind_ids = bind_ids;
  e->level = level;
  e->nonces_used = NONCE_POOL;
  e->zstd = ZSTD_createCCtx();
  e->digest = EVP_MD_CTX_new();
  int ready = e->zstd && e->digest && (!mac_key || set_mac_key(e, mac_key));
  if (ready && enc_key) {
    e->cipher = EVP_CIPHER_CTX_new();
    ready = e->cipher && EVP_EncryptInit_ex(e->cipher, EVP_aes_256_gcm(), NULL, enc_key, NULL) == 1;
  }
  if (!ready) {
    free_lane(e);
    return NULL;
  }
  return e;
}

static encoder *new_encoder(const uint8_t *enc_key, const uint8_t *mac_key, int bind_ids, int level, size_t count) {
  encoder *e = calloc(1, sizeof(encoder));
  if (!e) return NULL;
  e->lanes = calloc(count, sizeof(lane *));
  e->busy = calloc(count, sizeof(int));
  int locks = 0;
  if (e->lanes && e->busy && uv_mutex_init(&e->lock) == 0) {
    locks = uv_cond_init(&e->freed) == 0;
    if (!locks) uv_mutex_destroy(&e->lock);
  }
  if (!locks) {
    free(e->lanes);
    free(e->busy);
    free(e);
    return NULL;
  }
  int ready = 1;
  for (; ready && e->count < count; e->count++) ready = (e->lanes[e->count] = new_lane(enc_key, mac_key, bind_ids, level)) != NULL;
  if (!ready) {
    free_encoder(NULL, e, NULL);
    return NULL;
  }
  return e;
}

/* A free lane, waiting for one if need be. */
static lane *take_lane(encoder *e, size_t *index) {
  uv_mutex_lock(&e->lock);
  for (;;) {
    for (size_t i = 0; i < e->count; i++) {
      if (e->busy[i]) continue;
      e->busy[i] = 1;
      uv_mutex_unlock(&e->lock);
      *index = i;
      return e->lanes[i];
    }
    uv_cond_wait(&e->freed, &e->lock);
  }
}

static void give_lane(encoder *e, size_t index) {
  uv_mutex_lock(&e->lock);
  e->busy[index] = 0;
  uv_cond_signal(&e->freed);
  uv_mutex_unlock(&e->lock);
}

napi_value create_encoder(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5], result;
  uint8_t *enc_key, *mac_key;
  bool bind_ids;
  int32_t level;
  uint32_t lanes;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 5 || !get_key(env, argv[0], &enc_key) || !get_key(env, argv[1], &mac_key) ||
      napi_get_value_bool(env, argv[2], &bind_ids) != napi_ok || napi_get_value_int32(env, argv[3], &level) != napi_ok ||
      napi_get_value_uint32(env, argv[4], &lanes) != napi_ok || lanes == 0 || lanes > 64)
    FAIL("encoder(encKey: 32-byte Uint8Array | null, macKey: 32-byte Uint8Array | null, bindIds: boolean, level: number, lanes: 1..64)");
  encoder *e = new_encoder(enc_key, mac_key, bind_ids, level, lanes);
  if (!e) FAIL("encoder: out of memory or no AES-256-GCM / SHA-256");
  if (napi_create_external(env, e, free_encoder, NULL, &result) != napi_ok) {
    free_encoder(env, e, NULL);
    FAIL("encoder: cannot wrap it");
  }
  CHECK(napi_type_tag_object(env, result, &ENCODER_TAG));
  return result;
}

static encoder *get_encoder(napi_env env, napi_value value) {
  bool tagged;
  void *e;
  if (napi_check_object_type_tag(env, value, &ENCODER_TAG, &tagged) != napi_ok || !tagged ||
      napi_get_value_external(env, value, &e) != napi_ok)
    return NULL;
  return e;
}

static int is_zero(const uint8_t *bytes, size_t length) {
  return length == 0 || (bytes[0] == 0 && memcmp(bytes, bytes + 1, length - 1) == 0);
}

/* The id of a non-zero chunk: HMAC-SHA256 under the naming key, or SHA-256. */
static int name_chunk(lane *e, const uint8_t *chunk, size_t length, uint8_t *id) {
  unsigned int ignored;
  if (!e->inner) return EVP_Digest(chunk, length, id, &ignored, EVP_sha256(), NULL) == 1;
  uint8_t inner_hash[ID_BYTES];
  return EVP_MD_CTX_copy_ex(e->digest, e->inner) == 1 && EVP_DigestUpdate(e->digest, chunk, length) == 1 &&
         EVP_DigestFinal_ex(e->digest, inner_hash, &ignored) == 1 && EVP_MD_CTX_copy_ex(e->digest, e->outer) == 1 &&
         EVP_DigestUpdate(e->digest, inner_hash, ID_BYTES) == 1 && EVP_DigestFinal_ex(e->digest, id, &ignored) == 1;
}

/* The ids of `data`'s chunk_size pieces into `ids` (room checked); 0 if hashing failed. */
static int name_all(lane *e, const uint8_t *data, size_t data_length, size_t chunk_size, uint8_t *ids) {
  size_t count = (data_length + chunk_size - 1) / chunk_size;
  for (size_t i = 0; i < count; i++) {
    const uint8_t *chunk = data + i * chunk_size;
    size_t length = i + 1 < count ? chunk_size : data_length - i * chunk_size;
    uint8_t *id = ids + i * ID_BYTES;
    if (is_zero(chunk, length))
      memset(id, 0, ID_BYTES);
    else if (!name_chunk(e, chunk, length, id))
      return 0;
  }
  return 1;
}

static const uint8_t *next_nonce(lane *e) {
  if (e->nonces_used == NONCE_POOL) {
    if (RAND_bytes(e->nonces, NONCE_POOL) != 1) return NULL;
    e->nonces_used = 0;
  }
  e->nonces_used += NONCE_BYTES;
  return e->nonces + e->nonces_used - NONCE_BYTES;
}

/* Seals `payload` (which may be out + NONCE_BYTES itself) into `out`: nonce, ciphertext, tag. */
static int seal(lane *e, const uint8_t *payload, size_t length, const uint8_t *id, uint8_t *out) {
  const uint8_t *nonce = next_nonce(e);
  int written, ignored;
  if (!nonce || length > INT_MAX) return 0;
  memcpy(out, nonce, NONCE_BYTES);
  /* Only the nonce: the key schedule set up once stays. */
  return EVP_EncryptInit_ex(e->cipher, NULL, NULL, NULL, nonce) == 1 &&
         (!id || EVP_EncryptUpdate(e->cipher, NULL, &ignored, id, ID_BYTES) == 1) &&
         EVP_EncryptUpdate(e->cipher, out + NONCE_BYTES, &written, payload, (int)length) == 1 &&
         EVP_EncryptFinal_ex(e->cipher, out + NONCE_BYTES + written, &ignored) == 1 &&
         EVP_CIPHER_CTX_ctrl(e->cipher, EVP_CTRL_GCM_GET_TAG, TAG_BYTES, out + NONCE_BYTES + length) == 1;
}

/* One blob's stored form into `out`; its length, or 0 on failure. The compressed form is written
 * where the sealed payload goes, with room for less than 31/32 of the plaintext: zstd fails when
 * it would not save that much, and the plaintext is stored instead. */
static size_t encode_blob(lane *e, const uint8_t *plain, size_t length, const uint8_t *id, uint8_t *out, int *compressed) {
  size_t header = e->cipher ? NONCE_BYTES : 0;
  if (length == 0) {
    *compressed = 0;
    return e->cipher && !seal(e, plain, 0, e->bind_ids ? id : NULL, out) ? 0 : header + (e->cipher ? TAG_BYTES : 0);
  }
  size_t worth_it = (length * 31 + 31) / 32 - 1; /* the largest size under 31/32 of the plaintext */
  size_t packed = ZSTD_compressCCtx(e->zstd, out + header, worth_it, plain, length, e->level);
  *compressed = !ZSTD_isError(packed);
  const uint8_t *payload = *compressed ? out + header : plain;
  size_t payload_length = *compressed ? packed : length;
  if (!e->cipher) {
    if (!*compressed) memcpy(out, plain, length);
    return payload_length;
  }
  return seal(e, payload, payload_length, e->bind_ids ? id : NULL, out) ? NONCE_BYTES + payload_length + TAG_BYTES : 0;
}

/* One batch: chunks named (chunk_size > 0: the ids of data's chunk_size pieces into ids),
 * blobs encoded (out given: pieces given, with their ids in ids; or no pieces: every chunk named
 * not all zero, with (0, 0) in stored for the rest). Runs on the JS thread or on libuv's pool. */
typedef struct {
  encoder *e;
  const uint8_t *data;
  size_t data_length, chunk_size;
  uint8_t *ids;
  const double *pieces; /* NULL: the chunks */
  size_t piece_count;
  uint8_t *out;
  size_t out_length;
  double *stored;
  size_t written;
  const char *error;
  /* async only */
  napi_async_work work;
  napi_ref refs[6];
  napi_ref callback;
} batch;

static const char *run_batch_in(lane *e, batch *b) {
  size_t chunks = b->chunk_size ? (b->data_length + b->chunk_size - 1) / b->chunk_size : 0;
  if (b->chunk_size && !name_all(e, b->data, b->data_length, b->chunk_size, b->ids)) return "hashing failed";
  if (!b->out) return NULL;
  size_t count = b->pieces ? b->piece_count : chunks, at = 0, overhead = e->cipher ? NONCE_BYTES + TAG_BYTES : 0;
  for (size_t i = 0; i < count; i++) {
    const uint8_t *id = b->ids + i * ID_BYTES;
    size_t offset = i * b->chunk_size, length = i + 1 < count ? b->chunk_size : b->data_length - offset;
    if (b->pieces) {
      if (!whole(b->pieces[i * PIECE_FIELDS]) || !whole(b->pieces[i * PIECE_FIELDS + 1])) return "a piece's offset or length is not a whole number";
      offset = (size_t)b->pieces[i * PIECE_FIELDS];
      length = (size_t)b->pieces[i * PIECE_FIELDS + 1];
    } else if (is_zero(id, ID_BYTES)) {
      b->stored[i * STORED_FIELDS] = b->stored[i * STORED_FIELDS + 1] = 0;
      continue;
    }
    if (offset + length > b->data_length) return "a piece lies beyond the data";
    if (at + length + overhead > b->out_length) return "output buffer too small";
    int compressed;
    size_t written = encode_blob(e, b->data + offset, length, id, b->out + at, &compressed);
    if (written == 0 && e->cipher) return "sealing failed";
    b->stored[i * STORED_FIELDS] = (double)written;
    b->stored[i * STORED_FIELDS + 1] = compressed;
    at += written;
  }
  b->written = at;
  return NULL;
}

static const char *run_batch(batch *b) {
  size_t index;
  lane *taken = take_lane(b->e, &index);
  const char *error = run_batch_in(taken, b);
  give_lane(b->e, index);
  return error;
}

static void execute_batch(napi_env env, void *data) {
  (void)env;
  batch *b = data;
  b->error = run_batch(b);
}

static void complete_batch(napi_env env, napi_status status, void *data) {
  batch *b = data;
  napi_value callback, global, argv[2];
  for (size_t i = 0; i < sizeof(b->refs) / sizeof(b->refs[0]); i++)
    if (b->refs[i]) napi_delete_reference(env, b->refs[i]);
  if (napi_get_reference_value(env, b->callback, &callback) == napi_ok && napi_get_global(env, &global) == napi_ok) {
    napi_value message;
    if (status != napi_ok) b->error = "cancelled";
    if (b->error && napi_create_string_utf8(env, b->error, NAPI_AUTO_LENGTH, &message) == napi_ok) {
      napi_create_range_error(env, NULL, message, &argv[0]);
    } else {
      napi_get_null(env, &argv[0]);
    }
    napi_create_double(env, (double)b->written, &argv[1]);
    napi_call_function(env, global, callback, 2, argv, NULL);
  }
  napi_delete_reference(env, b->callback);
  napi_delete_async_work(env, b->work);
  free(b);
}

/* A typed array argument of type `want` (2), or null (1; data NULL); 0 if neither. */
static int get_optional(napi_env env, napi_value value, napi_typedarray_type want, void **data, size_t *count) {
  napi_valuetype type;
  *data = NULL;
  *count = 0;
  if (napi_typeof(env, value, &type) != napi_ok) return 0;
  if (type == napi_null) return 1;
  return get_bytes(env, value, want, data, count) ? 2 : 0;
}

#define USAGE \
  "encodeBatch(encoder, data: Uint8Array, chunkSize: number, ids: Uint8Array, pieces: Float64Array | null, " \
  "out: Uint8Array | null, stored: Float64Array | null, done?: (error, written) => void)"

napi_value encode_batch(napi_env env, napi_callback_info info) {
  size_t argc = 8, ids_length, field_count, stored_count;
  napi_value argv[8], result;
  napi_valuetype done_type = napi_undefined;
  batch b = {0};
  uint32_t chunk_size;
  int pieces, out, stored;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 7 || !(b.e = get_encoder(env, argv[0])) || !get_bytes(env, argv[1], napi_uint8_array, (void **)&b.data, &b.data_length) ||
      napi_get_value_uint32(env, argv[2], &chunk_size) != napi_ok || !get_bytes(env, argv[3], napi_uint8_array, (void **)&b.ids, &ids_length) ||
      !(pieces = get_optional(env, argv[4], napi_float64_array, (void **)&b.pieces, &field_count)) || field_count % PIECE_FIELDS != 0 ||
      !(out = get_optional(env, argv[5], napi_uint8_array, (void **)&b.out, &b.out_length)) ||
      !(stored = get_optional(env, argv[6], napi_float64_array, (void **)&b.stored, &stored_count)) ||
      (argc > 7 && (napi_typeof(env, argv[7], &done_type) != napi_ok || (done_type != napi_function && done_type != napi_undefined))))
    FAIL(USAGE);
  /* Either chunks to name (and maybe encode) or pieces to encode. */
  if ((chunk_size > 0) == (pieces == 2) || (pieces == 2 && out != 2)) FAIL(USAGE ": chunkSize > 0 and no pieces, or pieces and out");
  b.chunk_size = chunk_size;
  b.piece_count = field_count / PIECE_FIELDS;
  size_t blobs = pieces == 2 ? b.piece_count : (b.data_length + chunk_size - 1) / chunk_size;
  static const uint8_t nothing[1];
  if (pieces == 2 && !b.pieces) b.pieces = (const double *)nothing; /* no pieces at all */
  if (out == 2 && !b.out) b.out = (uint8_t *)nothing;               /* room for nothing */
  if (ids_length < blobs * ID_BYTES) FAIL("encodeBatch: ids has room for fewer ids than there are chunks or pieces");
  if (out == 2 && stored_count < blobs * STORED_FIELDS) FAIL("encodeBatch: stored has room for fewer entries than there are blobs");
  if (done_type != napi_function) {
    const char *error = run_batch(&b);
    if (error) {
      napi_throw_range_error(env, NULL, error);
      return NULL;
    }
    CHECK(napi_create_double(env, (double)b.written, &result));
    return result;
  }
  batch *job = malloc(sizeof(batch));
  if (!job) FAIL("encodeBatch: out of memory");
  *job = b;
  /* The encoder and the arrays stay alive until the batch is done; the caller leaves the arrays
   * alone until then. */
  int queued = 1;
  for (size_t i = 0; i < sizeof(job->refs) / sizeof(job->refs[0]); i++) {
    napi_valuetype type;
    job->refs[i] = NULL;
    if (napi_typeof(env, argv[i], &type) == napi_ok && (type == napi_object || type == napi_external))
      queued &= napi_create_reference(env, argv[i], 1, &job->refs[i]) == napi_ok;
  }
  napi_value name;
  queued = queued && napi_create_reference(env, argv[7], 1, &job->callback) == napi_ok &&
           napi_create_string_utf8(env, "tessera-encode", NAPI_AUTO_LENGTH, &name) == napi_ok &&
           napi_create_async_work(env, NULL, name, execute_batch, complete_batch, job, &job->work) == napi_ok &&
           napi_queue_async_work(env, job->work) == napi_ok;
  if (!queued) FAIL("encodeBatch: cannot queue the batch"); /* (its few bytes are lost) */
  CHECK(napi_get_undefined(env, &result));
  return result;
}
