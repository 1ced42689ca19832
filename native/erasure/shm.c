/* Shared memory between a gateway and a storage node on the same host (the bulk channel's rings,
 * src/common/shm-ring.ts): a file in /dev/shm mapped into both processes, so shard blocks cross
 * by one memcpy instead of a trip through loopback TCP.
 *   mapSharedFile(path, size, create): Buffer   the file's pages, mapped shared. create: a new
 *       file (mode 0600, never an existing one) of `size` bytes; otherwise an existing regular
 *       file of exactly `size` bytes owned by this user. Symbolic links are refused either way.
 *       The mapping lives as long as the Buffer (it is unmapped when that is collected), and the
 *       file can be unlinked once both sides have mapped it. Failures throw with the errno name
 *       as the error's code. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "napi_checks.h"
#include "shm.h"

#define MAX_PATH 256

static void unmap(napi_env env, void *data, void *hint) {
  (void)env;
  munmap(data, (size_t)(uintptr_t)hint);
}

static napi_value throw_errno(napi_env env, int error, const char *what) {
  const char *code = error == ENOENT ? "ENOENT" : error == EEXIST ? "EEXIST" : error == EACCES ? "EACCES" : "EIO";
  char message[128];
  snprintf(message, sizeof message, "%s: %s", what, strerror(error));
  napi_throw_error(env, code, message);
  return NULL;
}

/* An open file that may be mapped: a regular file of exactly `size` bytes owned by this user. */
static int check_attachable(int fd, size_t size) {
  struct stat info;
  if (fstat(fd, &info) != 0) return errno;
  if (!S_ISREG(info.st_mode) || info.st_uid != geteuid() || (size_t)info.st_size != size) return EACCES;
  return 0;
}

static napi_value map_shared_file(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  char path[MAX_PATH];
  size_t path_length;
  int64_t size;
  bool create;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 3 || napi_get_value_string_utf8(env, argv[0], path, sizeof path, &path_length) != napi_ok ||
      path_length >= sizeof path - 1 || napi_get_value_int64(env, argv[1], &size) != napi_ok || size <= 0 ||
      napi_get_value_bool(env, argv[2], &create) != napi_ok)
    FAIL("mapSharedFile(path: string, size: positive number, create: boolean)");
  int flags = O_RDWR | O_NOFOLLOW | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0);
  int fd = open(path, flags, 0600);
  if (fd < 0) return throw_errno(env, errno, "open shared memory");
  int error = create ? (ftruncate(fd, size) == 0 ? 0 : errno) : check_attachable(fd, (size_t)size);
  void *memory = error ? MAP_FAILED : mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (!error && memory == MAP_FAILED) error = errno;
  close(fd);
  if (error) return throw_errno(env, error, "map shared memory");
  napi_value result;
  if (napi_create_external_buffer(env, (size_t)size, memory, unmap, (void *)(uintptr_t)size, &result) != napi_ok) {
    munmap(memory, (size_t)size);
    FAIL("mapSharedFile: cannot wrap the mapping in a Buffer");
  }
  return result;
}

napi_value shm_define(napi_env env, napi_value exports) {
  const napi_property_descriptor properties[] = {
      {"mapSharedFile", NULL, map_shared_file, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof(properties) / sizeof(properties[0]), properties));
  return exports;
}
