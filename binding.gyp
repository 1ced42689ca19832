{
  "targets": [
    {
      "target_name": "tessera_erasure",
      "sources": ["native/erasure/addon.c", "native/erasure/kernels.c", "native/erasure/md5.c", "native/erasure/shm.c"],
      "cflags_c": ["-std=gnu11", "-O3", "-Wall", "-Wextra"],
      "xcode_settings": { "OTHER_CFLAGS": ["-std=gnu11", "-O3"] }
    }
  ]
}
