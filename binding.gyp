{
  "targets": [
    {
      "target_name": "tessera_erasure",
      "sources": ["native/erasure/addon.c", "native/erasure/kernels.c", "native/erasure/md5.c", "native/erasure/md5_hasher.c", "native/erasure/md5_lanes.c", "native/erasure/shm.c"],
      "include_dirs": ["node_modules/zstd-napi/deps/zstd/lib/common"],
      "cflags_c": ["-std=gnu11", "-O3", "-Wall", "-Wextra"],
      "xcode_settings": { "OTHER_CFLAGS": ["-std=gnu11", "-O3"] }
    },
    {
      "target_name": "tessera_backup",
      "sources": ["native/backup/addon.c", "native/backup/decode.c", "native/backup/encode.c", "native/backup/huge_pages.c"],
      "dependencies": ["zstd"],
      "cflags_c": ["-std=gnu11", "-O3", "-Wall", "-Wextra"],
      "xcode_settings": { "OTHER_CFLAGS": ["-std=gnu11", "-O3"] }
    },
    {
      "target_name": "zstd",
      "type": "static_library",
      "variables": { "zstd": "node_modules/zstd-napi/deps/zstd/lib" },
      "sources": [
        "<(zstd)/common/debug.c", "<(zstd)/common/entropy_common.c", "<(zstd)/common/error_private.c",
        "<(zstd)/common/fse_decompress.c", "<(zstd)/common/xxhash.c", "<(zstd)/common/zstd_common.c",
        "<(zstd)/decompress/huf_decompress.c", "<(zstd)/decompress/huf_decompress_amd64.S",
        "<(zstd)/decompress/zstd_ddict.c", "<(zstd)/decompress/zstd_decompress.c", "<(zstd)/decompress/zstd_decompress_block.c",
        "<(zstd)/compress/fse_compress.c", "<(zstd)/compress/hist.c", "<(zstd)/compress/huf_compress.c",
        "<(zstd)/compress/zstd_compress.c", "<(zstd)/compress/zstd_compress_literals.c", "<(zstd)/compress/zstd_compress_sequences.c",
        "<(zstd)/compress/zstd_compress_superblock.c", "<(zstd)/compress/zstd_double_fast.c", "<(zstd)/compress/zstd_fast.c",
        "<(zstd)/compress/zstd_lazy.c", "<(zstd)/compress/zstd_ldm.c", "<(zstd)/compress/zstd_opt.c", "<(zstd)/compress/zstd_preSplit.c"
      ],
      "defines": ["XXH_NAMESPACE=ZSTD_", "ZSTD_NO_TRACE", "ZSTDLIB_VISIBLE=", "ZSTDERRORLIB_VISIBLE="],
      "cflags": ["-O3", "-fvisibility=hidden", "-fPIC"],
      "xcode_settings": { "OTHER_CFLAGS": ["-O3"], "GCC_SYMBOLS_PRIVATE_EXTERN": "YES" },
      "direct_dependent_settings": { "include_dirs": ["<(zstd)"] }
    }
  ]
}
