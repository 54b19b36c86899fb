{
  "variables": {
    "zq_int_cflags": ["-O3", "-std=c++17", "-fPIC", "-fno-strict-aliasing", "-ffp-contract=off", "-fno-trapping-math"]
  },
  "targets": [
    {
      "target_name": "zeroq_retrain",
      "sources": ["src/retrain/native/binding.cc", "src/retrain/native/conv.cc"],
      "cflags_cc": ["-O3", "-std=c++17", "-fno-math-errno", "-fno-trapping-math", "-fassociative-math", "-fno-signed-zeros"],
      "cflags_cc!": ["-fno-exceptions", "-O2"],
      "cflags!": ["-fno-exceptions"],
      "xcode_settings": {"GCC_ENABLE_CPP_EXCEPTIONS": "YES", "OTHER_CPLUSPLUSFLAGS": ["-O3", "-std=c++17"]}
    },
    {
      "target_name": "zeroq_malloc",
      "sources": ["src/daemon/native/malloc.cc"]
    },
    {
      "target_name": "zeroq_jpeg",
      "sources": ["src/daemon/native/jpeg.cc", "src/kernels/resize.cc"],
      "cflags_cc": ["<@(zq_int_cflags)"],
      "cflags_cc!": ["-O2"]
    },
    {
      "target_name": "zeroq_int",
      "sources": ["src/kernels/addon.cc", "src/kernels/check.cc", "src/kernels/net.cc", "src/kernels/pool.cc", "src/kernels/kernels_scalar.cc", "src/kernels/resize.cc"],
      "cflags_cc": ["<@(zq_int_cflags)"],
      "cflags_cc!": ["-fno-exceptions", "-O2"],
      "cflags!": ["-fno-exceptions"],
      "xcode_settings": {"GCC_ENABLE_CPP_EXCEPTIONS": "YES", "OTHER_CPLUSPLUSFLAGS": ["-O3", "-std=c++17", "-ffp-contract=off", "-fno-trapping-math"]},
      "conditions": [
        ["target_arch=='x64'", {"dependencies": ["zeroq_int_avx2", "zeroq_int_avx512"]}],
        ["target_arch=='arm64'", {"dependencies": ["zeroq_int_dotprod"], "sources": ["src/kernels/kernels_neon.cc"]}]
      ]
    }
  ],
  "conditions": [
    ["target_arch=='x64'", {
      "targets": [
        {
          "target_name": "zeroq_int_avx2",
          "type": "static_library",
          "sources": ["src/kernels/kernels_avx2.cc"],
          "cflags_cc": ["<@(zq_int_cflags)", "-mavx2", "-mfma", "-mbmi2"],
          "cflags_cc!": ["-O2"]
        },
        {
          "target_name": "zeroq_int_avx512",
          "type": "static_library",
          "sources": ["src/kernels/kernels_avx512.cc"],
          "cflags_cc": ["<@(zq_int_cflags)", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512vnni", "-mavx2", "-mfma", "-mbmi2", "-Wno-maybe-uninitialized"],
          "cflags_cc!": ["-O2"]
        }
      ]
    }],
    ["target_arch=='arm64'", {
      "targets": [
        {
          "target_name": "zeroq_int_dotprod",
          "type": "static_library",
          "sources": ["src/kernels/kernels_dotprod.cc"],
          "cflags_cc": ["<@(zq_int_cflags)", "-march=armv8.2-a+dotprod"],
          "cflags_cc!": ["-O2"]
        }
      ]
    }]
  ]
}
