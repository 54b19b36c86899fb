// N-API surface of the integer engine (used by src/engine/int/native.ts):
//   isas() -> string[]                    instruction sets usable on this CPU, best first
//   create(descs, convs, input, isa, threads) -> handle
//   run(handle, rgb, heads: Int32Array, outs: Int32Array[], floats?: {data, frac}[])
//   read(handle, layer, out: Int32Array)
//   info(handle) -> {isa, threads};  profile(handle, on) -> Float64Array of ns per layer
//   destroy(handle)                       frees the network now (later calls throw)
//   resize(src, iw, ih, w, h, rgb, dstW, dstH, ox, oy, planar?)   darknet's resize (resize.h)
#include <node_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "net.h"
#include "resize.h"

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif

using zqint::Error;

namespace {

std::vector<const zqint::Kernels*> available() {
  std::vector<const zqint::Kernels*> v;
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512vnni")) {
    if (__builtin_cpu_supports("avx512vbmi")) v.push_back(&zqint::kAvx512Vbmi);
    v.push_back(&zqint::kAvx512);
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) v.push_back(&zqint::kAvx2);
#endif
#if defined(__aarch64__) && defined(__linux__)
  if (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) v.push_back(&zqint::kDotprod);
#endif
  v.push_back(&zqint::kScalar);
  return v;
}

#define CHECK(call)                                      \
  do {                                                   \
    if ((call) != napi_ok) throw Error{"N-API: " #call}; \
  } while (0)

template <typename T>
T* typed(napi_env env, napi_value v, napi_typedarray_type want, size_t* len, const char* what) {
  bool is = false;
  CHECK(napi_is_typedarray(env, v, &is));
  if (!is) throw Error{std::string(what) + ": expected a typed array"};
  napi_typedarray_type type;
  void* data;
  napi_value ab;
  size_t off;
  CHECK(napi_get_typedarray_info(env, v, &type, len, &data, &ab, &off));
  if (type != want) throw Error{std::string(what) + ": wrong typed-array type"};
  return static_cast<T*>(data);
}

napi_value prop(napi_env env, napi_value obj, const char* name) {
  napi_value v;
  CHECK(napi_get_named_property(env, obj, name, &v));
  return v;
}

bool isNullish(napi_env env, napi_value v) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  return t == napi_undefined || t == napi_null;
}

// The handle JS holds: destroy() frees the network (and joins its threads) at once; the
// finalizer frees whatever is left when the handle is collected.
struct Handle {
  zqint::Net* net;
};

Handle* handleOf(napi_env env, napi_value v) {
  void* p = nullptr;
  CHECK(napi_get_value_external(env, v, &p));
  return static_cast<Handle*>(p);
}

zqint::Net* netOf(napi_env env, napi_value v) {
  zqint::Net* net = handleOf(env, v)->net;
  if (!net) throw Error{"the engine is closed"};
  return net;
}

napi_value Isas(napi_env env, napi_callback_info) {
  auto v = available();
  napi_value arr;
  napi_create_array_with_length(env, v.size(), &arr);
  for (size_t i = 0; i < v.size(); i++) {
    napi_value s;
    napi_create_string_utf8(env, v[i]->name, NAPI_AUTO_LENGTH, &s);
    napi_set_element(env, arr, i, s);
  }
  return arr;
}

napi_value Create(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc < 5) throw Error{"create: 5 arguments expected"};
  uint32_t n;
  CHECK(napi_get_array_length(env, argv[0], &n));
  std::vector<zqint::LayerIn> layers(n);
  for (uint32_t i = 0; i < n; i++) {
    napi_value d, c;
    CHECK(napi_get_element(env, argv[0], i, &d));
    size_t len;
    int32_t* desc = typed<int32_t>(env, d, napi_int32_array, &len, "desc");
    if (len < zqint::F_INPUTS || len != (size_t)zqint::F_INPUTS + desc[zqint::F_NIN]) throw Error{"desc " + std::to_string(i) + ": bad length"};
    layers[i].desc.assign(desc, desc + len);
    CHECK(napi_get_element(env, argv[1], i, &c));
    if (isNullish(env, c)) continue;
    zqint::ConvParamsIn& cp = layers[i].conv;
    size_t l2;
    cp.q = typed<int8_t>(env, prop(env, c, "q"), napi_int8_array, &cp.qLen, "q");
    const size_t O = (size_t)desc[zqint::F_C];
    cp.fw = typed<int32_t>(env, prop(env, c, "fw"), napi_int32_array, &l2, "fw");
    if (l2 != O) throw Error{"fw length"};
    cp.m = typed<int32_t>(env, prop(env, c, "m"), napi_int32_array, &l2, "m");
    if (l2 != O) throw Error{"m length"};
    cp.fm = typed<int32_t>(env, prop(env, c, "fm"), napi_int32_array, &l2, "fm");
    if (l2 != O) throw Error{"fm length"};
    cp.bias = typed<int32_t>(env, prop(env, c, "bias"), napi_int32_array, &l2, "bias");
    if (l2 != O) throw Error{"bias length"};
    napi_value lut = prop(env, c, "lut");
    if (!isNullish(env, lut)) cp.lut = typed<int32_t>(env, lut, napi_int32_array, &cp.lutLen, "lut");
  }
  size_t len;
  int32_t* shape = typed<int32_t>(env, argv[2], napi_int32_array, &len, "input");
  if (len != 3) throw Error{"input: [c, h, w]"};
  size_t isaLen;
  char isaName[32];
  CHECK(napi_get_value_string_utf8(env, argv[3], isaName, sizeof isaName, &isaLen));
  int32_t threads;
  CHECK(napi_get_value_int32(env, argv[4], &threads));
  const zqint::Kernels* k = nullptr;
  for (auto* cand : available())
    if (std::string(isaName) == "auto" || std::string(isaName) == cand->name) {
      k = cand;
      break;
    }
  if (!k) throw Error{std::string("instruction set '") + isaName + "' is not available on this CPU"};
  auto* h = new Handle{new zqint::Net(layers, shape[0], shape[1], shape[2], k, threads < 1 ? 1 : threads)};
  napi_value ext;
  CHECK(napi_create_external(
      env, h,
      [](napi_env, void* p, void*) {
        auto* hh = static_cast<Handle*>(p);
        delete hh->net;
        delete hh;
      },
      nullptr, &ext));
  return ext;
}

napi_value Run(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  zqint::Net* net = netOf(env, argv[0]);
  size_t len, hl;
  uint8_t* rgb = typed<uint8_t>(env, argv[1], napi_uint8_array, &len, "rgb");
  if (len != net->inputBytes()) throw Error{"rgb: " + std::to_string(len) + " bytes, expected " + std::to_string(net->inputBytes())};
  int32_t* heads = typed<int32_t>(env, argv[2], napi_int32_array, &hl, "heads");
  // Optional: Float32Arrays receiving raw * 2^-frac (argv[4]: [frac per head]) beside the integers.
  const bool floats = argc >= 5;
  std::vector<int32_t*> outs(hl);
  std::vector<float*> data(hl, nullptr);
  std::vector<float> scale(hl, 0.f);
  for (size_t i = 0; i < hl; i++) {
    napi_value o;
    CHECK(napi_get_element(env, argv[3], (uint32_t)i, &o));
    size_t ol;
    outs[i] = typed<int32_t>(env, o, napi_int32_array, &ol, "out");
    if (ol != net->count(heads[i])) throw Error{"head output length"};
    if (floats) {
      napi_value d, f;
      CHECK(napi_get_element(env, argv[4], (uint32_t)i, &d));
      size_t dl;
      napi_get_named_property(env, d, "data", &f);
      data[i] = typed<float>(env, f, napi_float32_array, &dl, "data");
      if (dl != ol) throw Error{"head data length"};
      napi_value fr;
      napi_get_named_property(env, d, "frac", &fr);
      int32_t frac;
      CHECK(napi_get_value_int32(env, fr, &frac));
      scale[i] = std::ldexp(1.0f, -frac);
    }
  }
  net->run(rgb);
  for (size_t i = 0; i < hl; i++) {
    net->read(heads[i], outs[i]);
    if (data[i]) {
      const size_t n = net->count(heads[i]);
      for (size_t j = 0; j < n; j++) data[i][j] = (float)outs[i][j] * scale[i];
    }
  }
  return nullptr;
}

napi_value Read(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  zqint::Net* net = netOf(env, argv[0]);
  int32_t layer;
  CHECK(napi_get_value_int32(env, argv[1], &layer));
  size_t len;
  int32_t* out = typed<int32_t>(env, argv[2], napi_int32_array, &len, "out");
  if (len != net->count(layer)) throw Error{"read: output length"};
  net->read(layer, out);
  return nullptr;
}

napi_value Info(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  zqint::Net* net = netOf(env, argv[0]);
  napi_value obj, isa, th;
  napi_create_object(env, &obj);
  napi_create_string_utf8(env, net->isa(), NAPI_AUTO_LENGTH, &isa);
  napi_create_int32(env, net->threads(), &th);
  napi_set_named_property(env, obj, "isa", isa);
  napi_set_named_property(env, obj, "threads", th);
  return obj;
}

napi_value Destroy(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  Handle* h = handleOf(env, argv[0]);
  delete h->net;
  h->net = nullptr;
  return nullptr;
}

napi_value Profile(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  zqint::Net* net = netOf(env, argv[0]);
  bool on;
  CHECK(napi_get_value_bool(env, argv[1], &on));
  napi_value ab, arr;
  void* data;
  size_t n = net->layerNs.size();
  CHECK(napi_create_arraybuffer(env, n * sizeof(double), &data, &ab));
  memcpy(data, net->layerNs.data(), n * sizeof(double));
  CHECK(napi_create_typedarray(env, napi_float64_array, n, ab, 0, &arr));
  net->profile = on;
  std::fill(net->layerNs.begin(), net->layerNs.end(), 0.0);
  return arr;
}

int32_t intArg(napi_env env, napi_value v, const char* what) {
  int32_t x;
  if (napi_get_value_int32(env, v, &x) != napi_ok) throw Error{std::string(what) + ": expected an integer"};
  return x;
}

// resize(src, iw, ih, w, h, rgb, dstW, dstH, ox, oy, planar?): src resized to w x h and placed at
// (ox, oy) in the dstW x dstH destination, letterbox grey around it.
napi_value Resize(napi_env env, napi_callback_info info) {
  size_t argc = 11;
  napi_value argv[11];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc < 10) throw Error{"resize: 10 or 11 arguments expected"};
  zqimg::ResizeJob j;
  size_t srcLen, rgbLen, planarLen = 0;
  j.src = typed<uint8_t>(env, argv[0], napi_uint8_array, &srcLen, "resize src");
  j.iw = intArg(env, argv[1], "resize iw");
  j.ih = intArg(env, argv[2], "resize ih");
  j.w = intArg(env, argv[3], "resize w");
  j.h = intArg(env, argv[4], "resize h");
  j.rgb = typed<uint8_t>(env, argv[5], napi_uint8_array, &rgbLen, "resize rgb");
  j.dstW = intArg(env, argv[6], "resize dstW");
  j.dstH = intArg(env, argv[7], "resize dstH");
  j.ox = intArg(env, argv[8], "resize ox");
  j.oy = intArg(env, argv[9], "resize oy");
  j.planar = argc > 10 && !isNullish(env, argv[10]) ? typed<float>(env, argv[10], napi_float32_array, &planarLen, "resize planar") : nullptr;
  const auto sizes = std::to_string(j.iw) + "x" + std::to_string(j.ih) + " -> " + std::to_string(j.w) + "x" + std::to_string(j.h);
  if (j.iw < 1 || j.ih < 1 || j.w < 1 || j.h < 1 || j.ox < 0 || j.oy < 0 || j.ox + j.w > j.dstW || j.oy + j.h > j.dstH)
    throw Error{"resize: bad geometry " + sizes};
  if (srcLen != (size_t)j.iw * j.ih * 3) throw Error{"resize: source of " + std::to_string(srcLen) + " bytes for " + sizes};
  const size_t plane = (size_t)j.dstW * j.dstH;
  if (rgbLen != plane * 3) throw Error{"resize: destination of " + std::to_string(rgbLen) + " bytes, expected " + std::to_string(plane * 3)};
  if (j.planar && planarLen != plane * 3) throw Error{"resize: planar destination of " + std::to_string(planarLen) + " floats, expected " + std::to_string(plane * 3)};
  static thread_local zqimg::ResizeScratch scratch;
  zqimg::resizeDarknet(j, scratch);
  return nullptr;
}

template <napi_value (*F)(napi_env, napi_callback_info)>
napi_value Guard(napi_env env, napi_callback_info info) {
  try {
    return F(env, info);
  } catch (const Error& e) {
    napi_throw_error(env, "ZQ_NATIVE", e.msg.c_str());
  } catch (const std::exception& e) {
    napi_throw_error(env, "ZQ_NATIVE", e.what());
  }
  return nullptr;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"isas", nullptr, Guard<Isas>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"create", nullptr, Guard<Create>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"run", nullptr, Guard<Run>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"read", nullptr, Guard<Read>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"info", nullptr, Guard<Info>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"profile", nullptr, Guard<Profile>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"destroy", nullptr, Guard<Destroy>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"resize", nullptr, Guard<Resize>, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
