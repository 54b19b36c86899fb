// N-API entry points of the retraining core. Every call checks the lengths of the typed arrays
// against the geometry before touching memory, and splits the batch over `threads` threads.
#include <node_api.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "conv.h"

namespace {

struct Fail {
  std::string msg;
};

template <typename T>
struct View {
  T* data;
  size_t length;
};

template <typename T>
napi_typedarray_type typeOf();
template <> napi_typedarray_type typeOf<float>() { return napi_float32_array; }
template <> napi_typedarray_type typeOf<int16_t>() { return napi_int16_array; }
template <> napi_typedarray_type typeOf<int32_t>() { return napi_int32_array; }
template <> napi_typedarray_type typeOf<uint8_t>() { return napi_uint8_array; }
template <> napi_typedarray_type typeOf<double>() { return napi_float64_array; }

template <typename T>
View<T> arg(napi_env env, napi_value v, const char* name, size_t want) {
  bool is = false;
  napi_is_typedarray(env, v, &is);
  if (!is) throw Fail{std::string(name) + ": expected a typed array"};
  napi_typedarray_type type;
  size_t length;
  void* data;
  napi_value buf;
  size_t offset;
  napi_get_typedarray_info(env, v, &type, &length, &data, &buf, &offset);
  if (type != typeOf<T>()) throw Fail{std::string(name) + ": wrong typed-array type"};
  if (length != want)
    throw Fail{std::string(name) + ": length " + std::to_string(length) + ", expected " + std::to_string(want)};
  return {static_cast<T*>(data), length};
}

int intArg(napi_env env, napi_value v, const char* name) {
  int32_t out;
  if (napi_get_value_int32(env, v, &out) != napi_ok) throw Fail{std::string(name) + ": expected an integer"};
  return out;
}

struct Batch {
  int N;
  zq::ConvGeom g;
  size_t inSize() const { return (size_t)g.C * g.H * g.W; }
  size_t outSize() const { return (size_t)g.O * g.Ho() * g.Wo(); }
  size_t wSize() const { return (size_t)g.O * (g.C / g.G) * g.k * g.k; }
};

Batch geomArg(napi_env env, napi_value v) {
  View<int32_t> a = arg<int32_t>(env, v, "geom", 9);
  Batch b{a.data[0], {a.data[1], a.data[2], a.data[3], a.data[4], a.data[5], a.data[6], a.data[7], a.data[8]}};
  const zq::ConvGeom& g = b.g;
  if (b.N < 1 || g.C < 1 || g.H < 1 || g.W < 1 || g.O < 1 || g.k < 1 || g.s < 1 || g.p < 0 || g.G < 1 ||
      g.C % g.G || g.O % g.G || g.Ho() < 1 || g.Wo() < 1)
    throw Fail{"geom: invalid convolution geometry"};
  return b;
}

// Runs fn(n, thread) for every image n, over at most `threads` threads.
template <typename F>
void forImages(int N, int threads, F fn) {
  const int T = std::max(1, std::min(threads, N));
  if (T == 1) {
    for (int n = 0; n < N; n++) fn(n, 0);
    return;
  }
  std::vector<std::thread> pool;
  for (int t = 0; t < T; t++)
    pool.emplace_back([=]() {
      for (int n = t; n < N; n += T) fn(n, t);
    });
  for (auto& th : pool) th.join();
}

template <size_t K>
void getArgs(napi_env env, napi_callback_info info, napi_value (&argv)[K]) {
  size_t argc = K;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc != K) throw Fail{"expected " + std::to_string(K) + " arguments"};
}

template <typename F>
napi_value guarded(napi_env env, F fn) {
  try {
    fn();
  } catch (const Fail& f) {
    napi_throw_type_error(env, "ZQ_RETRAIN_NATIVE", f.msg.c_str());
  } catch (const std::exception& e) {
    napi_throw_error(env, "ZQ_RETRAIN_NATIVE", e.what());
  }
  return nullptr;
}

// convForwardF32(x, w, b, geom, y, threads)
napi_value ForwardF32(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    napi_value a[6];
    getArgs(env, info, a);
    Batch B = geomArg(env, a[3]);
    auto x = arg<float>(env, a[0], "x", B.N * B.inSize());
    auto w = arg<float>(env, a[1], "w", B.wSize());
    auto b = arg<float>(env, a[2], "b", B.g.O);
    auto y = arg<float>(env, a[4], "y", B.N * B.outSize());
    forImages(B.N, intArg(env, a[5], "threads"), [&](int n, int) {
      zq::convForwardF32(x.data + n * B.inSize(), w.data, b.data, B.g, y.data + n * B.outSize());
    });
  });
}

// The first five arguments of the integer convs: x, q, m, mShift, bias.
struct IntConvArgs {
  View<int16_t> x, q;
  View<int32_t> m, mShift, bias;
};
IntConvArgs intConvArgs(napi_env env, const napi_value* a, const Batch& B) {
  const int O = B.g.O;
  return {arg<int16_t>(env, a[0], "x", B.N * B.inSize()), arg<int16_t>(env, a[1], "q", B.wSize()),
          arg<int32_t>(env, a[2], "m", O), arg<int32_t>(env, a[3], "mShift", O), arg<int32_t>(env, a[4], "bias", O)};
}

// convForwardInt(x, q, m, mShift, bias, outShift, leaky, bits, geom, y, code, threads)
napi_value ForwardInt(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    napi_value a[12];
    getArgs(env, info, a);
    Batch B = geomArg(env, a[8]);
    const IntConvArgs c = intConvArgs(env, a, B);
    const auto &x = c.x, &q = c.q;
    zq::IntConvParams p{c.m.data, c.mShift.data, c.bias.data, arg<int32_t>(env, a[5], "outShift", B.g.O).data,
                        intArg(env, a[6], "leaky") != 0, intArg(env, a[7], "bits")};
    if (p.bits < 2 || p.bits > 16) throw Fail{"bits: expected 2..16"};
    auto y = arg<int16_t>(env, a[9], "y", B.N * B.outSize());
    auto code = arg<uint8_t>(env, a[10], "code", B.N * B.outSize());
    forImages(B.N, intArg(env, a[11], "threads"), [&](int n, int) {
      zq::convForwardInt(x.data + n * B.inSize(), q.data, p, B.g, y.data + n * B.outSize(),
                         code.data + n * B.outSize());
    });
  });
}

// convActivatedInt(x, q, m, mShift, bias, act, geom, y, threads)
napi_value ActivatedInt(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    napi_value a[9];
    getArgs(env, info, a);
    Batch B = geomArg(env, a[6]);
    const IntConvArgs c = intConvArgs(env, a, B);
    const int act = intArg(env, a[5], "act");
    if (act < 0 || act > 2) throw Fail{"act: expected 0 (linear), 1 (leaky) or 2 (relu)"};
    auto y = arg<int32_t>(env, a[7], "y", B.N * B.outSize());
    forImages(B.N, intArg(env, a[8], "threads"), [&](int n, int) {
      zq::convActivatedInt(c.x.data + n * B.inSize(), c.q.data, c.m.data, c.mShift.data, c.bias.data, act, B.g, y.data + n * B.outSize());
    });
  });
}

// convInputHessian(x, geom, every, H, threads): H (G*d*d doubles) = the sums of x xᵀ over every
// `every`-th output position of all N images, upper triangles (exact: integer sums below 2^53).
napi_value InputHessian(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    napi_value a[5];
    getArgs(env, info, a);
    Batch B = geomArg(env, a[1]);
    const int every = intArg(env, a[2], "every");
    if (every < 1) throw Fail{"every: expected >= 1"};
    const size_t d = (size_t)(B.g.C / B.g.G) * B.g.k * B.g.k, n = (size_t)B.g.G * d * d;
    auto x = arg<int16_t>(env, a[0], "x", B.N * B.inSize());
    auto H = arg<double>(env, a[3], "H", n);
    const int T = std::max(1, std::min(intArg(env, a[4], "threads"), B.N));
    std::vector<std::vector<int64_t>> part(T, std::vector<int64_t>(n));
    forImages(B.N, T, [&](int img, int t) { zq::inputHessianInt(x.data + img * B.inSize(), B.g, every, part[t].data()); });
    for (size_t i = 0; i < n; i++) {
      int64_t s = 0;
      for (int t = 0; t < T; t++) s += part[t][i];
      H.data[i] = (double)s;
    }
  });
}

// convBackwardData(dy, w, geom, dx, threads)
napi_value BackwardData(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    napi_value a[5];
    getArgs(env, info, a);
    Batch B = geomArg(env, a[2]);
    auto dy = arg<float>(env, a[0], "dy", B.N * B.outSize());
    auto w = arg<float>(env, a[1], "w", B.wSize());
    auto dx = arg<float>(env, a[3], "dx", B.N * B.inSize());
    forImages(B.N, intArg(env, a[4], "threads"), [&](int n, int) {
      zq::convBackwardData(dy.data + n * B.outSize(), w.data, B.g, dx.data + n * B.inSize());
    });
  });
}

// convBackwardWeight(dy, x, geom, dw, db, threads): dw and db are accumulated.
napi_value BackwardWeight(napi_env env, napi_callback_info info) {
  return guarded(env, [&] {
    napi_value a[6];
    getArgs(env, info, a);
    Batch B = geomArg(env, a[2]);
    auto dy = arg<float>(env, a[0], "dy", B.N * B.outSize());
    auto x = arg<float>(env, a[1], "x", B.N * B.inSize());
    auto dw = arg<float>(env, a[3], "dw", B.wSize());
    auto db = arg<float>(env, a[4], "db", B.g.O);
    const int T = std::max(1, std::min(intArg(env, a[5], "threads"), B.N));
    std::vector<std::vector<float>> pw(T, std::vector<float>(B.wSize())), pb(T, std::vector<float>(B.g.O));
    forImages(B.N, T, [&](int n, int t) {
      zq::convBackwardWeight(dy.data + n * B.outSize(), x.data + n * B.inSize(), B.g, pw[t].data(), pb[t].data());
    });
    for (int t = 0; t < T; t++) {
      for (size_t i = 0; i < B.wSize(); i++) dw.data[i] += pw[t][i];
      for (int o = 0; o < B.g.O; o++) db.data[o] += pb[t][o];
    }
  });
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"convForwardF32", nullptr, ForwardF32, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"convForwardInt", nullptr, ForwardInt, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"convActivatedInt", nullptr, ActivatedInt, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"convInputHessian", nullptr, InputHessian, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"convBackwardData", nullptr, BackwardData, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"convBackwardWeight", nullptr, BackwardWeight, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
