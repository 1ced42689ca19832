/* Blob naming and encoding for the backup (encode.c). */
#ifndef TESSERA_BACKUP_ENCODE_H
#define TESSERA_BACKUP_ENCODE_H

#include "../erasure/napi_checks.h"

napi_value create_encoder(napi_env env, napi_callback_info info);
napi_value encode_batch(napi_env env, napi_callback_info info);

#endif
