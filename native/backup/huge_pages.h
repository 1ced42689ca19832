/* Transparent huge pages for the restore's direct-write memory (huge_pages.c). */
#ifndef TESSERA_BACKUP_HUGE_PAGES_H
#define TESSERA_BACKUP_HUGE_PAGES_H

#include "../erasure/napi_checks.h"

napi_value advise_huge_pages(napi_env env, napi_callback_info info);

#endif
