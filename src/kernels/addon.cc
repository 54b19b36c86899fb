// N-API surface of the integer engine (used by src/engine/int/native.ts):
//   isas() -> string[]                    instruction sets usable on this CPU, best first
//   create(descs, convs, input, isa, threads) -> handle
//   run(handle, rgb, heads: Int32Array, outs: Int32Array[], floats?: {data, frac}[])   on this thread
//   bind(handle, heads, outs, floats?)    where start() writes the heads (kept alive by the handle)
//   start(handle, rgb) -> Promise<void>   the frame on a libuv worker, heads into the bound outputs
//   read(handle, layer, out: Int32Array)
//   info(handle) -> {isa, threads};  profile(handle, on) -> Float64Array of ns per layer
//   layers(handle) -> {kernel: string[], macs, bytes: Float64Array}   what each layer does
//   destroy(handle)                       frees the network now, or when the frame in flight ends
//                                         (later calls throw)
//   resize(src, iw, ih, w, h, rgb, dstW, dstH, ox, oy, planar?)   darknet's resize (resize.h)
//   limits() -> {layers, inputSide, ...}   the planner's declared-size limits (check.h)
#include <node_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "check.h"
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
#if defined(__aarch64__)
  v.push_back(&zqint::kNeon);  // Advanced SIMD is part of every ARMv8-A core Linux runs on
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

// Where the heads of a frame go: per head, the layer, its int32 output and optionally the float
// output (raw * 2^-frac).
struct HeadsOut {
  std::vector<int32_t> layer;
  std::vector<int32_t*> raw;
  std::vector<float*> data;
  std::vector<float> scale;
  void write(zqint::Net& net) const {
    for (size_t i = 0; i < layer.size(); i++) {
      net.read(layer[i], raw[i]);
      if (!data[i]) continue;
      const size_t n = net.count(layer[i]);
      for (size_t j = 0; j < n; j++) data[i][j] = (float)raw[i][j] * scale[i];
    }
  }
};

// The handle JS holds. destroy() frees the network (and joins its threads) at once, or, while a
// frame runs on a libuv worker, when that frame completes; the finalizer frees whatever is left
// when the handle is collected. `busy` is only read and written on the JS thread.
struct Handle {
  zqint::Net* net = nullptr;
  bool busy = false;     // a frame is running on a worker (start .. its completion)
  bool closing = false;  // destroy() came while busy
  bool orphan = false;   // collected while busy: the completion frees the handle
  HeadsOut bound;        // the outputs of start(), set once by bind()
  std::vector<napi_ref> refs;  // keep the bound typed arrays (and their memory) alive
  // The frame in flight.
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  std::string error;
};

void freeNet(napi_env env, Handle* h) {
  delete h->net;
  h->net = nullptr;
  for (napi_ref r : h->refs) napi_delete_reference(env, r);
  h->refs.clear();
  h->bound = HeadsOut{};
}

Handle* handleOf(napi_env env, napi_value v) {
  void* p = nullptr;
  CHECK(napi_get_value_external(env, v, &p));
  return static_cast<Handle*>(p);
}

// The network of a handle that is open and not running a frame.
zqint::Net* netOf(napi_env env, napi_value v) {
  Handle* h = handleOf(env, v);
  if (!h->net || h->closing) throw Error{"the engine is closed"};
  if (h->busy) throw Error{"the engine is running a frame (calls must wait for the previous one)"};
  return h->net;
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
  auto* net = new zqint::Net(layers, shape[0], shape[1], shape[2], k, threads);
  auto* h = new Handle;
  h->net = net;
  napi_value ext;
  CHECK(napi_create_external(
      env, h,
      [](napi_env env, void* p, void*) {
        auto* hh = static_cast<Handle*>(p);
        if (hh->busy) {
          hh->orphan = true;  // the worker still uses the network
          return;
        }
        freeNet(env, hh);
        delete hh;
      },
      nullptr, &ext));
  return ext;
}

// heads: Int32Array of layers; outs: Int32Array per head; floats (optional): [{data, frac}] per head.
HeadsOut headsOut(napi_env env, const zqint::Net& net, napi_value headsV, napi_value outsV, napi_value floatsV, std::vector<napi_value>* arrays) {
  HeadsOut o;
  size_t hl;
  int32_t* heads = typed<int32_t>(env, headsV, napi_int32_array, &hl, "heads");
  const bool floats = floatsV && !isNullish(env, floatsV);
  for (size_t i = 0; i < hl; i++) {
    if (heads[i] < 0 || heads[i] >= net.layers()) throw Error{"heads: no layer " + std::to_string(heads[i])};
    o.layer.push_back(heads[i]);
    napi_value v;
    CHECK(napi_get_element(env, outsV, (uint32_t)i, &v));
    size_t ol;
    o.raw.push_back(typed<int32_t>(env, v, napi_int32_array, &ol, "out"));
    if (ol != net.count(heads[i])) throw Error{"head output length"};
    if (arrays) arrays->push_back(v);
    o.data.push_back(nullptr);
    o.scale.push_back(0.f);
    if (!floats) continue;
    napi_value d = nullptr, f = nullptr, fr = nullptr;
    CHECK(napi_get_element(env, floatsV, (uint32_t)i, &d));
    CHECK(napi_get_named_property(env, d, "data", &f));
    size_t dl;
    o.data.back() = typed<float>(env, f, napi_float32_array, &dl, "data");
    if (dl != ol) throw Error{"head data length"};
    if (arrays) arrays->push_back(f);
    CHECK(napi_get_named_property(env, d, "frac", &fr));
    int32_t frac;
    CHECK(napi_get_value_int32(env, fr, &frac));
    o.scale.back() = std::ldexp(1.0f, -frac);
  }
  return o;
}

uint8_t* frameOf(napi_env env, const zqint::Net& net, napi_value v) {
  size_t len;
  uint8_t* rgb = typed<uint8_t>(env, v, napi_uint8_array, &len, "rgb");
  if (len != net.inputBytes()) throw Error{"rgb: " + std::to_string(len) + " bytes, expected " + std::to_string(net.inputBytes())};
  return rgb;
}

// run(handle, rgb, heads, outs, floats?): one frame on the calling thread.
napi_value Run(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5] = {nullptr, nullptr, nullptr, nullptr, nullptr};
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  zqint::Net* net = netOf(env, argv[0]);
  uint8_t* rgb = frameOf(env, *net, argv[1]);
  HeadsOut out = headsOut(env, *net, argv[2], argv[3], argc >= 5 ? argv[4] : nullptr, nullptr);
  net->run(rgb);
  out.write(*net);
  return nullptr;
}

// bind(handle, heads, outs, floats?): where start() writes the heads of every frame (kept alive).
napi_value Bind(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4] = {nullptr, nullptr, nullptr, nullptr};
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  zqint::Net* net = netOf(env, argv[0]);
  Handle* h = handleOf(env, argv[0]);
  std::vector<napi_value> arrays;
  HeadsOut out = headsOut(env, *net, argv[1], argv[2], argc >= 4 ? argv[3] : nullptr, &arrays);
  for (napi_ref r : h->refs) napi_delete_reference(env, r);
  h->refs.clear();
  for (napi_value a : arrays) {
    napi_ref r;
    CHECK(napi_create_reference(env, a, 1, &r));
    h->refs.push_back(r);
  }
  h->bound = std::move(out);
  return nullptr;
}

void startExecute(napi_env, void* data) {
  Handle* h = static_cast<Handle*>(data);
  try {
    h->net->compute();
    h->bound.write(*h->net);
  } catch (const Error& e) {
    h->error = e.msg;
  } catch (const std::exception& e) {
    h->error = e.what();
  }
}

void startComplete(napi_env env, napi_status status, void* data) {
  Handle* h = static_cast<Handle*>(data);
  napi_deferred deferred = h->deferred;
  napi_delete_async_work(env, h->work);
  h->work = nullptr;
  h->deferred = nullptr;
  h->busy = false;
  std::string error = status == napi_ok ? h->error : status == napi_cancelled ? "the frame was cancelled" : "the frame failed";
  h->error.clear();
  if (h->closing || h->orphan) freeNet(env, h);
  if (h->orphan) delete h;
  napi_value v;
  if (error.empty()) {
    napi_get_undefined(env, &v);
    napi_resolve_deferred(env, deferred, v);
  } else {
    napi_value msg, code;
    napi_create_string_utf8(env, error.c_str(), NAPI_AUTO_LENGTH, &msg);
    napi_create_string_utf8(env, "ZQ_NATIVE", NAPI_AUTO_LENGTH, &code);
    napi_create_error(env, code, msg, &v);
    napi_reject_deferred(env, deferred, v);
  }
}

// start(handle, rgb) -> Promise<void>: copies the frame into the network (the caller may reuse
// rgb at once), computes it on a libuv worker and resolves once the bound outputs hold its heads.
napi_value Start(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2] = {nullptr, nullptr};
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  zqint::Net* net = netOf(env, argv[0]);
  Handle* h = handleOf(env, argv[0]);
  uint8_t* rgb = frameOf(env, *net, argv[1]);
  napi_value name, promise;
  CHECK(napi_create_string_utf8(env, "zeroq:int-frame", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_promise(env, &h->deferred, &promise));
  net->load(rgb);
  if (napi_create_async_work(env, nullptr, name, startExecute, startComplete, h, &h->work) != napi_ok ||
      napi_queue_async_work(env, h->work) != napi_ok) {
    if (h->work) napi_delete_async_work(env, h->work);
    napi_delete_async_work(env, h->work);
    h->work = nullptr;
    napi_value msg, err;
    napi_create_string_utf8(env, "cannot queue the frame", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, nullptr, msg, &err);
    napi_reject_deferred(env, h->deferred, err);
    h->deferred = nullptr;
    return promise;
  }
  h->busy = true;
  return promise;
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
  if (h->busy) {
    h->closing = true;  // freed when the frame in flight completes
    return nullptr;
  }
  freeNet(env, h);
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

// layers(handle) -> {kernel: string[], macs: Float64Array, bytes: Float64Array}: what each layer does.
napi_value Layers(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  zqint::Net* net = netOf(env, argv[0]);
  const size_t n = (size_t)net->layers();
  napi_value obj, kernels, macsAb, bytesAb, macs, bytes;
  void *md, *bd;
  CHECK(napi_create_object(env, &obj));
  CHECK(napi_create_array_with_length(env, n, &kernels));
  CHECK(napi_create_arraybuffer(env, n * sizeof(double), &md, &macsAb));
  CHECK(napi_create_arraybuffer(env, n * sizeof(double), &bd, &bytesAb));
  for (size_t i = 0; i < n; i++) {
    const zqint::Net::Info li = net->info((int)i);
    napi_value s;
    CHECK(napi_create_string_utf8(env, li.kernel.c_str(), NAPI_AUTO_LENGTH, &s));
    CHECK(napi_set_element(env, kernels, (uint32_t)i, s));
    ((double*)md)[i] = (double)li.macs;
    ((double*)bd)[i] = (double)li.bytes;
  }
  CHECK(napi_create_typedarray(env, napi_float64_array, n, macsAb, 0, &macs));
  CHECK(napi_create_typedarray(env, napi_float64_array, n, bytesAb, 0, &bytes));
  CHECK(napi_set_named_property(env, obj, "kernel", kernels));
  CHECK(napi_set_named_property(env, obj, "macs", macs));
  CHECK(napi_set_named_property(env, obj, "bytes", bytes));
  return obj;
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

// limits() -> {name: number}: the planner's declared-size limits and ranges (check.h).
napi_value LimitsOf(napi_env env, napi_callback_info) {
  const zqint::Limits l;
  const std::pair<const char*, int64_t> fields[] = {
      {"layers", l.layers}, {"inputSide", l.inputSide}, {"side", l.side}, {"channels", l.channels}, {"tensor", l.tensor},
      {"total", l.total}, {"convWeights", l.convWeights}, {"weights", l.weights}, {"kernel", l.kernel}, {"stride", l.stride},
      {"pad", l.pad}, {"inputs", l.inputs}, {"frac", l.frac}, {"lut", l.lut}, {"lutOffset", l.lutOffset}, {"threads", l.threads},
  };
  napi_value obj;
  CHECK(napi_create_object(env, &obj));
  for (const auto& [name, v] : fields) {
    napi_value x;
    CHECK(napi_create_double(env, (double)v, &x));
    CHECK(napi_set_named_property(env, obj, name, x));
  }
  return obj;
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
      {"bind", nullptr, Guard<Bind>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"start", nullptr, Guard<Start>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"read", nullptr, Guard<Read>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"info", nullptr, Guard<Info>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"profile", nullptr, Guard<Profile>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"layers", nullptr, Guard<Layers>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"destroy", nullptr, Guard<Destroy>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"resize", nullptr, Guard<Resize>, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"limits", nullptr, Guard<LimitsOf>, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
