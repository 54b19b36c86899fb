/*
 * Unit tests of the bridge firmware: CRC-32, COBS, the frame parser, SHA-256, the C model of the
 * accelerator on hand-worked layers, and the protocol state machine driven packet by packet.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "accel_model.h"
#include "bridge.h"
#include "cobs.h"
#include "crc32.h"
#include "frame.h"
#include "hal_accel.h"
#include "hal_test.h"
#include "image.h"
#include "proto.h"
#include "sha256.h"
#include "tiny_image.h"

static int failures, checks;

#define CHECK(cond, ...)                                   \
  do {                                                     \
    checks++;                                              \
    if (!(cond)) {                                         \
      failures++;                                          \
      printf("FAIL %s:%d: ", __FILE__, __LINE__);          \
      printf(__VA_ARGS__);                                 \
      printf("\n");                                        \
    }                                                      \
  } while (0)

static uint32_t rnd_state = 1;
static uint32_t rnd(void) {
  rnd_state ^= rnd_state << 13;
  rnd_state ^= rnd_state >> 17;
  rnd_state ^= rnd_state << 5;
  return rnd_state;
}

/* ---- CRC-32 ---- */
static void test_crc(void) {
  const uint8_t s[] = "123456789";
  CHECK(crc32_update(0, s, 9) == 0xCBF43926u, "crc32 check value %08x", crc32_update(0, s, 9));
  CHECK(crc32_update(0, s, 0) == 0, "crc32 of nothing");
  uint32_t c = crc32_update(0, s, 4);
  c = crc32_update(c, s + 4, 5);
  CHECK(c == 0xCBF43926u, "crc32 in pieces");
  const uint8_t a[] = "The quick brown fox jumps over the lazy dog";
  CHECK(crc32_update(0, a, 43) == 0x414FA339u, "crc32 fox %08x", crc32_update(0, a, 43));
}

/* ---- COBS ---- */
static void cobs_case(const char *name, const uint8_t *in, size_t n, const uint8_t *want, size_t wn) {
  uint8_t out[600], back[600];
  size_t m = cobs_encode(in, n, out);
  CHECK(m == wn && memcmp(out, want, wn) == 0, "cobs encode %s (%zu bytes, want %zu)", name, m, wn);
  long d = cobs_decode(out, m, back);
  CHECK(d == (long)n && (n == 0 || memcmp(back, in, n) == 0), "cobs decode %s", name);
  for (size_t i = 0; i < m; i++) CHECK(out[i] != 0, "cobs %s: no zero in the encoding", name);
}

static void test_cobs(void) {
  cobs_case("00", (const uint8_t[]){ 0 }, 1, (const uint8_t[]){ 1, 1 }, 2);
  cobs_case("00 00", (const uint8_t[]){ 0, 0 }, 2, (const uint8_t[]){ 1, 1, 1 }, 3);
  cobs_case("11 22 00 33", (const uint8_t[]){ 0x11, 0x22, 0, 0x33 }, 4, (const uint8_t[]){ 3, 0x11, 0x22, 2, 0x33 }, 5);
  cobs_case("11 22 33 44", (const uint8_t[]){ 0x11, 0x22, 0x33, 0x44 }, 4, (const uint8_t[]){ 5, 0x11, 0x22, 0x33, 0x44 }, 5);
  cobs_case("11 00 00 00", (const uint8_t[]){ 0x11, 0, 0, 0 }, 4, (const uint8_t[]){ 2, 0x11, 1, 1, 1 }, 5);
  cobs_case("empty", (const uint8_t[]){ 0 }, 0, (const uint8_t[]){ 1 }, 1);
  /* 254 non-zero bytes fill one block; the encoder then opens an empty one. */
  uint8_t in[300], want[300];
  for (int i = 0; i < 254; i++) in[i] = (uint8_t)(i + 1);
  want[0] = 0xFF;
  memcpy(want + 1, in, 254);
  want[255] = 1;
  cobs_case("01..FE", in, 254, want, 256);
  /* 00 then 254 non-zero bytes. */
  uint8_t in2[255], want2[258];
  in2[0] = 0;
  memcpy(in2 + 1, in, 254);
  want2[0] = 1;
  want2[1] = 0xFF;
  memcpy(want2 + 2, in, 254);
  want2[256] = 1;
  cobs_case("00 01..FE", in2, 255, want2, 257);
  /* Round trips of random data with zeros; overhead bound. */
  for (int t = 0; t < 2000; t++) {
    uint8_t a[700], e[COBS_MAX(700)], b[700];
    size_t n = rnd() % 700;
    for (size_t i = 0; i < n; i++) a[i] = (rnd() % 4 == 0) ? 0 : (uint8_t)rnd();
    size_t m = cobs_encode(a, n, e);
    long d = cobs_decode(e, m, b);
    if (d != (long)n || memcmp(a, b, n) != 0 || m > COBS_MAX(n) || memchr(e, 0, m)) {
      CHECK(0, "cobs random round trip %d (n %zu)", t, n);
      break;
    }
  }
  CHECK(cobs_decode((const uint8_t[]){ 5, 1, 2 }, 3, (uint8_t[8]){ 0 }) == -1, "cobs: code past the end refused");
  CHECK(cobs_decode((const uint8_t[]){ 3, 1, 0, 2 }, 4, (uint8_t[8]){ 0 }) == -1, "cobs: zero inside refused");
}

/* ---- frame parser ---- */
static size_t make_frame(uint8_t *wire, uint8_t type, uint16_t seq, const uint8_t *pl, uint16_t len) {
  static uint8_t scratch[FRAME_PKT_MAX];
  return frame_encode(type, 0, seq, pl, len, scratch, wire);
}

static void test_frames(void) {
  static frame_rx_t rx;
  static uint8_t wire[4 * FRAME_WIRE_MAX];
  frame_rx_init(&rx);
  uint8_t pl[300];
  for (int i = 0; i < 300; i++) pl[i] = (uint8_t)(i * 7); /* holds zeros */
  size_t n = make_frame(wire, 0x21, 0xBEEF, pl, 300);
  CHECK(n >= 310 + 2 && n <= COBS_MAX(310) + 1, "frame length %zu", n);
  packet_t p;
  int got;
  size_t used = frame_rx_feed(&rx, wire, n, &p, &got);
  CHECK(got && used == n && p.type == 0x21 && p.seq == 0xBEEF && p.len == 300 && memcmp(p.payload, pl, 300) == 0,
        "a frame is parsed");
  /* Byte by byte, after garbage, two frames back to back, an empty frame between. */
  size_t m = 0;
  uint8_t junk[] = { 0x55, 0x13, 0xFF, 0x00, 0x00 };
  memcpy(wire, junk, sizeof junk);
  m = sizeof junk;
  m += make_frame(wire + m, 0x01, 1, pl, 4);
  wire[m++] = 0;
  m += make_frame(wire + m, 0x02, 2, pl + 4, 0);
  frame_rx_init(&rx);
  int seen = 0;
  uint16_t seqs[4];
  for (size_t i = 0; i < m; i++) {
    frame_rx_feed(&rx, wire + i, 1, &p, &got);
    if (got && seen < 4) seqs[seen++] = p.seq;
  }
  CHECK(seen == 2 && seqs[0] == 1 && seqs[1] == 2, "two frames after garbage (%d)", seen);
  CHECK(rx.cobs_errors == 1, "the garbage counts as one bad frame (%u)", rx.cobs_errors);
  /* One corrupted byte: CRC error, nothing delivered, the next frame fine. */
  frame_rx_init(&rx);
  n = make_frame(wire, 0x03, 7, pl, 200);
  wire[50] ^= 0x10;
  if (wire[50] == 0) wire[50] = 0x33;
  n += make_frame(wire + n, 0x03, 8, pl, 200);
  used = frame_rx_feed(&rx, wire, n, &p, &got);
  CHECK(got && p.seq == 8, "after a corrupted frame the next one is parsed");
  CHECK(rx.crc_errors + rx.cobs_errors == 1, "the corrupted frame is counted (crc %u cobs %u)", rx.crc_errors, rx.cobs_errors);
  /* A frame longer than the buffer: an overrun, then back in step. */
  frame_rx_init(&rx);
  memset(wire, 0x41, sizeof rx.buf + 10);
  m = sizeof rx.buf + 10;
  wire[m++] = 0;
  m += make_frame(wire + m, 0x02, 9, pl, 10);
  size_t off = 0;
  seen = 0;
  while (off < m) {
    off += frame_rx_feed(&rx, wire + off, m - off, &p, &got);
    if (got) seen += p.seq == 9;
  }
  CHECK(rx.overruns == 1 && seen == 1, "overrun counted and the next frame parsed");
  /* A frame whose len field disagrees with its size. */
  frame_rx_init(&rx);
  uint8_t raw[20] = { 0x02, 0, 1, 0, 5, 0, 1, 2, 3 }; /* says 5 payload bytes, holds 3 */
  uint32_t c = crc32_update(0, raw, 9);
  wr32(raw + 9, c);
  uint8_t enc[40];
  size_t e = cobs_encode(raw, 13, enc);
  enc[e++] = 0;
  frame_rx_feed(&rx, enc, e, &p, &got);
  CHECK(!got && rx.cobs_errors == 1, "length mismatch refused");
  /* The largest payload passes. */
  frame_rx_init(&rx);
  static uint8_t big[CAP_MAX_PAYLOAD];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)rnd();
  n = make_frame(wire, 0x11, 3, big, CAP_MAX_PAYLOAD);
  frame_rx_feed(&rx, wire, n, &p, &got);
  CHECK(got && p.len == CAP_MAX_PAYLOAD && memcmp(p.payload, big, sizeof big) == 0, "largest payload");
}

/* ---- SHA-256 ---- */
static void hex(const uint8_t *d, char *out) {
  for (int i = 0; i < 32; i++) sprintf(out + 2 * i, "%02x", d[i]);
}
static void test_sha(void) {
  uint8_t d[32];
  char h[65];
  sha256_t s;
  sha256_init(&s);
  sha256_update(&s, (const uint8_t *)"abc", 3);
  sha256_final(&s, d);
  hex(d, h);
  CHECK(!strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "sha256 abc %s", h);
  sha256_init(&s);
  sha256_final(&s, d);
  hex(d, h);
  CHECK(!strcmp(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), "sha256 empty %s", h);
  const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  sha256_init(&s);
  for (size_t i = 0; i < strlen(m); i++) sha256_update(&s, (const uint8_t *)m + i, 1);
  sha256_final(&s, d);
  hex(d, h);
  CHECK(!strcmp(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"), "sha256 448 bits %s", h);
  static uint8_t mil[1000000];
  memset(mil, 'a', sizeof mil);
  sha256_init(&s);
  sha256_update(&s, mil, sizeof mil);
  sha256_final(&s, d);
  hex(d, h);
  CHECK(!strcmp(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"), "sha256 a million a %s", h);
}

/* ---- the C model on hand-worked layers ---- */
static uint8_t amem[4096];
enum { IN = 0, OUT = 1024, WGT = 2048, PAR = 3072 };

typedef struct {
  uint32_t C, H, W, O, Ho, Wo, k, s, pad, G, flags;
} shape_t;

static void param(int o, int32_t B, int16_t M, int8_t TS, int8_t OS) {
  uint8_t *p = amem + PAR + 8 * o;
  wr32(p, (uint32_t)B);
  wr16(p + 4, (uint16_t)M);
  p[6] = (uint8_t)TS;
  p[7] = (uint8_t)OS;
}

static uint32_t run(shape_t s) {
  const uint32_t v[][2] = { { ACC_IN_ADDR, IN }, { ACC_OUT_ADDR, OUT }, { ACC_W_ADDR, WGT }, { ACC_P_ADDR, PAR },
                            { ACC_IN_C, s.C }, { ACC_IN_H, s.H }, { ACC_IN_W, s.W }, { ACC_OUT_C, s.O },
                            { ACC_OUT_H, s.Ho }, { ACC_OUT_W, s.Wo }, { ACC_KSIZE, s.k }, { ACC_STRIDE, s.s },
                            { ACC_PAD, s.pad }, { ACC_GROUPS, s.G }, { ACC_FLAGS, s.flags } };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) model_accel_write(v[i][0], v[i][1]);
  model_accel_write(ACC_CTRL, 1);
  return model_accel_read(ACC_STATUS);
}

static void set_in(const int *x, int n) { for (int i = 0; i < n; i++) amem[IN + i] = (uint8_t)x[i]; }
static void set_w(const int *q, int n) { for (int i = 0; i < n; i++) amem[WGT + i] = (uint8_t)q[i]; }
static int out8(int i) { return (int8_t)amem[OUT + i]; }
static int out16(int i) { return (int16_t)(amem[OUT + 2 * i] | (amem[OUT + 2 * i + 1] << 8)); }

static void expect8(const char *name, const int *want, int n) {
  for (int i = 0; i < n; i++) CHECK(out8(i) == want[i], "%s: out[%d] = %d, want %d", name, i, out8(i), want[i]);
}
static void expect16(const char *name, const int *want, int n) {
  for (int i = 0; i < n; i++) CHECK(out16(i) == want[i], "%s: out[%d] = %d, want %d", name, i, out16(i), want[i]);
}

static void test_model(void) {
  model_accel_attach(amem, sizeof amem);
  uint32_t id = model_accel_read(ACC_ID);
  CHECK((id & 0xff) == 1 && ((id >> 8) & 0xff) >= 3, "ID: version 1, k up to %u", (id >> 8) & 0xff);
  const shape_t one = { 1, 1, 2, 1, 1, 2, 1, 1, 0, 1, 0 };

  /* 1x1: Y = Q·X + B. 3·10 + 5 = 35, 3·(−20) + 5 = −55. */
  set_in((const int[]){ 10, -20 }, 2);
  set_w((const int[]){ 3 }, 1);
  param(0, 5, 0, 0, 0);
  CHECK(run(one) == ACC_ST_DONE, "1x1 done");
  expect8("1x1", (const int[]){ 35, -55 }, 2);

  /* Zero-centering term and rounding: T = rshr(3·S, 2): S = 10 → rshr(30, 2) = floor(32/4) = 8;
   * S = −20 → rshr(−60, 2) = floor(−58/4) = −15. Y = 30 + 8 + 5 = 43, −60 − 15 + 5 = −70.
   * OS = 1: rshr(43, 1) = floor(44/2) = 22; rshr(−70, 1) = floor(−69/2) = −35. */
  param(0, 5, 3, 2, 1);
  run(one);
  expect8("window sum and rounding", (const int[]){ 22, -35 }, 2);

  /* Saturation: 127·127 = 16129 → 127; 127·(−128) = −16256 → −128; 16-bit keeps them. */
  set_in((const int[]){ 127, -128 }, 2);
  set_w((const int[]){ 127 }, 1);
  param(0, 0, 0, 0, 0);
  run(one);
  expect8("saturation 8-bit", (const int[]){ 127, -128 }, 2);
  shape_t one16 = one;
  one16.flags = ACC_FL_OUT16;
  run(one16);
  expect16("16-bit output", (const int[]){ 16129, -16256 }, 2);
  CHECK(amem[OUT] == 0x01 && amem[OUT + 1] == 0x3F, "16-bit output is little-endian (16129 = 0x3F01)");

  /* Extreme output shifts: OS = −16 saturates any Y ≠ 0 (16-bit), keeps 0; OS = 63 gives 0. */
  set_in((const int[]){ 127, 0 }, 2);
  param(0, 0, 0, 0, -16);
  run(one16);
  expect16("OS = -16", (const int[]){ 32767, 0 }, 2);
  set_in((const int[]){ -128, 0 }, 2);
  run(one16);
  expect16("OS = -16 negative", (const int[]){ -32768, 0 }, 2);
  set_in((const int[]){ 127, -128 }, 2);
  param(0, 0, 0, 0, 63);
  run(one16);
  expect16("OS = 63", (const int[]){ 0, 0 }, 2);
  /* OS = 14: rshr(16129, 14) = floor((16129 + 8192)/16384) = 1; rshr(−16256, 14) = floor(−8064/16384) = −1. */
  param(0, 0, 0, 0, 14);
  run(one16);
  expect16("OS = 14", (const int[]){ 1, -1 }, 2);

  /* Negative TS (a left shift of M·S): M = 2, S = 5, TS = −3: T = 80; Y = 1·5 + 80 = 85.
   * OS = −1: 170, saturating to 127 in 8 bits, kept in 16. TS = 63: T = 0, Y = 5. */
  set_in((const int[]){ 5 }, 1);
  set_w((const int[]){ 1 }, 1);
  const shape_t single = { 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0 };
  param(0, 0, 2, -3, -1);
  run(single);
  expect8("negative TS, negative OS, 8-bit", (const int[]){ 127 }, 1);
  shape_t single16 = single;
  single16.flags = ACC_FL_OUT16;
  run(single16);
  expect16("negative TS, negative OS, 16-bit", (const int[]){ 170 }, 1);
  param(0, 0, 32767, 63, 0);
  run(single16);
  expect16("TS = 63", (const int[]){ 5 }, 1);
  /* TS = −32 (its lowest): M = 1, S = 5 → T = 5·2^32: far past 16 bits, saturates. */
  param(0, 0, 1, -32, 0);
  run(single16);
  expect16("TS = -32", (const int[]){ 32767 }, 1);

  /* Leaky: rshr(Y·3277, 15). Y = −100: floor((−327700 + 16384)/32768) = −10; −5: floor(−1/32768) = −1;
   * −4: floor(3276/32768) = 0; 7 stays. ReLU: 0, 0, 0, 7. */
  const shape_t four = { 1, 1, 4, 1, 1, 4, 1, 1, 0, 1, ACC_FL_LEAKY };
  set_in((const int[]){ -100, -5, -4, 7 }, 4);
  set_w((const int[]){ 1 }, 1);
  param(0, 0, 0, 0, 0);
  run(four);
  expect8("leaky", (const int[]){ -10, -1, 0, 7 }, 4);
  shape_t relu = four;
  relu.flags = ACC_FL_RELU;
  run(relu);
  expect8("relu", (const int[]){ 0, 0, 0, 7 }, 4);

  /* 3x3, pad 1, on 1..9 with all-ones weights: each output is the sum of its neighbourhood. */
  set_in((const int[]){ 1, 2, 3, 4, 5, 6, 7, 8, 9 }, 9);
  set_w((const int[]){ 1, 1, 1, 1, 1, 1, 1, 1, 1 }, 9);
  param(0, 0, 0, 0, 0);
  const shape_t k3 = { 1, 3, 3, 1, 3, 3, 3, 1, 1, 1, 0 };
  run(k3);
  expect8("3x3 pad 1", (const int[]){ 12, 21, 16, 27, 45, 33, 24, 39, 28 }, 9);
  /* Stride 2: outputs at (0,0), (0,2), (2,0), (2,2). With M = 1, TS = 0 the window sum doubles them
   * (padding adds 0 to S as to ACC). */
  const shape_t k3s2 = { 1, 3, 3, 1, 2, 2, 3, 2, 1, 1, 0 };
  run(k3s2);
  expect8("3x3 stride 2", (const int[]){ 12, 16, 24, 28 }, 4);
  param(0, 0, 1, 0, 0);
  run(k3s2);
  expect8("3x3 stride 2 with the window sum", (const int[]){ 24, 32, 48, 56 }, 4);
  /* No padding, stride 2 on 3x3: one output, 45. */
  param(0, 0, 0, 0, 0);
  run((shape_t){ 1, 3, 3, 1, 1, 1, 3, 2, 0, 1, 0 });
  expect8("3x3 no pad", (const int[]){ 45 }, 1);

  /* Depthwise: G = C = O = 2, each output reads its own channel: 2·3 = 6, 7·5 = 35. */
  set_in((const int[]){ 3, 5 }, 2);
  set_w((const int[]){ 2, 7 }, 2);
  param(0, 0, 0, 0, 0);
  param(1, 0, 0, 0, 0);
  run((shape_t){ 2, 1, 1, 2, 1, 1, 1, 1, 0, 2, 0 });
  expect8("depthwise", (const int[]){ 6, 35 }, 2);
  /* Groups: C = 4, O = 2, G = 2: o0 = 1·1 + 1·2 = 3 over channels 0, 1; o1 = 1·3 − 1·4 = −1 over 2, 3.
   * The window sum is per group: S0 = 3, S1 = 7; with M = 1: 6 and 6. */
  set_in((const int[]){ 1, 2, 3, 4 }, 4);
  set_w((const int[]){ 1, 1, 1, -1 }, 4);
  run((shape_t){ 4, 1, 1, 2, 1, 1, 1, 1, 0, 2, 0 });
  expect8("groups", (const int[]){ 3, -1 }, 2);
  param(0, 0, 1, 0, 0);
  param(1, 0, 1, 0, 0);
  run((shape_t){ 4, 1, 1, 2, 1, 1, 1, 1, 0, 2, 0 });
  expect8("groups with the window sum", (const int[]){ 6, 6 }, 2);

  /* uint8 input: bytes 200, 255 are 200, 255 (→ rshr(·, 1) = 100, 128 → 127); read signed
   * they are −56, −1 (→ −28, 0). */
  amem[IN] = 200;
  amem[IN + 1] = 255;
  set_w((const int[]){ 1 }, 1);
  param(0, 0, 0, 0, 1);
  shape_t u8 = one;
  u8.flags = ACC_FL_UINT8_IN;
  run(u8);
  expect8("uint8 input", (const int[]){ 100, 127 }, 2);
  run(one);
  expect8("the same bytes signed", (const int[]){ -28, 0 }, 2);
  /* uint8 window sum: M = −1, TS = 0: T = −S = −455; Y = 455 − 455 + 1000 = 1000; OS = 3 → 125. */
  amem[IN] = 200;
  amem[IN + 1] = 255;
  set_w((const int[]){ 1, 1 }, 2);
  param(0, 1000, -1, 0, 3);
  run((shape_t){ 2, 1, 1, 1, 1, 1, 1, 1, 0, 1, ACC_FL_UINT8_IN });
  expect8("uint8 with the window sum", (const int[]){ 125 }, 1);

  /* Errors: kernel 0, pad ≥ k, stride 3, groups not dividing, memory past the end. */
  CHECK((run((shape_t){ 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0 }) >> 8 & 0xff) == ACC_ERR_SHAPE, "k = 0 refused");
  CHECK((run((shape_t){ 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0 }) >> 8 & 0xff) == ACC_ERR_SHAPE, "pad >= k refused");
  CHECK((run((shape_t){ 1, 1, 1, 1, 1, 1, 1, 3, 0, 1, 0 }) >> 8 & 0xff) == ACC_ERR_SHAPE, "stride 3 refused");
  CHECK((run((shape_t){ 3, 1, 1, 2, 1, 1, 1, 1, 0, 2, 0 }) >> 8 & 0xff) == ACC_ERR_SHAPE, "groups refused");
  CHECK(run((shape_t){ 80, 8, 8, 1, 8, 8, 1, 1, 0, 1, 0 }) & ACC_ST_ERROR, "input past the memory refused");
  CHECK((model_accel_read(ACC_STATUS) >> 8 & 0xff) == ACC_ERR_MEMORY, "memory error code");
}

/* ---- the protocol state machine ---- */
static uint8_t bmem[1 << 20];
static uint16_t next_seq = 100;

typedef struct {
  uint8_t type, status;
  uint16_t seq, len;
  uint8_t payload[CAP_MAX_PAYLOAD];
} resp_t;

static int n_resp;
static resp_t resp[8];

/* Sends one request; collects the responses it causes (and those of polling until idle). */
static void request(uint8_t type, const uint8_t *pl, uint16_t len) {
  static uint8_t wire[FRAME_WIRE_MAX];
  size_t n = make_frame(wire, type, next_seq++, pl, len);
  test_tx_len = 0;
  bridge_rx(wire, n);
  while (bridge_busy()) bridge_poll();
  static frame_rx_t rx;
  frame_rx_init(&rx);
  n_resp = 0;
  size_t off = 0;
  while (off < test_tx_len) {
    packet_t p;
    int got;
    off += frame_rx_feed(&rx, test_tx + off, test_tx_len - off, &p, &got);
    if (got && n_resp < 8) {
      resp[n_resp].type = p.type;
      resp[n_resp].status = p.status;
      resp[n_resp].seq = p.seq;
      resp[n_resp].len = p.len;
      memcpy(resp[n_resp].payload, p.payload, p.len);
      n_resp++;
    }
  }
}

static void upload(const uint8_t *img, size_t size, uint8_t want_status, const char *name) {
  uint8_t pl[64], sha[32];
  sha256_t s;
  sha256_init(&s);
  sha256_update(&s, img, size);
  sha256_final(&s, sha);
  wr32(pl, (uint32_t)size);
  memcpy(pl + 4, sha, 32);
  request(MSG_UPLOAD_BEGIN, pl, 36);
  CHECK(n_resp == 1 && resp[0].status == 0 && resp[0].payload[0] == 0, "%s: BEGIN", name);
  uint16_t token = rd16(resp[0].payload + 2);
  static uint8_t d[600];
  /* Two chunks, the second sent twice (a retry). */
  size_t half = size / 2;
  wr16(d, token);
  wr32(d + 2, 0);
  memcpy(d + 6, img, half);
  request(MSG_UPLOAD_DATA, d, (uint16_t)(6 + half));
  CHECK(n_resp == 1 && resp[0].status == 0, "%s: first chunk", name);
  wr32(d + 2, (uint32_t)half);
  memcpy(d + 6, img + half, size - half);
  request(MSG_UPLOAD_DATA, d, (uint16_t)(6 + size - half));
  request(MSG_UPLOAD_DATA, d, (uint16_t)(6 + size - half));
  CHECK(n_resp == 1 && resp[0].status == 0, "%s: chunk again", name);
  wr16(pl, token);
  request(MSG_UPLOAD_END, pl, 2);
  CHECK(n_resp == 1 && resp[0].status == want_status, "%s: END status %u, want %u (%.*s)", name, resp[0].status,
        want_status, resp[0].len, (const char *)resp[0].payload);
  if (want_status == 0) CHECK(memcmp(resp[0].payload, sha, 32) == 0, "%s: END names the digest", name);
}

static void test_bridge(void) {
  model_accel_attach(bmem, sizeof bmem);
  test_nv_clear();
  bridge_init();
  uint8_t pl[64];

  /* HELLO: capabilities, no image. */
  pl[0] = 1;
  pl[1] = 1;
  wr16(pl + 2, 4104);
  request(MSG_HELLO, pl, 4);
  CHECK(n_resp == 1 && resp[0].type == (MSG_HELLO | 0x80) && resp[0].status == 0 && resp[0].len == HELLO_BYTES,
        "HELLO answered");
  CHECK(resp[0].seq == next_seq - 1, "the response carries the request's seq");
  const uint8_t *h = resp[0].payload;
  CHECK(h[0] == 1 && h[5] == CAP_SLOTS && rd16(h + 2) == CAP_MAX_PAYLOAD && h[44] == 0, "HELLO fields");
  CHECK(rd32(h + 40) == 0x12345678u && rd32(h + 24) == sizeof bmem, "boot id and memory");
  pl[0] = 9;
  request(MSG_HELLO, pl, 4);
  CHECK(n_resp == 1 && resp[0].status == E_VERSION && resp[0].len == HELLO_BYTES, "another version: E_VERSION with the capabilities");

  /* Nothing to run yet. */
  uint8_t fd[16] = { 0 };
  request(MSG_FRAME_DATA, fd, 11);
  CHECK(n_resp == 1 && resp[0].status == E_STATE, "FRAME_DATA without an image: E_STATE");
  request(0x55, NULL, 0);
  CHECK(n_resp == 1 && resp[0].status == E_TYPE, "unknown type: E_TYPE");

  /* Upload. */
  static uint8_t img[512];
  size_t size = tiny_image(img, 2, -7);
  upload(img, size, 0, "tiny image");
  uint8_t sha[32];
  sha256_t s;
  sha256_init(&s);
  sha256_update(&s, img, size);
  sha256_final(&s, sha);
  pl[0] = 1;
  pl[1] = 0;
  request(MSG_HELLO, pl, 4);
  CHECK(resp[0].payload[44] == 1 && memcmp(resp[0].payload + 48, sha, 32) == 0 && rd32(resp[0].payload + 80) == size,
        "HELLO: the image is loaded, its digest and size");
  CHECK(!strcmp((const char *)resp[0].payload + 112, "tiny-test"), "HELLO: the image's name");
  /* The digest shortcut. */
  wr32(pl, (uint32_t)size);
  memcpy(pl + 4, sha, 32);
  request(MSG_UPLOAD_BEGIN, pl, 36);
  CHECK(n_resp == 1 && resp[0].status == 0 && resp[0].payload[0] == 1, "BEGIN of the held digest: already there");

  /* A frame: pixels (10, 20, 30), (200, 0, 255). Q = (1, 1, −1): ACC = 0, −55. S = 60, 455;
   * T = rshr(2·S, 1) = 60, 455. Y = ACC + T − 7 = 53, 393. OS = 0 + 8 − 8 = 0; 16-bit. */
  const uint8_t frame[6] = { 10, 20, 30, 200, 0, 255 };
  fd[0] = 0;
  wr32(fd + 1, 0);
  memcpy(fd + 5, frame, 6);
  request(MSG_FRAME_DATA, fd, 11);
  CHECK(n_resp == 1 && resp[0].status == 0 && resp[0].len == 0, "FRAME_DATA acknowledged");
  uint8_t inf[12] = { 0 };
  wr32(inf + 4, 77);
  wr32(inf + 8, crc32_update(0, frame, 6) ^ 1u);
  request(MSG_INFER, inf, 12);
  CHECK(n_resp == 1 && resp[0].status == E_INPUT, "INFER with the wrong CRC: E_INPUT");
  request(MSG_FRAME_DATA, fd, 11);
  wr32(inf + 8, crc32_update(0, frame, 6));
  request(MSG_INFER, inf, 12);
  CHECK(n_resp == 1 && resp[0].status == 0, "INFER answered when done");
  const uint8_t *r = resp[0].payload;
  const uint8_t want[4] = { 53, 0, 393 & 0xff, 393 >> 8 };
  CHECK(rd32(r) == 77 && r[5] == 1 && rd32(r + 8) == 4 && rd32(r + 12) == crc32_update(0, want, 4),
        "INFER response: frame id, heads, result size and CRC");
  CHECK(memcmp(r + 28, sha, 8) == 0 && rd16(r + 6) == 1 && rd16(r + 36) == 0, "INFER response: digest, layer counts");
  CHECK(rd16(r + 44) == 1 && rd16(r + 46) == 1 && rd16(r + 48) == 1 && rd16(r + 50) == 2 && r[52] == 16 &&
            (int16_t)rd16(r + 54) == 8 && rd32(r + 56) == 0,
        "INFER response: the head's layer, shape, format, offset");
  CHECK(rd32(r + 16) > 0, "accelerator cycles reported");
  uint8_t rq[12] = { 0, 0 };
  wr16(rq + 2, 4);
  wr32(rq + 4, 77);
  wr32(rq + 8, 0);
  request(MSG_READ, rq, 12);
  CHECK(n_resp == 1 && resp[0].status == 0 && resp[0].len == 12 && memcmp(resp[0].payload + 8, want, 4) == 0,
        "READ gives the head's integers 53, 393");
  rq[1] = 1;
  request(MSG_READ, rq, 12);
  CHECK(n_resp == 1 && resp[0].status == 0 && rd32(resp[0].payload + 8) > 0, "READ of the per-layer cycles");
  rq[1] = 0;
  wr32(rq + 4, 78);
  request(MSG_READ, rq, 12);
  CHECK(n_resp == 1 && resp[0].status == E_STATE, "READ of another frame id: E_STATE");
  wr32(rq + 4, 77);
  wr32(rq + 8, 2);
  request(MSG_READ, rq, 12);
  CHECK(n_resp == 1 && resp[0].status == E_RANGE, "READ past the result: E_RANGE");
  /* Two INFERs of a new frame in one burst: the repeat, arriving while the frame is queued, is
   * answered at once with E_BUSY; the result then goes to the first one's seq. */
  {
    static uint8_t burst[2 * FRAME_WIRE_MAX];
    uint8_t inf2[12] = { 0 };
    wr32(inf2 + 4, 79);
    wr32(inf2 + 8, crc32_update(0, frame, 6));
    request(MSG_FRAME_DATA, fd, 11); /* slot 0 gets the frame again (it was done: a new frame) */
    size_t n1 = make_frame(burst, MSG_INFER, 500, inf2, 12);
    size_t n2 = make_frame(burst + n1, MSG_INFER, 501, inf2, 12);
    test_tx_len = 0;
    bridge_rx(burst, n1 + n2);
    while (bridge_busy()) bridge_poll();
    static frame_rx_t brx;
    frame_rx_init(&brx);
    packet_t bp;
    int got, k = 0;
    uint16_t seqs[2] = { 0, 0 };
    uint8_t sts[2] = { 0xff, 0xff };
    for (size_t off = 0; off < test_tx_len && k < 2;) {
      off += frame_rx_feed(&brx, test_tx + off, test_tx_len - off, &bp, &got);
      if (got) {
        seqs[k] = bp.seq;
        sts[k++] = bp.status;
      }
    }
    CHECK(k == 2 && seqs[0] == 501 && sts[0] == E_BUSY, "a repeat while computing: E_BUSY at once (seq %u status %u)", seqs[0], sts[0]);
    CHECK(seqs[1] == 500 && sts[1] == 0, "the result to the first INFER (seq %u status %u)", seqs[1], sts[1]);
    wr32(inf + 4, 79);
  }
  /* A repeated INFER answers again without running. */
  request(MSG_INFER, inf, 12);
  CHECK(n_resp == 1 && resp[0].status == 0 && rd32(resp[0].payload) == 79, "repeated INFER: the same answer");
  wr32(inf + 4, 77);
  /* Slot 1 in flight beside slot 0. */
  fd[0] = 1;
  request(MSG_FRAME_DATA, fd, 11);
  inf[0] = 1;
  wr32(inf + 4, 78);
  request(MSG_INFER, inf, 12);
  CHECK(n_resp == 1 && resp[0].status == 0 && resp[0].payload[4] == 1, "slot 1 runs too");
  /* A corrupted request gets no answer and is counted. */
  static uint8_t wire[FRAME_WIRE_MAX];
  size_t n = make_frame(wire, MSG_PING, 5, (const uint8_t *)"hello", 5);
  wire[3] ^= 0x40;
  test_tx_len = 0;
  bridge_rx(wire, n);
  CHECK(test_tx_len == 0, "a corrupted frame is not answered");
  request(MSG_STATS, NULL, 0);
  CHECK(n_resp == 1 && rd32(resp[0].payload + 8) + rd32(resp[0].payload + 12) == 1, "STATS counts it");
  CHECK(rd32(resp[0].payload + 28) == 3, "STATS: frames inferred");
  request(MSG_PING, (const uint8_t *)"hello", 5);
  CHECK(n_resp == 1 && resp[0].len == 5 && !memcmp(resp[0].payload, "hello", 5), "PING echoes");

  /* A wrong image with a right digest is refused, the loaded one stays. */
  static uint8_t bad[512];
  memcpy(bad, img, size);
  bad[128 + 24] = 3; /* filters 3, output channels 1 */
  upload(bad, size, E_IMAGE, "inconsistent image");
  pl[0] = 1;
  pl[1] = 0;
  wr16(pl + 2, 4104);
  request(MSG_HELLO, pl, 4);
  CHECK(resp[0].payload[44] == 1 && memcmp(resp[0].payload + 48, sha, 32) == 0, "the refused image left the loaded one");
  /* Accumulator bound: B near 2^31 refused. */
  tiny_image(bad, 2, 2147483000);
  upload(bad, size, E_IMAGE, "accumulator past 32 bits");
  /* A digest that does not match the bytes. */
  wr32(pl, (uint32_t)size);
  memset(pl + 4, 0xAB, 32);
  request(MSG_UPLOAD_BEGIN, pl, 36);
  uint16_t token = rd16(resp[0].payload + 2);
  static uint8_t d[600];
  wr16(d, token);
  wr32(d + 2, 0);
  memcpy(d + 6, img, size);
  request(MSG_UPLOAD_DATA, d, (uint16_t)(6 + size));
  wr16(pl, token);
  request(MSG_UPLOAD_END, pl, 2);
  CHECK(n_resp == 1 && resp[0].status == E_DIGEST, "digest mismatch: E_DIGEST");
  request(MSG_UPLOAD_DATA, d, (uint16_t)(6 + size));
  CHECK(n_resp == 1 && resp[0].status == E_STATE, "data after the upload ended: E_STATE");
  /* A session reset empties the slots: READ of a done frame then fails. */
  pl[0] = 1;
  pl[1] = 1;
  wr16(pl + 2, 4104);
  request(MSG_HELLO, pl, 4);
  inf[0] = 0;
  wr32(rq + 8, 0);
  request(MSG_READ, rq, 12);
  CHECK(n_resp == 1 && resp[0].status == E_STATE, "after a session reset the slots are empty");
  /* A restart (bridge_init) loads the stored image again. */
  bridge_init();
  request(MSG_HELLO, pl, 4);
  CHECK(resp[0].payload[44] == 1 && memcmp(resp[0].payload + 48, sha, 32) == 0, "a restart loads the stored image");
}

int main(void) {
  test_crc();
  test_cobs();
  test_frames();
  test_sha();
  test_model();
  test_bridge();
  printf("%d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}
