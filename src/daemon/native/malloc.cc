// Process-wide allocator settings for the daemon (build/Release/zeroq_malloc.node).
//
// glibc gives every thread that allocates while the others hold their arena locks an arena of its
// own, up to 8 per core, and never returns them. The daemon's own threads allocate little, but the
// picture path (libvips workers, pango's fontconfig threads, created again for each picture) ends up
// with one arena per thread, each holding a few MB of freed memory. Two arenas bound that; see
// docs/decisions/daemon-memory.md.
#include <node_api.h>
#if defined(__GLIBC__)
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#endif

namespace {

// limitArenas(n): caps glibc's malloc arenas at n (arenas made before stay), and fixes the size from
// which blocks are mapped on their own at glibc's default, 128 KiB. Left alone, glibc raises that
// size to the largest block freed so far, so that the frames (300 KB and more, one per frame) come
// from the heap and leave it fragmented; mapped on their own, they go back to the system when freed.
// True when applied, false where the allocator is not glibc's.
napi_value LimitArenas(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int32_t n = 0;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &n) != napi_ok || n < 1) {
    napi_throw_range_error(env, "ZQ_NATIVE", "limitArenas: n must be an integer >= 1");
    return nullptr;
  }
  bool ok = false;
#if defined(__GLIBC__)
  ok = mallopt(M_ARENA_MAX, n) == 1 && mallopt(M_MMAP_THRESHOLD, 128 * 1024) == 1;
#endif
  napi_value out;
  napi_get_boolean(env, ok, &out);
  return out;
}

// trim(): gives the free memory of every arena back to the system (malloc_trim). True when some was.
napi_value Trim(napi_env env, napi_callback_info) {
  bool released = false;
#if defined(__GLIBC__)
  released = malloc_trim(0) == 1;
#endif
  napi_value out;
  napi_get_boolean(env, released, &out);
  return out;
}

// arenas(): how many arenas glibc's malloc has (the heaps malloc_info lists), or -1 elsewhere.
napi_value Arenas(napi_env env, napi_callback_info) {
  int32_t n = -1;
#if defined(__GLIBC__)
  char* text = nullptr;
  size_t len = 0;
  if (FILE* f = open_memstream(&text, &len)) {
    const bool ok = malloc_info(0, f) == 0;
    fclose(f);
    if (ok && text) {
      n = 0;
      for (const char* p = text; (p = strstr(p, "<heap nr=")) != nullptr; p++) n++;
    }
    free(text);
  }
#endif
  napi_value out;
  napi_create_int32(env, n, &out);
  return out;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"limitArenas", nullptr, LimitArenas, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"trim", nullptr, Trim, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"arenas", nullptr, Arenas, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, 3, props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
