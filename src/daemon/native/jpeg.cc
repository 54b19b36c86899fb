// Baseline JPEG encoder for the daemon's pictures (build/Release/zeroq_jpeg.node).
//
// The daemon makes its pictures (snapshots, live view, event pictures) from RGB frames it already
// holds; loading libvips for that costs a small board 25 MB and more (docs/decisions/daemon-memory.md).
// This is the plain baseline process of ITU T.81: YCbCr 4:2:0, 8x8 DCT, the quantization tables of
// T.81 Annex K scaled by quality (the usual IJG rule), Huffman tables computed for each picture
// (Annex K.2, lengths limited to 16 bits). The picture is resampled to the size asked for on the
// way, by the network input's resize (src/kernels/resize.cc). The work runs on libuv's thread pool, off the thread that carries the frames.
#include <node_api.h>

#include "../../kernels/resize.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

const uint8_t kLuma[64] = {16, 11, 10, 16, 24,  40,  51,  61,  12, 12, 14, 19, 26,  58,  60,  55,
                           14, 13, 16, 24, 40,  57,  69,  56,  14, 17, 22, 29, 51,  87,  80,  62,
                           18, 22, 37, 56, 68,  109, 103, 77,  24, 35, 55, 64, 81,  104, 113, 92,
                           49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99};
const uint8_t kChroma[64] = {17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
                             24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
                             99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
                             99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99};

// zigzag[k]: the row-major index of the k-th coefficient in zigzag order.
struct Zigzag {
  int at[64];
  Zigzag() {
    int k = 0;
    for (int s = 0; s < 15; s++) {
      // Anti-diagonal s; even diagonals run up and to the right, odd ones down and to the left.
      for (int i = 0; i <= s; i++) {
        int r = (s % 2 == 0) ? s - i : i;
        int c = s - r;
        if (r < 8 && c < 8) at[k++] = r * 8 + c;
      }
    }
  }
};
const Zigzag kZigzag;

struct Cosines {
  float c[8][8];  // c[u][x] = C(u)/2 cos((2x+1)u pi/16)
  Cosines() {
    for (int u = 0; u < 8; u++)
      for (int x = 0; x < 8; x++) c[u][x] = (u == 0 ? std::sqrt(0.5f) : 1.0f) * 0.5f * (float)std::cos((2 * x + 1) * u * M_PI / 16.0);
  }
};
const Cosines kCos;

void scaledTable(const uint8_t* base, int quality, uint8_t* out) {
  int q = std::min(100, std::max(1, quality));
  int scale = q < 50 ? 5000 / q : 200 - 2 * q;
  for (int i = 0; i < 64; i++) out[i] = (uint8_t)std::min(255, std::max(1, (base[i] * scale + 50) / 100));
}

// 2-D DCT of one level-shifted block, quantized, in zigzag order.
void transform(const float* block, const uint8_t* qt, int16_t* out) {
  float tmp[64];
  for (int y = 0; y < 8; y++)
    for (int u = 0; u < 8; u++) {
      float s = 0;
      for (int x = 0; x < 8; x++) s += kCos.c[u][x] * block[y * 8 + x];
      tmp[y * 8 + u] = s;
    }
  for (int k = 0; k < 64; k++) {
    int idx = kZigzag.at[k];
    int v = idx >> 3, u = idx & 7;
    float s = 0;
    for (int y = 0; y < 8; y++) s += kCos.c[v][y] * tmp[y * 8 + u];
    out[k] = (int16_t)std::lround(s / qt[idx]);
  }
}

int category(int v) {
  int a = v < 0 ? -v : v, n = 0;
  while (a) { n++; a >>= 1; }
  return n;
}

struct Huffman {
  uint8_t bits[17] = {0};  // bits[l]: codes of length l
  std::vector<uint8_t> vals;
  uint16_t code[256] = {0};
  uint8_t size[256] = {0};

  // Code lengths from symbol frequencies (T.81 K.2), at most 16 bits, no all-ones code.
  void build(const uint32_t* freq0) {
    std::vector<long> freq(257);
    for (int i = 0; i < 256; i++) freq[i] = freq0[i];
    freq[256] = 1;  // reserves the all-ones code
    std::vector<int> codesize(257, 0), others(257, -1);
    for (;;) {
      int c1 = -1, c2 = -1;
      for (int i = 0; i < 257; i++) {
        if (freq[i] == 0) continue;
        if (c1 < 0 || freq[i] <= freq[c1]) { c2 = c1; c1 = i; }
        else if (c2 < 0 || freq[i] <= freq[c2]) c2 = i;
      }
      if (c2 < 0) break;
      freq[c1] += freq[c2];
      freq[c2] = 0;
      codesize[c1]++;
      while (others[c1] >= 0) { c1 = others[c1]; codesize[c1]++; }
      others[c1] = c2;
      codesize[c2]++;
      while (others[c2] >= 0) { c2 = others[c2]; codesize[c2]++; }
    }
    std::vector<int> count(258, 0);
    for (int i = 0; i < 257; i++) if (codesize[i]) count[codesize[i]]++;
    for (int i = 257; i > 16; i--) {
      while (count[i] > 0) {
        int j = i - 2;
        while (count[j] == 0) j--;
        count[i] -= 2;
        count[i - 1] += 1;
        count[j + 1] += 2;
        count[j] -= 1;
      }
    }
    int top = 16;
    while (count[top] == 0) top--;
    count[top]--;  // the reserved code
    for (int l = 1; l <= 16; l++) bits[l] = (uint8_t)count[l];
    vals.clear();
    for (int l = 1; l <= 257; l++)
      for (int s = 0; s < 256; s++) if (codesize[s] == l) vals.push_back((uint8_t)s);
    // Canonical codes in the order of vals.
    int k = 0, c = 0;
    for (int l = 1; l <= 16; l++) {
      for (int n = 0; n < bits[l]; n++, k++) {
        code[vals[k]] = (uint16_t)c++;
        size[vals[k]] = (uint8_t)l;
      }
      c <<= 1;
    }
  }
};

struct BitWriter {
  std::vector<uint8_t>& out;
  uint32_t acc = 0;
  int n = 0;
  explicit BitWriter(std::vector<uint8_t>& o) : out(o) {}
  void put(uint32_t v, int len) {
    acc = (acc << len) | (v & ((1u << len) - 1));
    n += len;
    while (n >= 8) {
      uint8_t b = (uint8_t)(acc >> (n - 8));
      out.push_back(b);
      if (b == 0xff) out.push_back(0);
      n -= 8;
    }
    acc &= (1u << n) - 1;
  }
  void flush() {
    if (n > 0) put((1u << (8 - n)) - 1, 8 - n);
  }
};

void marker(std::vector<uint8_t>& o, uint8_t m, int len) {
  o.push_back(0xff);
  o.push_back(m);
  if (len >= 0) { o.push_back((uint8_t)(len >> 8)); o.push_back((uint8_t)len); }
}

// Encodes rgb (w*h*3) into a JFIF file.
std::vector<uint8_t> encode(const uint8_t* rgb, int w, int h, int quality) {
  uint8_t qt[2][64];
  scaledTable(kLuma, quality, qt[0]);
  scaledTable(kChroma, quality, qt[1]);
  const int mw = (w + 15) / 16, mh = (h + 15) / 16;
  // Quantized blocks in scan order: per MCU four luma blocks, then Cb, then Cr.
  std::vector<int16_t> blocks((size_t)mw * mh * 6 * 64);
  float Y[4][64], Cb[64], Cr[64];
  for (int my = 0; my < mh; my++) {
    for (int mx = 0; mx < mw; mx++) {
      std::fill(Cb, Cb + 64, 0.f);
      std::fill(Cr, Cr + 64, 0.f);
      for (int py = 0; py < 16; py++) {
        int y = std::min(h - 1, my * 16 + py);
        for (int px = 0; px < 16; px++) {
          int x = std::min(w - 1, mx * 16 + px);
          const uint8_t* p = rgb + ((size_t)y * w + x) * 3;
          float r = p[0], g = p[1], b = p[2];
          Y[(py >> 3) * 2 + (px >> 3)][(py & 7) * 8 + (px & 7)] = 0.299f * r + 0.587f * g + 0.114f * b - 128.f;
          int ci = (py >> 1) * 8 + (px >> 1);
          Cb[ci] += 0.25f * (-0.168736f * r - 0.331264f * g + 0.5f * b);
          Cr[ci] += 0.25f * (0.5f * r - 0.418688f * g - 0.081312f * b);
        }
      }
      int16_t* dst = &blocks[((size_t)my * mw + mx) * 6 * 64];
      for (int k = 0; k < 4; k++) transform(Y[k], qt[0], dst + k * 64);
      transform(Cb, qt[1], dst + 4 * 64);
      transform(Cr, qt[1], dst + 5 * 64);
    }
  }
  // Symbol frequencies: tables 0 (luma) and 1 (chroma), DC and AC.
  uint32_t fdc[2][256] = {{0}}, fac[2][256] = {{0}};
  auto scan = [&](auto&& emitDc, auto&& emitAc) {
    int pred[3] = {0, 0, 0};
    size_t nb = (size_t)mw * mh * 6;
    for (size_t b = 0; b < nb; b++) {
      int comp = (int)(b % 6) < 4 ? 0 : (int)(b % 6) - 3;
      int t = comp == 0 ? 0 : 1;
      const int16_t* z = &blocks[b * 64];
      int diff = z[0] - pred[comp];
      pred[comp] = z[0];
      emitDc(t, diff);
      int run = 0;
      for (int k = 1; k < 64; k++) {
        if (z[k] == 0) { run++; continue; }
        while (run > 15) { emitAc(t, 0xf0, 0); run -= 16; }
        emitAc(t, (run << 4) | category(z[k]), z[k]);
        run = 0;
      }
      if (run > 0) emitAc(t, 0x00, 0);
    }
  };
  scan([&](int t, int d) { fdc[t][category(d)]++; }, [&](int t, int sym, int) { fac[t][sym]++; });
  Huffman hdc[2], hac[2];
  for (int t = 0; t < 2; t++) { hdc[t].build(fdc[t]); hac[t].build(fac[t]); }

  std::vector<uint8_t> o;
  o.reserve((size_t)w * h / 4 + 1024);
  marker(o, 0xd8, -1);
  marker(o, 0xe0, 16);
  const uint8_t jfif[] = {'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0};
  o.insert(o.end(), jfif, jfif + sizeof jfif);
  marker(o, 0xdb, 2 + 2 * 65);
  for (int t = 0; t < 2; t++) {
    o.push_back((uint8_t)t);
    for (int k = 0; k < 64; k++) o.push_back(qt[t][kZigzag.at[k]]);
  }
  marker(o, 0xc0, 17);
  const uint8_t sof[] = {8, (uint8_t)(h >> 8), (uint8_t)h, (uint8_t)(w >> 8), (uint8_t)w, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1};
  o.insert(o.end(), sof, sof + sizeof sof);
  auto dht = [&](int cls, int id, const Huffman& hf) {
    marker(o, 0xc4, 2 + 1 + 16 + (int)hf.vals.size());
    o.push_back((uint8_t)((cls << 4) | id));
    for (int l = 1; l <= 16; l++) o.push_back(hf.bits[l]);
    o.insert(o.end(), hf.vals.begin(), hf.vals.end());
  };
  dht(0, 0, hdc[0]); dht(1, 0, hac[0]); dht(0, 1, hdc[1]); dht(1, 1, hac[1]);
  marker(o, 0xda, 12);
  const uint8_t sos[] = {3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0};
  o.insert(o.end(), sos, sos + sizeof sos);
  BitWriter bw(o);
  auto magnitude = [](int v, int n) -> uint32_t { return v < 0 ? (uint32_t)(v + (1 << n) - 1) : (uint32_t)v; };
  scan(
      [&](int t, int d) {
        int n = category(d);
        bw.put(hdc[t].code[n], hdc[t].size[n]);
        if (n) bw.put(magnitude(d, n), n);
      },
      [&](int t, int sym, int v) {
        bw.put(hac[t].code[sym], hac[t].size[sym]);
        int n = sym & 15;
        if (n) bw.put(magnitude(v, n), n);
      });
  bw.flush();
  marker(o, 0xd9, -1);
  return o;
}

// encode(rgb: Uint8Array, width, height, outWidth, outHeight, quality, callback(err, Buffer)):
// the picture resampled to outWidth x outHeight, as JPEG.
struct Work {
  napi_async_work work = nullptr;
  napi_ref input = nullptr;
  napi_ref callback = nullptr;
  const uint8_t* rgb = nullptr;
  int w = 0, h = 0, ow = 0, oh = 0, quality = 80;
  std::vector<uint8_t> out;
};

void Execute(napi_env, void* data) {
  Work* wk = static_cast<Work*>(data);
  if (wk->ow == wk->w && wk->oh == wk->h) {
    wk->out = encode(wk->rgb, wk->w, wk->h, wk->quality);
  } else {
    // The network input's resize (darknet's bilinear, src/kernels/resize.cc); its scratch is freed
    // with the picture rather than kept by each pool thread.
    std::vector<uint8_t> sized((size_t)wk->ow * wk->oh * 3);
    zqimg::ResizeScratch scratch;
    zqimg::resizeDarknet({wk->rgb, wk->w, wk->h, wk->ow, wk->oh, sized.data(), nullptr, wk->ow, wk->oh, 0, 0}, scratch);
    wk->out = encode(sized.data(), wk->ow, wk->oh, wk->quality);
  }
}

void Complete(napi_env env, napi_status status, void* data) {
  Work* wk = static_cast<Work*>(data);
  napi_value cb, global, args[2];
  napi_get_reference_value(env, wk->callback, &cb);
  napi_get_global(env, &global);
  if (status != napi_ok) {
    napi_value msg;
    napi_create_string_utf8(env, "JPEG encoding was cancelled", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, nullptr, msg, &args[0]);
    napi_get_undefined(env, &args[1]);
  } else {
    napi_get_null(env, &args[0]);
    void* buf;
    napi_create_buffer_copy(env, wk->out.size(), wk->out.data(), &buf, &args[1]);
  }
  napi_delete_reference(env, wk->input);
  napi_delete_reference(env, wk->callback);
  napi_delete_async_work(env, wk->work);
  delete wk;
  napi_call_function(env, global, cb, 2, args, nullptr);
}

napi_value Encode(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  bool isTyped = false;
  if (argc < 7 || napi_is_typedarray(env, argv[0], &isTyped) != napi_ok || !isTyped) {
    napi_throw_type_error(env, "ZQ_NATIVE", "encode(rgb: Uint8Array, width, height, outWidth, outHeight, quality, callback)");
    return nullptr;
  }
  napi_typedarray_type type;
  size_t length;
  void* data;
  napi_get_typedarray_info(env, argv[0], &type, &length, &data, nullptr, nullptr);
  int32_t w = 0, h = 0, ow = 0, oh = 0, q = 0;
  napi_get_value_int32(env, argv[1], &w);
  napi_get_value_int32(env, argv[2], &h);
  napi_get_value_int32(env, argv[3], &ow);
  napi_get_value_int32(env, argv[4], &oh);
  napi_get_value_int32(env, argv[5], &q);
  if (type != napi_uint8_array || w < 1 || h < 1 || w > 65535 || h > 65535 || (size_t)w * h * 3 != length || ow < 1 || oh < 1 || ow > 65535 ||
      oh > 65535 || q < 1 || q > 100) {
    napi_throw_range_error(env, "ZQ_NATIVE", "encode: rgb must be a Uint8Array of width*height*3 bytes, sizes 1..65535, quality 1..100");
    return nullptr;
  }
  Work* wk = new Work();
  wk->rgb = static_cast<const uint8_t*>(data);
  wk->w = w;
  wk->h = h;
  wk->ow = ow;
  wk->oh = oh;
  wk->quality = q;
  napi_create_reference(env, argv[0], 1, &wk->input);  // keeps the pixels alive while encoding
  napi_create_reference(env, argv[6], 1, &wk->callback);
  napi_value name;
  napi_create_string_utf8(env, "zeroq:jpeg", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, nullptr, name, Execute, Complete, wk, &wk->work);
  napi_queue_async_work(env, wk->work);
  return nullptr;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {{"encode", nullptr, Encode, nullptr, nullptr, nullptr, napi_default, nullptr}};
  napi_define_properties(env, exports, 1, props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
