/* MD5 of large bodies off the event loop, on one hasher thread that hashes the bodies being
 * received together (md5_hasher.c): MD5 was half of a large PUT's gateway CPU on this project's
 * 2-core machines; a lone body costs 1.1 ms of CPU per MB, 4 hashed together 0.4 each.
 *   md5Start(): Buffer                      a fresh MD5 state
 *   md5Update(state, bytes, done): void     hashes `bytes` on the hasher's thread, then calls
 *                                           done(); the caller leaves `bytes` alone until then.
 *                                           Updates of one state may be queued; they are hashed
 *                                           and their done called in order.
 *   md5Digest(state): Buffer                the 16-byte digest, once every update is done (the
 *                                           state is spent)
 *   md5Modes(): string[]                    the modes md5SetMode takes on this CPU
 *   md5SetMode(mode): void                  'auto' (the default), 'interleaved' or 'simd'
 *                                           (md5_hasher.h), for tests and benchmarks
 *   md5CompanyWaits(): number               how often a lone update has waited for another
 *                                           body's (md5_hasher.h), for tests */
#include "md5.h"

#include <stdlib.h>
#include <string.h>

#include "md5_hasher.h"
#include "napi_checks.h"

/* The state Buffer's contents. */
typedef struct {
  md5_stream stream;
  uint32_t updates_pending; /* JavaScript thread only */
} md5_state;

/* An update in flight and the JavaScript values it keeps alive. */
typedef struct {
  md5_update update;
  md5_state *state;
  napi_ref state_ref, bytes_ref, done_ref;
} pending_update;

/* Per N-API environment (the main thread and each worker thread that loads the addon). */
typedef struct {
  md5_hasher *hasher; /* started by the first update */
  napi_threadsafe_function finished;
  size_t updates_pending; /* while any, `finished` keeps the event loop alive */
  md5_mode mode;
} md5_addon;

static const char *const MODE_NAMES[] = {[MD5_AUTO] = "auto", [MD5_INTERLEAVED] = "interleaved", [MD5_SIMD] = "simd"};

static int get_state(napi_env env, napi_value value, md5_state **state) {
  void *data;
  size_t length;
  if (napi_get_buffer_info(env, value, &data, &length) != napi_ok || length != sizeof(md5_state)) return 0;
  *state = data;
  return 1;
}

static md5_addon *get_addon(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  void *data;
  if (napi_get_cb_info(env, info, argc, argv, NULL, &data) != napi_ok) return NULL;
  return data;
}

static napi_value js_start(napi_env env, napi_callback_info info) {
  (void)info;
  void *data;
  napi_value result;
  CHECK(napi_create_buffer(env, sizeof(md5_state), &data, &result));
  md5_state *state = data;
  md5_stream_init(&state->stream);
  state->updates_pending = 0;
  return result;
}

/* On the JavaScript thread, for each update the hasher reports (or with no env at teardown). */
static void call_done(napi_env env, napi_value unused, void *context, void *data) {
  (void)unused;
  md5_addon *addon = context;
  pending_update *pending = data;
  napi_value done, global;
  const int have_done = env && napi_get_reference_value(env, pending->done_ref, &done) == napi_ok &&
                        napi_get_global(env, &global) == napi_ok;
  if (env) {
    pending->state->updates_pending--;
    napi_delete_reference(env, pending->state_ref);
    napi_delete_reference(env, pending->bytes_ref);
    napi_delete_reference(env, pending->done_ref);
    if (--addon->updates_pending == 0) napi_unref_threadsafe_function(env, addon->finished);
  }
  free(pending);
  if (have_done) napi_call_function(env, global, done, 0, NULL, NULL);
}

/* On the hasher's thread. */
static void report_update(md5_update *update, void *context) {
  md5_addon *addon = context;
  napi_call_threadsafe_function(addon->finished, (pending_update *)update, napi_tsfn_nonblocking);
}

/* Runs before Node closes `finished` (cleanup hooks run newest first): no report after this. */
static void stop_hasher(void *data) {
  md5_addon *addon = data;
  md5_hasher_destroy(addon->hasher);
  addon->hasher = NULL;
}

static int start_hasher(napi_env env, md5_addon *addon) {
  napi_value name;
  if (napi_create_string_utf8(env, "tessera:md5", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL, NULL, addon, call_done, &addon->finished) != napi_ok)
    return 0;
  napi_unref_threadsafe_function(env, addon->finished);
  addon->hasher = md5_hasher_create(report_update, addon);
  if (!addon->hasher) {
    napi_release_threadsafe_function(addon->finished, napi_tsfn_abort);
    return 0;
  }
  md5_hasher_set_mode(addon->hasher, addon->mode);
  return napi_add_env_cleanup_hook(env, stop_hasher, addon) == napi_ok;
}

static napi_value js_update(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_typedarray_type type;
  napi_valuetype done_type;
  void *bytes;
  size_t length;
  md5_state *state;
  md5_addon *addon = get_addon(env, info, &argc, argv);
  if (!addon || argc != 3 || !get_state(env, argv[0], &state) ||
      napi_get_typedarray_info(env, argv[1], &type, &length, &bytes, NULL, NULL) != napi_ok || type != napi_uint8_array ||
      napi_typeof(env, argv[2], &done_type) != napi_ok || done_type != napi_function)
    FAIL("md5Update(state: Buffer from md5Start, bytes: Uint8Array, done: function)");
  if (!addon->hasher && !start_hasher(env, addon)) FAIL("md5Update: cannot start the MD5 thread");
  pending_update *pending = calloc(1, sizeof *pending);
  if (!pending) FAIL("md5Update: out of memory");
  pending->update.stream = &state->stream;
  pending->update.bytes = bytes;
  pending->update.length = length;
  pending->state = state;
  CHECK(napi_create_reference(env, argv[0], 1, &pending->state_ref));
  CHECK(napi_create_reference(env, argv[1], 1, &pending->bytes_ref));
  CHECK(napi_create_reference(env, argv[2], 1, &pending->done_ref));
  state->updates_pending++;
  if (addon->updates_pending++ == 0) CHECK(napi_ref_threadsafe_function(env, addon->finished));
  md5_hasher_submit(addon->hasher, &pending->update);
  return NULL;
}

static napi_value js_digest(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  md5_state *state;
  void *digest;
  md5_addon *addon = get_addon(env, info, &argc, argv);
  if (!addon || argc != 1 || !get_state(env, argv[0], &state)) FAIL("md5Digest(state: Buffer from md5Start)");
  if (state->updates_pending > 0) FAIL("md5Digest: an update of this state is not done yet");
  CHECK(napi_create_buffer(env, MD5_DIGEST_BYTES, &digest, &result));
  if (addon->hasher) md5_hasher_forget(addon->hasher, &state->stream);
  md5_stream_digest(&state->stream, digest);
  return result;
}

static size_t mode_count(void) { return md5_simd_supported() ? 3 : 2; }

static napi_value js_modes(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result, name;
  CHECK(napi_create_array_with_length(env, mode_count(), &result));
  for (size_t i = 0; i < mode_count(); i++) {
    CHECK(napi_create_string_utf8(env, MODE_NAMES[i], NAPI_AUTO_LENGTH, &name));
    CHECK(napi_set_element(env, result, (uint32_t)i, name));
  }
  return result;
}

static napi_value js_set_mode(napi_env env, napi_callback_info info) {
  size_t argc = 1, length;
  napi_value argv[1];
  char name[16];
  md5_addon *addon = get_addon(env, info, &argc, argv);
  if (!addon || argc != 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &length) != napi_ok)
    FAIL("md5SetMode(mode: string)");
  size_t mode = 0;
  while (mode < mode_count() && strcmp(name, MODE_NAMES[mode]) != 0) mode++;
  if (mode == mode_count()) FAIL("md5SetMode: not one of md5Modes()");
  addon->mode = (md5_mode)mode;
  if (addon->hasher) md5_hasher_set_mode(addon->hasher, addon->mode);
  return NULL;
}

static napi_value js_company_waits(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  md5_addon *addon = get_addon(env, info, &argc, NULL);
  napi_value result;
  if (!addon) FAIL("md5CompanyWaits()");
  CHECK(napi_create_double(env, addon->hasher ? (double)md5_hasher_company_waits(addon->hasher) : 0, &result));
  return result;
}

static void free_addon(void *data) { free(data); }

napi_value md5_define(napi_env env, napi_value exports) {
  md5_addon *addon = calloc(1, sizeof *addon);
  if (!addon) FAIL("md5: out of memory");
  addon->mode = MD5_AUTO;
  CHECK(napi_add_env_cleanup_hook(env, free_addon, addon));
  const napi_property_descriptor properties[] = {
      {"md5Start", NULL, js_start, NULL, NULL, NULL, napi_enumerable, addon},
      {"md5Update", NULL, js_update, NULL, NULL, NULL, napi_enumerable, addon},
      {"md5Digest", NULL, js_digest, NULL, NULL, NULL, napi_enumerable, addon},
      {"md5Modes", NULL, js_modes, NULL, NULL, NULL, napi_enumerable, addon},
      {"md5SetMode", NULL, js_set_mode, NULL, NULL, NULL, napi_enumerable, addon},
      {"md5CompanyWaits", NULL, js_company_waits, NULL, NULL, NULL, napi_enumerable, addon},
  };
  CHECK(napi_define_properties(env, exports, sizeof(properties) / sizeof(properties[0]), properties));
  return exports;
}
