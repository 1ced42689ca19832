/* Blob decoding for the restore (decode.c). */
#ifndef TESSERA_BACKUP_DECODE_H
#define TESSERA_BACKUP_DECODE_H

#include "../erasure/napi_checks.h"

napi_value create_decoder(napi_env env, napi_callback_info info);
napi_value decode_blobs(napi_env env, napi_callback_info info);

#endif
