#include "accel_model.h"
#include <stdlib.h>
#include <string.h>
#include "hal_accel.h"

static uint8_t *mem;
static uint32_t mem_bytes;
static uint32_t regs[ACC_NREGS];

int model_accel_init(uint32_t bytes) {
  mem = calloc(bytes, 1);
  if (!mem) return -1;
  mem_bytes = bytes;
  memset(regs, 0, sizeof regs);
  return 0;
}

void model_accel_attach(uint8_t *m, uint32_t bytes) {
  mem = m;
  mem_bytes = bytes;
  memset(regs, 0, sizeof regs);
}

uint8_t *model_accel_mem(void) { return mem; }
uint32_t model_accel_mem_size(void) { return mem_bytes; }

/* Largest magnitude the model lets an intermediate reach. Valid layers (fixed-point.md
 * "Validation") stay below 2^31 in Y and 2^47 in M·S, so these guards never act on them; they
 * only keep the arithmetic of an invalid layer defined. */
#define GUARD ((int64_t)1 << 62)

/* rshr(v, r) of fixed-point.md for |v| < 2^62: round half up right shift, or a left shift that
 * saturates at ±2^62 (any such value saturates every 8- or 16-bit output anyway). */
static int64_t rshr(int64_t v, int r) {
  if (r == 0 || v == 0) return v;
  if (r > 0) {
    if (r > 63) r = 63;
    /* (v + 2^(r-1)) >> r without the overflow of the addition; >> of a negative value is
     * arithmetic on every compiler this builds with (gcc, clang). */
    return (v >> r) + ((v >> (r - 1)) & 1);
  }
  int s = -r;
  if (s >= 62) return v > 0 ? GUARD : -GUARD;
  int64_t lim = GUARD >> s;
  if (v >= lim) return GUARD;
  if (v <= -lim) return -GUARD;
  return v * ((int64_t)1 << s);
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

static uint32_t status, cycles;

/* Row buffers: one output row (Wo < 2^16). Static: the model allocates nothing per layer. */
static int32_t srow[65536], acc32[65536];
static int64_t acc64[65536];

/* The outputs x in [xa, xb) whose input column x·s + kx − pad lies inside [0, W). */
static void x_range(uint32_t kx, uint32_t pad, uint32_t s, uint32_t W, uint32_t Wo, uint32_t *xa, uint32_t *xb) {
  const int64_t off = (int64_t)kx - pad;
  int64_t a = off >= 0 ? 0 : (-off + s - 1) / s;               /* first x with x·s + off >= 0 */
  int64_t b = ((int64_t)W - 1 - off) < 0 ? 0 : ((int64_t)W - 1 - off) / s + 1; /* x·s + off <= W − 1 */
  if (b > (int64_t)Wo) b = Wo;
  if (a > b) a = b;
  *xa = (uint32_t)a;
  *xb = (uint32_t)b;
}

static void run_layer(void) {
  const uint32_t C = regs[ACC_IN_C], H = regs[ACC_IN_H], W = regs[ACC_IN_W];
  const uint32_t O = regs[ACC_OUT_C], Ho = regs[ACC_OUT_H], Wo = regs[ACC_OUT_W];
  const uint32_t k = regs[ACC_KSIZE], s = regs[ACC_STRIDE], pad = regs[ACC_PAD], G = regs[ACC_GROUPS];
  const uint32_t flags = regs[ACC_FLAGS];
  const int u8in = (flags & ACC_FL_UINT8_IN) != 0;
  const uint32_t act = (flags >> 1) & 3u;
  const int out16 = (flags & ACC_FL_OUT16) != 0;

  status = 0;
  cycles = 0;
  if (k < 1 || k > MODEL_MAX_K || s < 1 || s > 2 || pad >= k || act == 3 || G < 1 || C < 1 || O < 1 ||
      H < 1 || W < 1 || Ho < 1 || Wo < 1 || C % G || O % G || C > 65535 || O > 65535 || H > 65535 ||
      W > 65535 || Ho > 65535 || Wo > 65535) {
    status = ACC_ST_DONE | ACC_ST_ERROR | (ACC_ERR_SHAPE << 8);
    return;
  }
  const uint32_t Cg = C / G, Og = O / G, K = Cg * k * k;
  const uint64_t in_b = (uint64_t)C * H * W, out_b = (uint64_t)O * Ho * Wo * (out16 ? 2 : 1);
  const uint64_t w_b = (uint64_t)O * K, p_b = (uint64_t)O * 8;
  const uint32_t ia = regs[ACC_IN_ADDR], oa = regs[ACC_OUT_ADDR], wa = regs[ACC_W_ADDR], pa = regs[ACC_P_ADDR];
  if ((ia | oa | wa | pa) & 3u || ia + in_b > mem_bytes || oa + out_b > mem_bytes || wa + w_b > mem_bytes ||
      pa + p_b > mem_bytes) {
    status = ACC_ST_DONE | ACC_ST_ERROR | (ACC_ERR_MEMORY << 8);
    return;
  }
  const uint8_t *X = mem + ia;
  const int8_t *Q = (const int8_t *)(mem + wa);
  const uint8_t *P = mem + pa;
  uint8_t *out = mem + oa;
  const int64_t hi = out16 ? 32767 : 127, lo = out16 ? -32768 : -128;
  const int64_t xmax = u8in ? 255 : 128;

  /* Output row by row: per group the window sums of the row, then per output channel its
   * products, accumulated along the row (contiguous input reads at stride 1). */
  for (uint32_t y = 0; y < Ho; y++) {
    const int64_t y0 = (int64_t)y * s - pad;
    for (uint32_t g = 0; g < G; g++) {
      /* S: |S| <= Cg·k²·255 < 2^31 for any C < 2^16, k <= 7. */
      for (uint32_t x = 0; x < Wo; x++) srow[x] = 0;
      for (uint32_t c = 0; c < Cg; c++) {
        const uint8_t *xc = X + (size_t)(g * Cg + c) * H * W;
        for (uint32_t ky = 0; ky < k; ky++) {
          const int64_t iy = y0 + ky;
          if (iy < 0 || iy >= (int64_t)H) continue;
          const uint8_t *row = xc + (size_t)iy * W;
          for (uint32_t kx = 0; kx < k; kx++) {
            uint32_t xa, xb;
            x_range(kx, pad, s, W, Wo, &xa, &xb);
            if (u8in) for (uint32_t x = xa; x < xb; x++) srow[x] += row[x * s + kx - pad];
            else for (uint32_t x = xa; x < xb; x++) srow[x] += (int8_t)row[x * s + kx - pad];
          }
        }
      }
      for (uint32_t o = g * Og; o < (g + 1) * Og; o++) {
        const uint8_t *p = P + 8 * o;
        const int32_t B = (int32_t)((uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24));
        const int16_t M = (int16_t)(p[4] | (p[5] << 8));
        const int TS = (int8_t)p[6], OS = (int8_t)p[7];
        const int8_t *q = Q + (size_t)o * K;
        /* 32-bit accumulation when the channel's weights cannot leave it (every valid layer). */
        int64_t sum_abs = 0;
        for (uint32_t j = 0; j < K; j++) sum_abs += q[j] < 0 ? -q[j] : q[j];
        const int narrow = sum_abs * xmax < ((int64_t)1 << 31);
        if (narrow) for (uint32_t x = 0; x < Wo; x++) acc32[x] = 0;
        else for (uint32_t x = 0; x < Wo; x++) acc64[x] = 0;
        for (uint32_t c = 0; c < Cg; c++) {
          const uint8_t *xc = X + (size_t)(g * Cg + c) * H * W;
          for (uint32_t ky = 0; ky < k; ky++) {
            const int64_t iy = y0 + ky;
            if (iy < 0 || iy >= (int64_t)H) continue;
            const uint8_t *row = xc + (size_t)iy * W;
            for (uint32_t kx = 0; kx < k; kx++) {
              const int32_t w = q[(c * k + ky) * k + kx];
              if (w == 0) continue;
              uint32_t xa, xb;
              x_range(kx, pad, s, W, Wo, &xa, &xb);
              if (narrow && u8in) for (uint32_t x = xa; x < xb; x++) acc32[x] += w * row[x * s + kx - pad];
              else if (narrow) for (uint32_t x = xa; x < xb; x++) acc32[x] += w * (int8_t)row[x * s + kx - pad];
              else if (u8in) for (uint32_t x = xa; x < xb; x++) acc64[x] += (int64_t)w * row[x * s + kx - pad];
              else for (uint32_t x = xa; x < xb; x++) acc64[x] += (int64_t)w * (int8_t)row[x * s + kx - pad];
            }
          }
        }
        for (uint32_t x = 0; x < Wo; x++) {
          const int64_t acc = narrow ? acc32[x] : acc64[x];
          /* |M·S| < 2^15·2^31: no overflow before the shift. */
          int64_t Y = acc + rshr((int64_t)M * srow[x], TS) + B;
          Y = clamp64(Y, -((int64_t)1 << 48), (int64_t)1 << 48);
          int64_t A = Y;
          if (act == 1) A = Y >= 0 ? Y : rshr(Y * 3277, 15);
          else if (act == 2) A = Y > 0 ? Y : 0;
          const int64_t v = clamp64(rshr(A, OS), lo, hi);
          const size_t idx = ((size_t)o * Ho + y) * Wo + x;
          if (out16) {
            out[2 * idx] = (uint8_t)(v & 0xff);
            out[2 * idx + 1] = (uint8_t)((v >> 8) & 0xff);
          } else {
            out[idx] = (uint8_t)(v & 0xff);
          }
        }
      }
    }
  }
  uint64_t cyc = (uint64_t)O * Ho * Wo * ((K + MODEL_MACS - 1) / MODEL_MACS + 2);
  cycles = cyc > 0xffffffffu ? 0xffffffffu : (uint32_t)cyc;
  status = ACC_ST_DONE;
}

void model_accel_write(uint32_t reg, uint32_t value) {
  if (reg == ACC_CTRL) {
    if (value & 1u) run_layer();
    return;
  }
  if (reg >= ACC_IN_ADDR && reg <= ACC_FLAGS) regs[reg] = value;
}

uint32_t model_accel_read(uint32_t reg) {
  switch (reg) {
    case ACC_STATUS: return status;
    case ACC_CYCLES: return cycles;
    case ACC_ID: return 1u | ((uint32_t)MODEL_MAX_K << 8) | ((uint32_t)MODEL_MACS << 16);
    default: return reg < ACC_NREGS ? regs[reg] : 0;
  }
}
