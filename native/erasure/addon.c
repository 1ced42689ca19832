/* N-API binding of the erasure kernels. JavaScript passes its own Uint8Arrays (Buffers); the
 * kernels read and write their memory directly, no copies.
 *   kernels(): string[]                         kernels this CPU runs, best first
 *   prepare(coefficients, rows, cols): Buffer   tables for a row-major coefficient matrix
 *   multiply(kernel, prepared, inputs, outputs) outputs[r] = sum over c of coef[r][c] * inputs[c]
 * and one helper for the storage node's direct (O_DIRECT) file writes, whose memory must be aligned:
 *   alignmentOffset(bytes, alignment): number   bytes to skip so a view of `bytes` starts aligned
 * and one for the storage node's block checksums, on the caller's memory (xxhash-wasm copied each
 * block into its own memory first, and hashed at half the speed):
 *   xxh64(bytes): bigint                        xxHash64 of `bytes`, seed 0 (xxHash's own code, from zstd)
 * and one for the gateway's heap, whose request bodies come in freshly malloc'd 64 KiB buffers:
 *   keepHeapTop(bytes): boolean                 glibc keeps this much freed memory at the heap's top
 * and the gateway's body MD5 on the thread pool (md5.c), and the shared memory of the bulk channel's
 * rings between processes on one host (shm.c). */
#include <stdio.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#define XXH_INLINE_ALL
#include "xxhash.h"

#include "kernels.h"
#include "md5.h"
#include "shm.h"
#include "napi_checks.h"

#define MAX_KERNELS 8

static rs_kernel available[MAX_KERNELS];
static size_t available_count;

static int get_bytes(napi_env env, napi_value value, uint8_t **data, size_t *length) {
  napi_typedarray_type type;
  void *pointer;
  if (napi_get_typedarray_info(env, value, &type, length, &pointer, NULL, NULL) != napi_ok || type != napi_uint8_array)
    return 0;
  *data = pointer;
  return 1;
}

/* Fills pointers[0..count) from a JavaScript array of Uint8Arrays that must all be `length` long. */
static int get_shards(napi_env env, napi_value array, uint8_t **pointers, uint32_t count, size_t *length) {
  uint32_t actual;
  if (napi_get_array_length(env, array, &actual) != napi_ok || actual != count) return 0;
  for (uint32_t i = 0; i < count; i++) {
    napi_value element;
    size_t element_length;
    if (napi_get_element(env, array, i, &element) != napi_ok) return 0;
    if (!get_bytes(env, element, &pointers[i], &element_length)) return 0;
    if (*length == SIZE_MAX) *length = element_length;
    if (element_length != *length) return 0;
  }
  return 1;
}

static napi_value kernels(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  CHECK(napi_create_array_with_length(env, available_count, &result));
  for (size_t i = 0; i < available_count; i++) {
    napi_value name;
    CHECK(napi_create_string_utf8(env, available[i].name, NAPI_AUTO_LENGTH, &name));
    CHECK(napi_set_element(env, result, (uint32_t)i, name));
  }
  return result;
}

static napi_value prepare(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  uint8_t *coefficients;
  size_t length;
  uint32_t rows, cols;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 3 || !get_bytes(env, argv[0], &coefficients, &length) ||
      napi_get_value_uint32(env, argv[1], &rows) != napi_ok || napi_get_value_uint32(env, argv[2], &cols) != napi_ok)
    FAIL("prepare(coefficients: Uint8Array, rows, cols)");
  if (rows == 0 || cols == 0 || rows > RS_MAX_ROWS || cols > RS_MAX_COLS || length != (size_t)rows * cols)
    FAIL("prepare: matrix shape out of range or not rows * cols coefficients");
  void *memory;
  napi_value result;
  CHECK(napi_create_buffer(env, rs_prepared_size(rows, cols), &memory, &result));
  rs_prepare(memory, coefficients, rows, cols);
  return result;
}

static napi_value multiply(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  uint32_t kernel;
  uint8_t *prepared_bytes;
  size_t prepared_length;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 4 || napi_get_value_uint32(env, argv[0], &kernel) != napi_ok || kernel >= available_count ||
      !get_bytes(env, argv[1], &prepared_bytes, &prepared_length) || prepared_length < sizeof(rs_prepared))
    FAIL("multiply(kernel, prepared, inputs, outputs)");
  const rs_prepared *prepared = (const rs_prepared *)prepared_bytes;
  if (prepared->rows == 0 || prepared->cols == 0 || prepared->rows > RS_MAX_ROWS || prepared->cols > RS_MAX_COLS ||
      prepared_length != rs_prepared_size(prepared->rows, prepared->cols))
    FAIL("multiply: not a prepared matrix");
  uint8_t *in[RS_MAX_COLS], *out[RS_MAX_ROWS];
  size_t length = SIZE_MAX;
  if (!get_shards(env, argv[2], in, prepared->cols, &length) || !get_shards(env, argv[3], out, prepared->rows, &length))
    FAIL("multiply: inputs and outputs must be arrays of equally long Uint8Arrays matching the matrix");
  available[kernel].multiply(prepared, (const uint8_t *const *)in, out, length);
  return NULL;
}

static napi_value alignment_offset(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  uint8_t *data;
  size_t length;
  uint32_t alignment;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 2 || !get_bytes(env, argv[0], &data, &length) || napi_get_value_uint32(env, argv[1], &alignment) != napi_ok ||
      alignment == 0 || (alignment & (alignment - 1)) != 0)
    FAIL("alignmentOffset(bytes: Uint8Array, alignment: power of two)");
  napi_value result;
  CHECK(napi_create_uint32(env, (uint32_t)((alignment - (uintptr_t)data % alignment) % alignment), &result));
  return result;
}

static napi_value xxh64(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  uint8_t *data;
  size_t length;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 1 || !get_bytes(env, argv[0], &data, &length)) FAIL("xxh64(bytes: Uint8Array)");
  napi_value result;
  CHECK(napi_create_bigint_uint64(env, XXH64(data, length, 0), &result));
  return result;
}

/* M_TOP_PAD: glibc gives memory freed at the heap's top back to the kernel beyond this much
 * (128 KiB by default), and takes it back a page fault at a time when the heap grows again. */
static napi_value keep_heap_top(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  uint32_t bytes;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 1 || napi_get_value_uint32(env, argv[0], &bytes) != napi_ok || bytes > INT32_MAX) FAIL("keepHeapTop(bytes: number)");
  bool kept = false;
#ifdef __GLIBC__
  kept = mallopt(M_TOP_PAD, (int)bytes) == 1;
#endif
  napi_value result;
  CHECK(napi_get_boolean(env, kept, &result));
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  available_count = rs_available_kernels(available, MAX_KERNELS);
  const napi_property_descriptor properties[] = {
      {"kernels", NULL, kernels, NULL, NULL, NULL, napi_enumerable, NULL},
      {"prepare", NULL, prepare, NULL, NULL, NULL, napi_enumerable, NULL},
      {"multiply", NULL, multiply, NULL, NULL, NULL, napi_enumerable, NULL},
      {"alignmentOffset", NULL, alignment_offset, NULL, NULL, NULL, napi_enumerable, NULL},
      {"xxh64", NULL, xxh64, NULL, NULL, NULL, napi_enumerable, NULL},
      {"keepHeapTop", NULL, keep_heap_top, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof(properties) / sizeof(properties[0]), properties));
  if (!md5_define(env, exports)) return NULL;
  return shm_define(env, exports);
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
