/* The backup's blob naming and encoding (src/backup/blob-codec.ts describes the stored form), a
 * batch per call on a codec thread: each chunk named (HMAC-SHA256 under the naming key, or
 * SHA-256 when unencrypted; an all-zero chunk gets the all-zero id), and each blob zstd-compressed
 * straight into its place in the caller's output buffer and sealed there in place (AES-256-GCM,
 * a random nonce in front, the tag behind). Node's crypto set a cipher up per blob and gave each
 * sealed blob a fresh buffer (a page fault per 4 KiB) that was then copied into the output; here
 * one OpenSSL context keeps the key schedule, the HMAC key's pads are hashed once, and nothing is
 * copied but a blob stored as it is in an unencrypted repository.
 *   encoder(encKey: Uint8Array | null, macKey: Uint8Array | null, bindIds: boolean, level: number): object
 *       encKey: 32 bytes to seal under (null: blobs stored unsealed); macKey: the HMAC key chunks
 *       are named under (null: SHA-256); bindIds: each seal authenticates the blob's id as
 *       additional data; level: zstd's compression level
 *   nameChunks(encoder, data, chunkSize, ids): the id of each chunkSize piece of data (the last
 *       may be shorter) into ids, back to back
 *   encodeBlobs(encoder, data, pieces, ids, out, stored): number
 *       pieces: Float64Array of (offset in data, length) per blob; ids: their ids back to back.
 *       The stored forms go back to back into out (room for each plaintext + 28 bytes); stored
 *       gets (length, compressed 1/0) per blob; returns the bytes written. A blob is kept
 *       compressed only when that saves at least 1/32 of it.
 * An encoder is used by one thread at a time (each codec thread has its own). */
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "args.h"
#include "encode.h"

#define KEY_BYTES 32
#define ID_BYTES 32
#define NONCE_BYTES 12
#define TAG_BYTES 16
#define SHA256_BLOCK 64
#define PIECE_FIELDS 2
#define STORED_FIELDS 2
/* Nonces are cut from random bytes drawn this many at a time. */
#define NONCE_POOL (4096 - 4096 % NONCE_BYTES)

typedef struct {
  EVP_CIPHER_CTX *cipher; /* NULL: blobs are stored unsealed */
  int bind_ids;
  EVP_MD_CTX *inner, *outer; /* HMAC: SHA-256 with the key's inner and outer pad hashed; NULL: plain SHA-256 */
  EVP_MD_CTX *digest;        /* the working copy */
  ZSTD_CCtx *zstd;
  int level;
  uint8_t nonces[NONCE_POOL];
  size_t nonces_used;
} encoder;

static const napi_type_tag ENCODER_TAG = {0x7465737365726162ULL, 0x656e636f64657231ULL};

static void free_encoder(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  encoder *e = data;
  EVP_CIPHER_CTX_free(e->cipher);
  EVP_MD_CTX_free(e->inner);
  EVP_MD_CTX_free(e->outer);
  EVP_MD_CTX_free(e->digest);
  ZSTD_freeCCtx(e->zstd);
  free(e);
}

/* HMAC (RFC 2104) with the 32-byte key's padded blocks hashed once: a chunk's id is then
 * SHA-256(outer || SHA-256(inner || chunk)) from copies of the two states. */
static int set_mac_key(encoder *e, const uint8_t *key) {
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

static encoder *new_encoder(const uint8_t *enc_key, const uint8_t *mac_key, int bind_ids, int level) {
  encoder *e = calloc(1, sizeof(encoder));
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
    free_encoder(NULL, e, NULL);
    return NULL;
  }
  return e;
}

/* A 32-byte key argument, or NULL for null; 0 if it is neither. */
static int get_key(napi_env env, napi_value value, uint8_t **key) {
  napi_valuetype type;
  size_t length;
  if (napi_typeof(env, value, &type) != napi_ok) return 0;
  if (type == napi_null) {
    *key = NULL;
    return 1;
  }
  return get_bytes(env, value, napi_uint8_array, (void **)key, &length) && length == KEY_BYTES;
}

napi_value create_encoder(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], result;
  uint8_t *enc_key, *mac_key;
  bool bind_ids;
  int32_t level;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 4 || !get_key(env, argv[0], &enc_key) || !get_key(env, argv[1], &mac_key) ||
      napi_get_value_bool(env, argv[2], &bind_ids) != napi_ok || napi_get_value_int32(env, argv[3], &level) != napi_ok)
    FAIL("encoder(encKey: 32-byte Uint8Array | null, macKey: 32-byte Uint8Array | null, bindIds: boolean, level: number)");
  encoder *e = new_encoder(enc_key, mac_key, bind_ids, level);
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
static int name_chunk(encoder *e, const uint8_t *chunk, size_t length, uint8_t *id) {
  unsigned int ignored;
  if (!e->inner) return EVP_Digest(chunk, length, id, &ignored, EVP_sha256(), NULL) == 1;
  uint8_t inner_hash[ID_BYTES];
  return EVP_MD_CTX_copy_ex(e->digest, e->inner) == 1 && EVP_DigestUpdate(e->digest, chunk, length) == 1 &&
         EVP_DigestFinal_ex(e->digest, inner_hash, &ignored) == 1 && EVP_MD_CTX_copy_ex(e->digest, e->outer) == 1 &&
         EVP_DigestUpdate(e->digest, inner_hash, ID_BYTES) == 1 && EVP_DigestFinal_ex(e->digest, id, &ignored) == 1;
}

napi_value name_chunks(napi_env env, napi_callback_info info) {
  size_t argc = 4, data_length, ids_length;
  napi_value argv[4];
  uint8_t *data, *ids;
  uint32_t chunk_size;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  encoder *e = argc == 4 ? get_encoder(env, argv[0]) : NULL;
  if (!e || !get_bytes(env, argv[1], napi_uint8_array, (void **)&data, &data_length) ||
      napi_get_value_uint32(env, argv[2], &chunk_size) != napi_ok || chunk_size == 0 ||
      !get_bytes(env, argv[3], napi_uint8_array, (void **)&ids, &ids_length))
    FAIL("nameChunks(encoder, data: Uint8Array, chunkSize: number, ids: Uint8Array)");
  size_t count = (data_length + chunk_size - 1) / chunk_size;
  if (ids_length < count * ID_BYTES) FAIL("nameChunks: ids has room for fewer ids than there are chunks");
  for (size_t i = 0; i < count; i++) {
    const uint8_t *chunk = data + i * chunk_size;
    size_t length = i + 1 < count ? chunk_size : data_length - i * chunk_size;
    uint8_t *id = ids + i * ID_BYTES;
    if (is_zero(chunk, length))
      memset(id, 0, ID_BYTES);
    else if (!name_chunk(e, chunk, length, id))
      FAIL("nameChunks: hashing failed");
  }
  return NULL;
}

static const uint8_t *next_nonce(encoder *e) {
  if (e->nonces_used == NONCE_POOL) {
    if (RAND_bytes(e->nonces, NONCE_POOL) != 1) return NULL;
    e->nonces_used = 0;
  }
  e->nonces_used += NONCE_BYTES;
  return e->nonces + e->nonces_used - NONCE_BYTES;
}

/* Seals `payload` (which may be out + NONCE_BYTES itself) into `out`: nonce, ciphertext, tag. */
static int seal(encoder *e, const uint8_t *payload, size_t length, const uint8_t *id, uint8_t *out) {
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
static size_t encode_blob(encoder *e, const uint8_t *plain, size_t length, const uint8_t *id, uint8_t *out, int *compressed) {
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

napi_value encode_blobs(napi_env env, napi_callback_info info) {
  size_t argc = 6, data_length, field_count, ids_length, out_length, stored_count;
  napi_value argv[6], result;
  uint8_t *data, *ids, *out;
  double *pieces, *stored;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  encoder *e = argc == 6 ? get_encoder(env, argv[0]) : NULL;
  if (!e || !get_bytes(env, argv[1], napi_uint8_array, (void **)&data, &data_length) ||
      !get_bytes(env, argv[2], napi_float64_array, (void **)&pieces, &field_count) || field_count % PIECE_FIELDS != 0 ||
      !get_bytes(env, argv[3], napi_uint8_array, (void **)&ids, &ids_length) ||
      !get_bytes(env, argv[4], napi_uint8_array, (void **)&out, &out_length) ||
      !get_bytes(env, argv[5], napi_float64_array, (void **)&stored, &stored_count))
    FAIL("encodeBlobs(encoder, data: Uint8Array, pieces: Float64Array, ids: Uint8Array, out: Uint8Array, stored: Float64Array)");
  size_t count = field_count / PIECE_FIELDS, at = 0, overhead = e->cipher ? NONCE_BYTES + TAG_BYTES : 0;
  if (ids_length < count * ID_BYTES || stored_count < count * STORED_FIELDS) FAIL("encodeBlobs: fewer ids or stored entries than pieces");
  for (size_t i = 0; i < count; i++) {
    if (!whole(pieces[i * PIECE_FIELDS]) || !whole(pieces[i * PIECE_FIELDS + 1])) FAIL("encodeBlobs: a piece's offset or length is not a whole number");
    size_t offset = (size_t)pieces[i * PIECE_FIELDS], length = (size_t)pieces[i * PIECE_FIELDS + 1];
    if (offset + length > data_length) FAIL("encodeBlobs: a piece lies beyond the data");
    if (at + length + overhead > out_length) FAIL("encodeBlobs: output buffer too small");
    int compressed;
    size_t written = encode_blob(e, data + offset, length, ids + i * ID_BYTES, out + at, &compressed);
    if (written == 0 && e->cipher) FAIL("encodeBlobs: sealing failed");
    stored[i * STORED_FIELDS] = (double)written;
    stored[i * STORED_FIELDS + 1] = compressed;
    at += written;
  }
  CHECK(napi_create_double(env, (double)at, &result));
  return result;
}
