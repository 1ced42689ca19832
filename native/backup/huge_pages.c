/* Asks the kernel to back memory with transparent huge pages (madvise MADV_HUGEPAGE, which the
 * common THP setting "madvise" waits for). A direct write leaves as one block request per run of
 * physically contiguous memory, at most max_segments of them: from 4 KiB pages a request carries
 * ~0.5 MiB, from 2 MiB pages up to the device's 4 MiB, and this VM's disk pays per request.
 *   adviseHugePages(bytes: Uint8Array): number
 *       advises the whole 2 MiB pages inside `bytes` (best before they are first touched); returns
 *       how many bytes that covers, 0 where the kernel has no huge pages for it */
#include <stdint.h>

#include "huge_pages.h"

#ifdef __linux__
#include <sys/mman.h>
#endif

#define HUGE_PAGE ((uintptr_t)2 << 20)

napi_value advise_huge_pages(napi_env env, napi_callback_info info) {
  size_t argc = 1, length;
  napi_value argv[1], result;
  napi_typedarray_type type;
  void *data;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 1 || napi_get_typedarray_info(env, argv[0], &type, &length, &data, NULL, NULL) != napi_ok || type != napi_uint8_array)
    FAIL("adviseHugePages(bytes: Uint8Array)");
  uintptr_t start = ((uintptr_t)data + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1), end = ((uintptr_t)data + length) & ~(HUGE_PAGE - 1);
  size_t advised = 0;
#ifdef MADV_HUGEPAGE
  if (end > start && madvise((void *)start, end - start, MADV_HUGEPAGE) == 0) advised = end - start;
#endif
  CHECK(napi_create_double(env, (double)advised, &result));
  return result;
}
