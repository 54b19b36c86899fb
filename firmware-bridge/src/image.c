#include "image.h"
#include <stdio.h>
#include <string.h>
#include "arith.h"
#include "frame.h"
#include "proto.h"

#define ALIGN4(x) (((x) + 3u) & ~3u)

/* One reason per refusal, formatted into the caller's buffer. */
#define REFUSE(...)                                  \
  do {                                               \
    if (why && why_len) snprintf(why, why_len, __VA_ARGS__); \
    return E_IMAGE;                                  \
  } while (0)

void image_input_shape(const image_t *img, int i, uint32_t *c, uint32_t *h, uint32_t *w) {
  if (i < 0) {
    *c = img->in_c; *h = img->in_h; *w = img->in_w;
  } else {
    *c = img->layers[i].c; *h = img->layers[i].h; *w = img->layers[i].w;
  }
}
int image_input_bits(const image_t *img, int i) { return i < 0 ? 8 : img->layers[i].bits; }
int image_input_frac(const image_t *img, int i) { return i < 0 ? 8 : img->layers[i].frac; }
uint32_t image_input_addr(const image_t *img, int i) { return i < 0 ? img->input_addr : img->layers[i].addr; }

/* Streams Nw-bit two's complement values out of the packed weights. */
typedef struct {
  image_read_fn rd;
  uint32_t off, end;
  uint8_t buf[256];
  uint32_t pos, n;
  uint32_t acc, nbits;
  int fail;
} bits_t;

static int bits_byte(bits_t *b) {
  if (b->pos == b->n) {
    uint32_t take = b->end - b->off;
    if (take > sizeof b->buf) take = sizeof b->buf;
    if (take == 0 || b->rd(b->off, b->buf, take) != 0) {
      b->fail = 1;
      return 0;
    }
    b->off += take;
    b->n = take;
    b->pos = 0;
  }
  return b->buf[b->pos++];
}

static int bits_get(bits_t *b, uint32_t nb) {
  while (b->nbits < nb) {
    b->acc |= (uint32_t)bits_byte(b) << b->nbits;
    b->nbits += 8;
  }
  uint32_t u = b->acc & ((1u << nb) - 1u);
  b->acc >>= nb;
  b->nbits -= nb;
  return (u & (1u << (nb - 1))) ? (int)u - (int)(1u << nb) : (int)u;
}

/* Greedy first-fit placement of tensors by their lifetimes, offsets relative to the arena. */
typedef struct {
  uint32_t off, size;
  int end;
} live_t;

typedef struct {
  live_t live[CAP_MAX_LAYERS + 2];
  int n;
  uint32_t peak;
} plan_t;

static void plan_free(plan_t *p, int before) {
  int k = 0;
  for (int i = 0; i < p->n; i++)
    if (p->live[i].end >= before) p->live[k++] = p->live[i];
  p->n = k;
}

static uint32_t plan_alloc(plan_t *p, uint32_t size, int end) {
  size = ALIGN4(size);
  uint32_t at = 0;
  int pos = 0;
  for (; pos < p->n; pos++) { /* live is sorted by offset */
    if (at + size <= p->live[pos].off) break;
    uint32_t e = p->live[pos].off + p->live[pos].size;
    if (e > at) at = e;
  }
  memmove(&p->live[pos + 1], &p->live[pos], (size_t)(p->n - pos) * sizeof p->live[0]);
  p->live[pos].off = at;
  p->live[pos].size = size;
  p->live[pos].end = end;
  p->n++;
  if (at + size > p->peak) p->peak = at + size;
  return at;
}

static plan_t plan; /* static: too large for a small soft CPU's stack */

/* Tensor bytes of layer i's output (or of the network input for -1). */
static uint32_t tensor_bytes(const image_t *img, int i) {
  uint32_t c, h, w;
  image_input_shape(img, i, &c, &h, &w);
  return c * h * w * (uint32_t)(image_input_bits(img, i) / 8);
}

static int is_alias(uint8_t kind) { return kind == K_DROPOUT || kind == K_YOLO; }

/* The layer whose buffer an input index stands for (aliases resolved); -1 the network input. */
static int owner(const image_t *img, int i) {
  while (i >= 0 && is_alias(img->layers[i].kind)) i = img->layers[i].in[0];
  return i;
}

/* The 32-bit accumulator bound of fixed-point.md "Validation" for one channel (exact in 64 bits:
 * sum_abs·xmax < 2^40, |M|·K·xmax < 2^47, the left-shift case saturates past the bound). */
static int channel_fits(uint64_t sum_abs, uint32_t K, uint32_t xmax, int32_t M, int fw, int fm, int32_t B) {
  const uint64_t lim = (uint64_t)1 << 31;
  uint64_t ms = (uint64_t)(M < 0 ? -(int64_t)M : M) * K * xmax;
  uint64_t t = 0;
  int r = fm - fw;
  if (ms != 0) {
    if (r >= 0) t = (r >= 63 ? 1 : (ms + ((uint64_t)1 << r) - 1) >> r) + 1;
    else if (-r >= 32 || ms >= (lim >> -r)) t = lim;
    else t = ms << -r;
  }
  uint64_t b = (uint64_t)(B < 0 ? -(int64_t)B : B);
  return sum_abs * xmax + t + b < lim;
}

int image_process(image_t *img, image_read_fn rd, uint32_t size, const accel_caps_t *caps, uint8_t *mem,
                  int load, char *why, size_t why_len) {
  uint8_t h[IMG_HEADER];
  if (why && why_len) why[0] = 0;
  if (size < IMG_HEADER) REFUSE("image of %lu bytes is shorter than its header", (unsigned long)size);
  if (rd(0, h, IMG_HEADER) != 0) return E_STORAGE;
  if (memcmp(h, "ZQDI", 4) != 0) REFUSE("not a device image (magic)");
  if (rd16(h + 4) != IMG_VERSION) REFUSE("image version %u (this firmware reads %u)", rd16(h + 4), IMG_VERSION);
  if (rd16(h + 6) != IMG_HEADER || rd16(h + 22) != IMG_RECORD || rd32(h + 24) != IMG_HEADER)
    REFUSE("header or record size");
  if (rd32(h + 8) != size) REFUSE("image says %lu bytes, %lu stored", (unsigned long)rd32(h + 8), (unsigned long)size);
  if (rd32(h + 32) != IMG_ARITHMETIC) REFUSE("arithmetic version %lu", (unsigned long)rd32(h + 32));
  img->size = size;
  img->L = rd16(h + 12);
  img->heads = rd16(h + 14);
  img->in_c = rd16(h + 16);
  img->in_h = rd16(h + 18);
  img->in_w = rd16(h + 20);
  memcpy(img->name, h + 64, 63);
  img->name[63] = 0;
  if (img->L < 1 || img->L > CAP_MAX_LAYERS) REFUSE("%u layers (1..%u)", img->L, CAP_MAX_LAYERS);
  if (img->heads < 1 || img->heads > CAP_MAX_HEADS) REFUSE("%u heads (1..%u)", img->heads, CAP_MAX_HEADS);
  if (img->in_c != 3 || img->in_h < 1 || img->in_w < 1 || img->in_h > CAP_MAX_SIDE || img->in_w > CAP_MAX_SIDE)
    REFUSE("input %ux%ux%u", img->in_c, img->in_h, img->in_w);
  const uint32_t data_off = IMG_HEADER + (uint32_t)IMG_RECORD * img->L;
  if (rd32(h + 28) != data_off || data_off > size) REFUSE("data offset");

  /* Records. */
  uint32_t nheads = 0;
  for (int i = 0; i < img->L; i++) {
    uint8_t r[IMG_RECORD];
    if (rd(IMG_HEADER + (uint32_t)IMG_RECORD * (uint32_t)i, r, IMG_RECORD) != 0) return E_STORAGE;
    layer_t *l = &img->layers[i];
    memset(l, 0, sizeof *l);
    l->kind = r[0];
    l->act = r[1];
    l->nin = r[2];
    l->bits = r[3];
    l->frac = (int16_t)rd16(r + 4);
    for (int j = 0; j < CAP_MAX_INPUTS; j++) l->in[j] = (int16_t)rd16(r + 8 + 2 * j);
    l->c = rd16(r + 16);
    l->h = rd16(r + 18);
    l->w = rd16(r + 20);
    for (int j = 0; j < 6; j++) l->p[j] = rd16(r + 24 + 2 * j);
    l->params_off = rd32(r + 36);
    l->weights_off = rd32(r + 40);
    l->lut_off = rd32(r + 44);
    l->lut_n = rd16(r + 48);
    l->lut_shift = (int16_t)rd16(r + 50);
    l->lut_z = (int32_t)rd32(r + 52);

    if (l->kind < K_CONV || l->kind > K_YOLO) REFUSE("layer %d: kind %u", i, l->kind);
    const int single = l->kind != K_ROUTE && l->kind != K_SHORTCUT;
    if (l->nin < 1 || l->nin > CAP_MAX_INPUTS || (single && l->nin != 1)) REFUSE("layer %d: %u inputs", i, l->nin);
    for (int j = 0; j < l->nin; j++) {
      if (l->in[j] < -1 || l->in[j] >= i) REFUSE("layer %d: input %d", i, l->in[j]);
      if (l->in[j] == -1 && l->kind != K_CONV) REFUSE("layer %d: only a conv may read the network input", i);
    }
    if (l->c < 1 || l->h < 1 || l->w < 1) REFUSE("layer %d: empty output", i);
    uint32_t C, H, W;
    image_input_shape(img, l->in[0], &C, &H, &W);
    const int ibits = image_input_bits(img, l->in[0]);
    const int ifrac = image_input_frac(img, l->in[0]);
    if (l->kind == K_YOLO) {
      /* A head: the yolo layer computes nothing; its format is its input's. */
      if (l->c != C || l->h != H || l->w != W) REFUSE("layer %d: yolo shape", i);
      if (nheads >= img->heads) REFUSE("more yolo layers than the %u heads declared", img->heads);
      img->head_layer[nheads++] = (uint16_t)i;
      l->bits = (uint8_t)ibits;
      l->frac = (int16_t)ifrac;
      continue;
    }
    if (l->bits != 8 && l->bits != 16) REFUSE("layer %d: %u-bit output", i, l->bits);
    /* A 16-bit tensor may be read by yolo layers only. */
    for (int j = 0; j < l->nin; j++)
      if (image_input_bits(img, l->in[j]) != 8) REFUSE("layer %d reads a 16-bit tensor", i);
    switch (l->kind) {
      case K_CONV: {
        const uint32_t O = l->p[0], k = l->p[1], s = l->p[2], pad = l->p[3], G = l->p[4], nw = l->p[5];
        if (O != l->c) REFUSE("layer %d: filters %lu, output channels %u", i, (unsigned long)O, l->c);
        if (k < 1 || k > caps->max_k) REFUSE("layer %d: kernel %lu (the accelerator takes 1..%lu)", i, (unsigned long)k, (unsigned long)caps->max_k);
        if (s < 1 || s > CAP_MAX_STRIDE) REFUSE("layer %d: stride %lu", i, (unsigned long)s);
        if (pad >= k) REFUSE("layer %d: pad %lu with kernel %lu", i, (unsigned long)pad, (unsigned long)k);
        if (G < 1 || C % G || O % G) REFUSE("layer %d: groups %lu", i, (unsigned long)G);
        if (nw < 2 || nw > 8) REFUSE("layer %d: %lu-bit weights", i, (unsigned long)nw);
        if (H + 2 * pad < k || W + 2 * pad < k || (H + 2 * pad - k) / s + 1 != l->h || (W + 2 * pad - k) / s + 1 != l->w)
          REFUSE("layer %d: output %ux%u does not follow from input %lux%lu", i, l->h, l->w, (unsigned long)H, (unsigned long)W);
        if (l->act > A_LOGISTIC) REFUSE("layer %d: activation %u", i, l->act);
        const uint64_t K = (uint64_t)(C / G) * k * k;
        const uint64_t wbytes = (O * K * nw + 7) / 8;
        if (l->params_off < data_off || l->params_off & 3u || (uint64_t)l->params_off + 8ull * O > size)
          REFUSE("layer %d: channel parameters outside the image", i);
        if (l->weights_off < data_off || l->weights_off & 3u || l->weights_off + wbytes > size)
          REFUSE("layer %d: weights outside the image", i);
        if (l->act >= A_MISH) {
          if (l->lut_n < 1 || l->lut_n > CAP_MAX_LUT) REFUSE("layer %d: table of %u entries (1..%u)", i, l->lut_n, CAP_MAX_LUT);
          if (l->lut_off < data_off || l->lut_off & 3u || (uint64_t)l->lut_off + 2ull * l->lut_n > size)
            REFUSE("layer %d: table outside the image", i);
          /* Saturating the index source to 16 bits must not move the clamped index. */
          if (l->lut_z > 32768 || (int64_t)l->lut_n - 1 - l->lut_z > 32767)
            REFUSE("layer %d: table offset %ld out of the accelerator's 16-bit reach", i, (long)l->lut_z);
        } else if (l->lut_n || l->lut_off) {
          REFUSE("layer %d: a table with activation %u", i, l->act);
        }
        break;
      }
      case K_MAXPOOL: {
        const uint32_t sz = l->p[0], s = l->p[1], padding = l->p[2], off = padding / 2;
        if (sz < 1 || s < 1 || H + padding < sz || W + padding < sz) REFUSE("layer %d: maxpool size %lu", i, (unsigned long)sz);
        if (l->c != C || (H + padding - sz) / s + 1 != l->h || (W + padding - sz) / s + 1 != l->w)
          REFUSE("layer %d: maxpool output shape", i);
        /* Every window holds an input position. */
        if (sz <= off || (uint32_t)(l->h - 1) * s >= H + off || (uint32_t)(l->w - 1) * s >= W + off)
          REFUSE("layer %d: maxpool window outside the input", i);
        break;
      }
      case K_ROUTE: {
        const uint32_t g = l->p[0], gid = l->p[1];
        if (g < 1 || gid >= g) REFUSE("layer %d: route groups %lu id %lu", i, (unsigned long)g, (unsigned long)gid);
        uint32_t ctot = 0;
        for (int j = 0; j < l->nin; j++) {
          uint32_t c2, h2, w2;
          image_input_shape(img, l->in[j], &c2, &h2, &w2);
          if (c2 % g || h2 != l->h || w2 != l->w) REFUSE("layer %d: route input %d shape", i, l->in[j]);
          ctot += c2 / g;
        }
        if (ctot != l->c) REFUSE("layer %d: route channels", i);
        break;
      }
      case K_SHORTCUT:
        for (int j = 0; j < l->nin; j++) {
          uint32_t c2, h2, w2;
          image_input_shape(img, l->in[j], &c2, &h2, &w2);
          if (c2 != l->c || h2 != l->h || w2 != l->w) REFUSE("layer %d: shortcut input %d shape", i, l->in[j]);
        }
        if (l->act > A_RELU) REFUSE("layer %d: shortcut activation %u", i, l->act);
        break;
      case K_UPSAMPLE: {
        const uint32_t s = l->p[0];
        if (s < 1 || l->c != C || H * s != l->h || W * s != l->w) REFUSE("layer %d: upsample shape", i);
        break;
      }
      case K_DROPOUT:
        if (l->c != C || l->h != H || l->w != W) REFUSE("layer %d: dropout shape", i);
        break;
    }
    if ((l->kind == K_MAXPOOL || l->kind == K_UPSAMPLE || l->kind == K_DROPOUT) && (l->bits != ibits || l->frac != ifrac))
      REFUSE("layer %d: output format must equal its input's", i);
  }
  if (nheads != img->heads) REFUSE("%lu yolo layers, %u heads declared", (unsigned long)nheads, img->heads);
  /* A 16-bit output needs a reader, and only yolo layers read 16-bit tensors (checked above). */
  for (int i = 0; i < img->L; i++) {
    const layer_t *l = &img->layers[i];
    if (l->kind == K_YOLO || l->bits != 16) continue;
    int readers = 0;
    for (int j = i + 1; j < img->L; j++)
      for (int q = 0; q < img->layers[j].nin; q++) readers += img->layers[j].in[q] == i;
    if (!readers) REFUSE("layer %d: 16-bit output read by no yolo layer", i);
  }

  /* Memory layout: frame slots, then parameters and weights, then the tensor arena. */
  uint64_t at = 0;
  img->in_bytes = 3u * img->in_h * img->in_w;
  uint32_t res = 0;
  for (uint32_t k = 0; k < nheads; k++) {
    layer_t *y = &img->layers[img->head_layer[k]];
    y->head_off = res;
    res += ALIGN4(tensor_bytes(img, y->in[0]));
  }
  img->result_bytes = res;
  for (int s = 0; s < CAP_SLOTS; s++) {
    img->slot_in[s] = (uint32_t)at;
    at += ALIGN4(img->in_bytes);
    img->slot_res[s] = (uint32_t)at;
    at += res;
  }
  for (int i = 0; i < img->L; i++) {
    layer_t *l = &img->layers[i];
    if (l->kind != K_CONV) continue;
    uint32_t C, H, W;
    image_input_shape(img, l->in[0], &C, &H, &W);
    l->p_addr = (uint32_t)at;
    at += 8ull * l->c;
    l->w_addr = (uint32_t)at;
    at += ALIGN4((uint64_t)l->c * (C / l->p[4]) * l->p[1] * l->p[1]);
    if (l->lut_n) {
      l->lut_addr = (uint32_t)at;
      at += ALIGN4(2ull * l->lut_n);
    }
    if (at > caps->mem_bytes) break;
  }
  const uint64_t arena = at;
  /* Tensor lifetimes: a buffer lives from its producer to its last reader (through aliases). */
  int last_in = -1;
  static int16_t last_use[CAP_MAX_LAYERS];
  for (int i = 0; i < img->L; i++) last_use[i] = (int16_t)i;
  for (int i = 0; i < img->L; i++)
    for (int q = 0; q < img->layers[i].nin; q++) {
      int o = owner(img, img->layers[i].in[q]);
      if (o < 0) last_in = i;
      else if (last_use[o] < i) last_use[o] = (int16_t)i;
    }
  plan.n = 0;
  plan.peak = 0;
  const uint32_t input_off = plan_alloc(&plan, 3u * img->in_h * img->in_w, last_in);
  static uint32_t off[CAP_MAX_LAYERS], scratch_off[CAP_MAX_LAYERS];
  for (int i = 0; i < img->L; i++) {
    layer_t *l = &img->layers[i];
    plan_free(&plan, i);
    if (l->lut_n) scratch_off[i] = plan_alloc(&plan, 2u * l->c * l->h * l->w, i);
    if (!is_alias(l->kind)) off[i] = plan_alloc(&plan, tensor_bytes(img, i), last_use[i]);
  }
  img->mem_used = (uint32_t)(arena + plan.peak > 0xffffffffu ? 0xffffffffu : arena + plan.peak);
  if (arena + plan.peak > caps->mem_bytes) {
    if (why && why_len)
      snprintf(why, why_len, "needs %lu bytes of accelerator memory, %lu there", (unsigned long)img->mem_used,
               (unsigned long)caps->mem_bytes);
    return E_NO_MEMORY;
  }
  img->input_addr = (uint32_t)arena + input_off;
  for (int i = 0; i < img->L; i++) {
    layer_t *l = &img->layers[i];
    if (l->lut_n) l->scratch = (uint32_t)arena + scratch_off[i];
    if (!is_alias(l->kind)) l->addr = (uint32_t)arena + off[i];
  }
  for (int i = 0; i < img->L; i++) {
    layer_t *l = &img->layers[i];
    if (is_alias(l->kind)) l->addr = image_input_addr(img, l->in[0]);
  }

  /* Parameters: the accumulator bound per channel, the tables' range; then (load) the memory. */
  for (int i = 0; i < img->L; i++) {
    layer_t *l = &img->layers[i];
    if (l->kind != K_CONV) continue;
    uint32_t C, H, W;
    image_input_shape(img, l->in[0], &C, &H, &W);
    const uint32_t O = l->c, K = (C / l->p[4]) * l->p[1] * l->p[1], nw = l->p[5];
    const uint32_t xmax = l->in[0] < 0 ? 255 : 128;
    const int fa_in = image_input_frac(img, l->in[0]);
    const int fa_out = l->lut_n ? l->lut_shift : l->frac;
    bits_t b;
    memset(&b, 0, sizeof b);
    b.rd = rd;
    b.off = l->weights_off;
    b.end = size;
    for (uint32_t o = 0; o < O; o++) {
      uint8_t pr[8];
      if (rd(l->params_off + 8 * o, pr, 8) != 0) return E_STORAGE;
      const int32_t B = (int32_t)rd32(pr);
      const int32_t M = (int16_t)rd16(pr + 4);
      const int fw = (int8_t)pr[6], fm = (int8_t)pr[7];
      uint64_t sum_abs = 0;
      int8_t *q = load ? (int8_t *)(mem + l->w_addr + (size_t)o * K) : NULL;
      for (uint32_t j = 0; j < K; j++) {
        int v = bits_get(&b, nw);
        sum_abs += (uint64_t)(v < 0 ? -v : v);
        if (q) q[j] = (int8_t)v;
      }
      if (b.fail) return E_STORAGE;
      if (!channel_fits(sum_abs, K, xmax, M, fw, fm, B))
        REFUSE("layer %d channel %lu: the accumulator could leave 32 bits", i, (unsigned long)o);
      if (load) {
        int ts = fm - fw, os = fw + fa_in - fa_out;
        ts = ts < -32 ? -32 : ts > 63 ? 63 : ts;
        os = os < -16 ? -16 : os > 63 ? 63 : os;
        uint8_t *p = mem + l->p_addr + 8 * o;
        wr32(p, (uint32_t)B);
        wr16(p + 4, (uint16_t)M);
        p[6] = (uint8_t)(int8_t)ts;
        p[7] = (uint8_t)(int8_t)os;
      }
    }
    if (l->lut_n) {
      const int32_t hi = (1 << (l->bits - 1)) - 1, lo = -(1 << (l->bits - 1));
      for (uint32_t j = 0; j < l->lut_n; j++) {
        uint8_t e[2];
        if (rd(l->lut_off + 2 * j, e, 2) != 0) return E_STORAGE;
        int32_t v = (int16_t)rd16(e);
        if (v < lo || v > hi) REFUSE("layer %d: table entry %ld outside %u bits", i, (long)v, l->bits);
        if (load) memcpy(mem + l->lut_addr + 2 * j, e, 2);
      }
    }
  }
  return E_OK;
}
