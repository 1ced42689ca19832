/* Argument checks shared by the backup addon's batch calls (encode.c, decode.c). */
#ifndef TESSERA_BACKUP_ARGS_H
#define TESSERA_BACKUP_ARGS_H

#include <stdint.h>

#include "../erasure/napi_checks.h"

/* Whether `value` is a typed array of type `want`; its data and element count. */
static inline int get_bytes(napi_env env, napi_value value, napi_typedarray_type want, void **data, size_t *count) {
  napi_typedarray_type type;
  return napi_get_typedarray_info(env, value, &type, count, data, NULL, NULL) == napi_ok && type == want;
}

/* AES-256 and HMAC-SHA256 keys. */
#define KEY_BYTES 32

/* A 32-byte key argument (Uint8Array), or NULL for null; 0 if it is neither. */
static inline int get_key(napi_env env, napi_value value, uint8_t **key) {
  napi_valuetype type;
  size_t length;
  if (napi_typeof(env, value, &type) != napi_ok) return 0;
  if (type == napi_null) {
    *key = NULL;
    return 1;
  }
  return get_bytes(env, value, napi_uint8_array, (void **)key, &length) && length == KEY_BYTES;
}

/* Whether a Float64Array field is a whole number usable as a size or offset. */
static inline int whole(double value) {
  return value >= 0 && value <= (double)SIZE_MAX / 2 && value == (double)(size_t)value;
}

#endif
