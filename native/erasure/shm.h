/* Shared memory mappings (shm.c): adds mapSharedFile to the addon's exports. */
#ifndef TESSERA_SHM_H
#define TESSERA_SHM_H

#include "napi_checks.h"

napi_value shm_define(napi_env env, napi_value exports);

#endif
