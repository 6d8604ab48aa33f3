{
  "targets": [
    {
      "target_name": "nftables_napi",
      "sources": ["src/addon.c", "src/nftctx.c", "src/nflog.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "libraries": ["-lnftables"]
    }
  ]
}
