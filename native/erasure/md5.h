/* MD5 of large bodies on a hasher thread (md5.c): adds md5Start, md5Update, md5Digest, md5Modes and
 * md5SetMode to the addon's exports. */
#ifndef TESSERA_MD5_H
#define TESSERA_MD5_H

#include "napi_checks.h"

napi_value md5_define(napi_env env, napi_value exports);

#endif
