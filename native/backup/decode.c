/* The backup restore's blob decoding (src/backup/blob-codec.ts describes the stored form): a batch
 * of stored blobs opened (AES-256-GCM) and decompressed (zstd) in one call, each straight into its
 * place in the caller's output buffer. Node's crypto sets a cipher up per blob (6-9 us each, a
 * third of the AES time on 64-256 KiB blobs); here one OpenSSL context keeps the key schedule and
 * only the nonce changes per blob. OpenSSL is the one Node carries; zstd is built from the source
 * zstd-napi bundles (binding.gyp).
 *   decoder(key: Uint8Array | null, bindIds: boolean): object
 *       a decoder for blobs sealed under the 32-byte `key` (null: blobs stored unsealed);
 *       `bindIds`: each seal authenticates the blob's 32-byte id as additional data
 *   decodeBlobs(decoder, data, blobs, ids, out): null | { index, reason }
 *       blobs: Float64Array of (offset in data, stored length, plaintext length, compressed 1/0)
 *       per blob; ids: the blobs' ids back to back; the plaintexts go back to back into out.
 *       Stops at the first blob that fails: reason 'short' (too short to be sealed),
 *       'authentication' (the GCM tag does not match), 'decompression' (not a zstd frame that
 *       fits its plaintext length) or 'length' (not its plaintext length).
 * A decoder is used by one thread at a time (each codec thread has its own). */
#include <limits.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "args.h"
#include "decode.h"

#define ID_BYTES 32
#define NONCE_BYTES 12
#define TAG_BYTES 16
#define BLOB_FIELDS 4

typedef struct {
  EVP_CIPHER_CTX *cipher; /* NULL: blobs are stored unsealed */
  int bind_ids; /* seals authenticate the blob's id */
  ZSTD_DCtx *zstd;
  uint8_t *scratch; /* an opened blob waiting to be decompressed */
  size_t scratch_size;
} decoder;

static const napi_type_tag DECODER_TAG = {0x7465737365726162ULL, 0x6465636f64657231ULL};

static void free_decoder(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  decoder *d = data;
  EVP_CIPHER_CTX_free(d->cipher);
  ZSTD_freeDCtx(d->zstd);
  free(d->scratch);
  free(d);
}

static decoder *new_decoder(const uint8_t *key, int bind_ids) {
  decoder *d = calloc(1, sizeof(decoder));
  if (!d) return NULL;
  d->bind_ids = bind_ids;
  d->zstd = ZSTD_createDCtx();
  if (key) {
    d->cipher = EVP_CIPHER_CTX_new();
    if (d->cipher && EVP_DecryptInit_ex(d->cipher, EVP_aes_256_gcm(), NULL, key, NULL) != 1) {
      EVP_CIPHER_CTX_free(d->cipher);
      d->cipher = NULL;
    }
  }
  if (!d->zstd || (key && !d->cipher)) {
    free_decoder(NULL, d, NULL);
    return NULL;
  }
  return d;
}

napi_value create_decoder(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result;
  uint8_t *key;
  bool bind_ids;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 2 || !get_key(env, argv[0], &key) || napi_get_value_bool(env, argv[1], &bind_ids) != napi_ok)
    FAIL("decoder(key: 32-byte Uint8Array | null, bindIds: boolean)");
  decoder *d = new_decoder(key, bind_ids);
  if (!d) FAIL("decoder: out of memory or no AES-256-GCM");
  if (napi_create_external(env, d, free_decoder, NULL, &result) != napi_ok) {
    free_decoder(env, d, NULL);
    FAIL("decoder: cannot wrap it");
  }
  CHECK(napi_type_tag_object(env, result, &DECODER_TAG));
  return result;
}

static uint8_t *scratch_of(decoder *d, size_t size) {
  if (size <= d->scratch_size) return d->scratch;
  uint8_t *grown = realloc(d->scratch, size);
  if (!grown) return NULL;
  d->scratch = grown;
  d->scratch_size = size;
  return grown;
}

typedef enum { DECODED, TOO_SHORT, NOT_AUTHENTIC, NOT_DECOMPRESSED, WRONG_LENGTH, NO_MEMORY } decode_result;

static const char *const REASONS[] = {
    [TOO_SHORT] = "short", [NOT_AUTHENTIC] = "authentication", [NOT_DECOMPRESSED] = "decompression", [WRONG_LENGTH] = "length"};

/* Opens a sealed blob (at least NONCE_BYTES + TAG_BYTES long) into `plain` (room for its
 * ciphertext); the tag is checked before use. */
static decode_result open_sealed(decoder *d, const uint8_t *sealed, size_t length, const uint8_t *id, uint8_t *plain) {
  if (length - NONCE_BYTES - TAG_BYTES > INT_MAX) return WRONG_LENGTH;
  int cipher_length = (int)(length - NONCE_BYTES - TAG_BYTES), written, ignored;
  /* Only the nonce: the key schedule set up once stays. */
  if (EVP_DecryptInit_ex(d->cipher, NULL, NULL, NULL, sealed) != 1) return NOT_AUTHENTIC;
  if (id && EVP_DecryptUpdate(d->cipher, NULL, &ignored, id, ID_BYTES) != 1) return NOT_AUTHENTIC;
  if (EVP_DecryptUpdate(d->cipher, plain, &written, sealed + NONCE_BYTES, cipher_length) != 1) return NOT_AUTHENTIC;
  if (EVP_CIPHER_CTX_ctrl(d->cipher, EVP_CTRL_GCM_SET_TAG, TAG_BYTES, (void *)(sealed + length - TAG_BYTES)) != 1) return NOT_AUTHENTIC;
  return EVP_DecryptFinal_ex(d->cipher, plain + written, &ignored) == 1 ? DECODED : NOT_AUTHENTIC;
}

/* One blob into `out` (exactly its plaintext length). `id`: what its seal binds, if anything. */
static decode_result decode_blob(decoder *d, const uint8_t *stored, size_t length, const uint8_t *id, int compressed, uint8_t *out, size_t raw_length) {
  const uint8_t *payload = stored;
  size_t payload_length = length;
  if (d->cipher) {
    if (length < NONCE_BYTES + TAG_BYTES) return TOO_SHORT;
    payload_length = length - NONCE_BYTES - TAG_BYTES;
    /* A plaintext stored uncompressed opens straight into `out`; else into the scratch buffer
     * (also an empty one: `out` may then be no memory at all). */
    uint8_t *plain = !compressed && payload_length == raw_length && raw_length > 0 ? out : scratch_of(d, payload_length + 1);
    if (!plain) return NO_MEMORY;
    decode_result opened = open_sealed(d, stored, length, id, plain);
    if (opened != DECODED) return opened;
    payload = plain;
  }
  if (compressed) {
    size_t produced = ZSTD_decompressDCtx(d->zstd, out, raw_length, payload, payload_length);
    if (ZSTD_isError(produced)) return NOT_DECOMPRESSED;
    return produced == raw_length ? DECODED : WRONG_LENGTH;
  }
  if (payload_length != raw_length) return WRONG_LENGTH;
  if (payload != out && raw_length > 0) memcpy(out, payload, raw_length);
  return DECODED;
}

static napi_value failure(napi_env env, size_t index, const char *reason) {
  napi_value result, index_value, reason_value;
  CHECK(napi_create_object(env, &result));
  CHECK(napi_create_uint32(env, (uint32_t)index, &index_value));
  CHECK(napi_create_string_utf8(env, reason, NAPI_AUTO_LENGTH, &reason_value));
  CHECK(napi_set_named_property(env, result, "index", index_value));
  CHECK(napi_set_named_property(env, result, "reason", reason_value));
  return result;
}

napi_value decode_blobs(napi_env env, napi_callback_info info) {
  size_t argc = 5, data_length, field_count, ids_length, out_length;
  napi_value argv[5], result;
  void *raw_decoder;
  bool tagged;
  uint8_t *data, *ids, *out;
  double *fields;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 5 || napi_check_object_type_tag(env, argv[0], &DECODER_TAG, &tagged) != napi_ok || !tagged ||
      napi_get_value_external(env, argv[0], &raw_decoder) != napi_ok ||
      !get_bytes(env, argv[1], napi_uint8_array, (void **)&data, &data_length) ||
      !get_bytes(env, argv[2], napi_float64_array, (void **)&fields, &field_count) || field_count % BLOB_FIELDS != 0 ||
      !get_bytes(env, argv[3], napi_uint8_array, (void **)&ids, &ids_length) ||
      !get_bytes(env, argv[4], napi_uint8_array, (void **)&out, &out_length))
    FAIL("decodeBlobs(decoder, data: Uint8Array, blobs: Float64Array, ids: Uint8Array, out: Uint8Array)");
  decoder *d = raw_decoder;
  size_t count = field_count / BLOB_FIELDS, at = 0;
  if (d->bind_ids && ids_length < count * ID_BYTES) FAIL("decodeBlobs: fewer ids than blobs");
  for (size_t i = 0; i < count; i++) {
    const double *blob = fields + i * BLOB_FIELDS;
    if (!whole(blob[0]) || !whole(blob[1]) || !whole(blob[2])) FAIL("decodeBlobs: a blob's offset or length is not a whole number");
    size_t offset = (size_t)blob[0], length = (size_t)blob[1], raw_length = (size_t)blob[2];
    if (offset + length > data_length) FAIL("decodeBlobs: a blob lies beyond the data");
    if (at + raw_length > out_length) FAIL("decodeBlobs: output buffer too small");
    const uint8_t *bound = d->bind_ids ? ids + i * ID_BYTES : NULL;
    decode_result decoded = decode_blob(d, data + offset, length, bound, blob[3] != 0, out + at, raw_length);
    if (decoded == NO_MEMORY) FAIL("decodeBlobs: out of memory");
    if (decoded != DECODED) return failure(env, i, REASONS[decoded]);
    at += raw_length;
  }
  CHECK(napi_get_null(env, &result));
  return result;
}
