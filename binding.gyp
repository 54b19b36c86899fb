{
  "targets": [
    {
      "target_name": "zeroq_retrain",
      "sources": ["src/retrain/native/binding.cc", "src/retrain/native/conv.cc"],
      "cflags_cc": ["-O3", "-std=c++17", "-fno-math-errno", "-fno-trapping-math", "-fassociative-math", "-fno-signed-zeros"],
      "cflags_cc!": ["-fno-exceptions", "-O2"],
      "cflags!": ["-fno-exceptions"],
      "xcode_settings": {"GCC_ENABLE_CPP_EXCEPTIONS": "YES", "OTHER_CPLUSPLUSFLAGS": ["-O3", "-std=c++17"]}
    }
  ]
}
