/* The addon's N-API error handling: CHECK a call (a failure throws and returns), FAIL with a message. */
#ifndef TESSERA_NAPI_CHECKS_H
#define TESSERA_NAPI_CHECKS_H

#define NAPI_VERSION 8
#include <node_api.h>

#define CHECK(call)                                                        \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      napi_throw_error(env, NULL, "tessera addon: N-API call failed: " #call); \
      return NULL;                                                         \
    }                                                                      \
  } while (0)

#define FAIL(message)                          \
  do {                                         \
    napi_throw_range_error(env, NULL, message); \
    return NULL;                               \
  } while (0)

#endif
