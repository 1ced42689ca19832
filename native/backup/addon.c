/* N-API binding of the backup agent's native parts: the backup's batch naming and encoding of
 * chunks (encode.c), the restore's batch decode of stored blobs (decode.c) and huge pages for the memory its direct writes leave from (huge_pages.c). */
#include "decode.h"
#include "encode.h"
#include "huge_pages.h"

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor functions[] = {
      {"encoder", NULL, create_encoder, NULL, NULL, NULL, napi_default, NULL},
      {"encodeBatch", NULL, encode_batch, NULL, NULL, NULL, napi_default, NULL},
      {"decoder", NULL, create_decoder, NULL, NULL, NULL, napi_default, NULL},
      {"decodeBlobs", NULL, decode_blobs, NULL, NULL, NULL, napi_default, NULL},
      {"adviseHugePages", NULL, advise_huge_pages, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof(functions) / sizeof(functions[0]), functions));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
