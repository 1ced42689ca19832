/* MD5 of a large body off the event loop: each update runs on libuv's thread pool, so hashing
 * (about 1.2 ms of CPU per MB, a third of a large PUT's gateway CPU) overlaps moving bytes, and
 * several bodies hash on several threads at once. OpenSSL's MD5 is the one Node itself carries.
 *   md5Start(): Buffer                      a fresh MD5 state
 *   md5Update(state, bytes, done): void     hashes `bytes` on the pool, then calls done(); the
 *                                           caller leaves both alone and sends nothing more until then
 *   md5Digest(state): Buffer                the 16-byte digest (the state is spent) */
#define OPENSSL_SUPPRESS_DEPRECATED /* MD5_* is deprecated in OpenSSL 3 in favour of EVP, which allocates */
#include <openssl/md5.h>
#include <stdlib.h>

#include "md5.h"
#include "napi_checks.h"

typedef struct {
  napi_async_work work;
  napi_ref state_ref, bytes_ref, done_ref;
  MD5_CTX *state;
  const uint8_t *bytes;
  size_t length;
} md5_job;

static int get_state(napi_env env, napi_value value, MD5_CTX **state) {
  void *data;
  size_t length;
  if (napi_get_buffer_info(env, value, &data, &length) != napi_ok || length != sizeof(MD5_CTX)) return 0;
  *state = data;
  return 1;
}

static napi_value md5_start(napi_env env, napi_callback_info info) {
  (void)info;
  void *data;
  napi_value result;
  CHECK(napi_create_buffer(env, sizeof(MD5_CTX), &data, &result));
  MD5_Init(data);
  return result;
}

static void run_update(napi_env env, void *data) {
  (void)env;
  md5_job *job = data;
  MD5_Update(job->state, job->bytes, job->length);
}

static void finish_update(napi_env env, napi_status status, void *data) {
  (void)status;
  md5_job *job = data;
  napi_value done, global;
  int have_done = napi_get_reference_value(env, job->done_ref, &done) == napi_ok && napi_get_global(env, &global) == napi_ok;
  napi_delete_reference(env, job->state_ref);
  napi_delete_reference(env, job->bytes_ref);
  napi_delete_reference(env, job->done_ref);
  napi_delete_async_work(env, job->work);
  free(job);
  if (have_done) napi_call_function(env, global, done, 0, NULL, NULL);
}

static napi_value md5_update(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], name;
  napi_typedarray_type type;
  napi_valuetype done_type;
  void *bytes;
  size_t length;
  MD5_CTX *state;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 3 || !get_state(env, argv[0], &state) ||
      napi_get_typedarray_info(env, argv[1], &type, &length, &bytes, NULL, NULL) != napi_ok || type != napi_uint8_array ||
      napi_typeof(env, argv[2], &done_type) != napi_ok || done_type != napi_function)
    FAIL("md5Update(state: Buffer from md5Start, bytes: Uint8Array, done: function)");
  md5_job *job = calloc(1, sizeof(md5_job));
  if (!job) FAIL("md5Update: out of memory");
  job->state = state;
  job->bytes = bytes;
  job->length = length;
  CHECK(napi_create_reference(env, argv[0], 1, &job->state_ref));
  CHECK(napi_create_reference(env, argv[1], 1, &job->bytes_ref));
  CHECK(napi_create_reference(env, argv[2], 1, &job->done_ref));
  CHECK(napi_create_string_utf8(env, "tessera:md5", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_async_work(env, NULL, name, run_update, finish_update, job, &job->work));
  CHECK(napi_queue_async_work(env, job->work));
  return NULL;
}

static napi_value md5_digest(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  MD5_CTX *state;
  void *digest;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 1 || !get_state(env, argv[0], &state)) FAIL("md5Digest(state: Buffer from md5Start)");
  CHECK(napi_create_buffer(env, MD5_DIGEST_LENGTH, &digest, &result));
  MD5_Final(digest, state);
  return result;
}

napi_value md5_define(napi_env env, napi_value exports) {
  const napi_property_descriptor properties[] = {
      {"md5Start", NULL, md5_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"md5Update", NULL, md5_update, NULL, NULL, NULL, napi_enumerable, NULL},
      {"md5Digest", NULL, md5_digest, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof(properties) / sizeof(properties[0]), properties));
  return exports;
}
