#include "net.h"
#include <string.h>
#include "arith.h"
#include "hal_accel.h"

void net_start(net_job_t *job, const image_t *img, uint8_t *mem, uint32_t slot, uint32_t *layer_cycles) {
  memset(job, 0, sizeof *job);
  job->img = img;
  job->mem = mem;
  job->slot = slot;
  job->layer = -1;
  job->layer_cycles = layer_cycles;
  memset(layer_cycles, 0, sizeof(uint32_t) * img->L);
}

static int32_t get(const uint8_t *t, int bits, uint32_t i) {
  return bits == 16 ? (int16_t)(t[2 * i] | (t[2 * i + 1] << 8)) : (int8_t)t[i];
}
static void put(uint8_t *t, int bits, uint32_t i, int32_t v) {
  if (bits == 16) {
    t[2 * i] = (uint8_t)(v & 0xff);
    t[2 * i + 1] = (uint8_t)((v >> 8) & 0xff);
  } else {
    t[i] = (uint8_t)(v & 0xff);
  }
}

static void start_conv(net_job_t *job, const layer_t *l) {
  const image_t *img = job->img;
  uint32_t C, H, W;
  image_input_shape(img, l->in[0], &C, &H, &W);
  uint32_t flags = 0;
  if (l->in[0] < 0) flags |= ACC_FL_UINT8_IN;
  if (l->lut_n) flags |= ACC_FL_OUT16; /* linear, 16-bit: the table does the rest */
  else {
    if (l->act == A_LEAKY) flags |= ACC_FL_LEAKY;
    else if (l->act == A_RELU) flags |= ACC_FL_RELU;
    if (l->bits == 16) flags |= ACC_FL_OUT16;
  }
  hal_accel_write(ACC_IN_ADDR, image_input_addr(img, l->in[0]));
  hal_accel_write(ACC_OUT_ADDR, l->lut_n ? l->scratch : l->addr);
  hal_accel_write(ACC_W_ADDR, l->w_addr);
  hal_accel_write(ACC_P_ADDR, l->p_addr);
  hal_accel_write(ACC_IN_C, C);
  hal_accel_write(ACC_IN_H, H);
  hal_accel_write(ACC_IN_W, W);
  hal_accel_write(ACC_OUT_C, l->c);
  hal_accel_write(ACC_OUT_H, l->h);
  hal_accel_write(ACC_OUT_W, l->w);
  hal_accel_write(ACC_KSIZE, l->p[1]);
  hal_accel_write(ACC_STRIDE, l->p[2]);
  hal_accel_write(ACC_PAD, l->p[3]);
  hal_accel_write(ACC_GROUPS, l->p[4]);
  hal_accel_write(ACC_FLAGS, flags);
  hal_accel_write(ACC_CTRL, 1);
}

/* mish, swish, logistic: out = lut[clamp(t + z, 0, n - 1)] over the accelerator's 16-bit t. */
static void apply_lut(net_job_t *job, const layer_t *l) {
  const uint8_t *t = job->mem + l->scratch;
  const uint8_t *lut = job->mem + l->lut_addr;
  uint8_t *out = job->mem + l->addr;
  const uint32_t n = (uint32_t)l->c * l->h * l->w;
  const int64_t top = (int64_t)l->lut_n - 1;
  for (uint32_t i = 0; i < n; i++) {
    int64_t idx = (int64_t)get(t, 16, i) + l->lut_z;
    idx = idx < 0 ? 0 : idx > top ? top : idx;
    put(out, l->bits, i, get(lut, 16, (uint32_t)idx));
  }
}

static void maxpool(net_job_t *job, const layer_t *l) {
  uint32_t C, H, W;
  image_input_shape(job->img, l->in[0], &C, &H, &W);
  const int8_t *in = (const int8_t *)(job->mem + image_input_addr(job->img, l->in[0]));
  int8_t *out = (int8_t *)(job->mem + l->addr);
  const int sz = l->p[0], s = l->p[1], off = l->p[2] / 2;
  for (uint32_t c = 0; c < l->c; c++) {
    const int8_t *plane = in + (size_t)c * H * W;
    for (int y = 0; y < l->h; y++) {
      for (int x = 0; x < l->w; x++) {
        int m = -129;
        for (int ky = 0; ky < sz; ky++) {
          int iy = y * s - off + ky;
          if (iy < 0 || iy >= (int)H) continue;
          for (int kx = 0; kx < sz; kx++) {
            int ix = x * s - off + kx;
            if (ix < 0 || ix >= (int)W) continue;
            int v = plane[(size_t)iy * W + ix];
            if (v > m) m = v;
          }
        }
        out[((size_t)c * l->h + y) * l->w + x] = (int8_t)m;
      }
    }
  }
}

static void route(net_job_t *job, const layer_t *l) {
  const uint32_t plane = (uint32_t)l->h * l->w;
  uint8_t *out = job->mem + l->addr;
  uint32_t oc = 0;
  for (int j = 0; j < l->nin; j++) {
    uint32_t C, H, W;
    image_input_shape(job->img, l->in[j], &C, &H, &W);
    const uint8_t *in = job->mem + image_input_addr(job->img, l->in[j]);
    const uint32_t cs = C / l->p[0], c0 = cs * l->p[1];
    const int r = image_input_frac(job->img, l->in[j]) - l->frac;
    for (uint32_t c = 0; c < cs; c++, oc++)
      for (uint32_t i = 0; i < plane; i++)
        put(out, l->bits, oc * plane + i, fx_sat(fx_rshr((int8_t)in[(c0 + c) * plane + i], r), l->bits));
  }
}

static void shortcut(net_job_t *job, const layer_t *l) {
  const uint32_t n = (uint32_t)l->c * l->h * l->w;
  uint8_t *out = job->mem + l->addr;
  for (uint32_t i = 0; i < n; i++) {
    int64_t v = 0;
    for (int j = 0; j < l->nin; j++) {
      const int8_t *in = (const int8_t *)(job->mem + image_input_addr(job->img, l->in[j]));
      v += fx_sat(fx_rshr(in[i], image_input_frac(job->img, l->in[j]) - l->frac), l->bits);
    }
    v = fx_sat(v, l->bits);
    if (l->act == A_LEAKY) v = fx_leaky(v);
    else if (l->act == A_RELU && v < 0) v = 0;
    put(out, l->bits, i, (int32_t)v);
  }
}

static void upsample(net_job_t *job, const layer_t *l) {
  uint32_t C, H, W;
  image_input_shape(job->img, l->in[0], &C, &H, &W);
  const uint8_t *in = job->mem + image_input_addr(job->img, l->in[0]);
  uint8_t *out = job->mem + l->addr;
  const uint32_t s = l->p[0];
  for (uint32_t c = 0; c < l->c; c++)
    for (uint32_t y = 0; y < l->h; y++)
      for (uint32_t x = 0; x < l->w; x++)
        out[((size_t)c * l->h + y) * l->w + x] = in[((size_t)c * H + y / s) * W + x / s];
}

static void to_chw(net_job_t *job) {
  const image_t *img = job->img;
  const uint8_t *hwc = job->mem + img->slot_in[job->slot];
  uint8_t *chw = job->mem + img->input_addr;
  const uint32_t n = (uint32_t)img->in_h * img->in_w;
  for (uint32_t i = 0; i < n; i++) {
    chw[i] = hwc[3 * i];
    chw[n + i] = hwc[3 * i + 1];
    chw[2 * n + i] = hwc[3 * i + 2];
  }
}

int net_step(net_job_t *job) {
  const image_t *img = job->img;
  if (job->layer < 0) {
    to_chw(job);
    job->layer = 0;
    return NET_RUNNING;
  }
  if (job->layer >= img->L) return NET_DONE;
  const layer_t *l = &img->layers[job->layer];
  switch (l->kind) {
    case K_CONV: {
      if (!job->started) {
        start_conv(job, l);
        job->started = 1;
        return NET_RUNNING;
      }
      uint32_t st = hal_accel_read(ACC_STATUS);
      if (st & ACC_ST_BUSY) return NET_RUNNING;
      job->started = 0;
      if ((st & ACC_ST_ERROR) || !(st & ACC_ST_DONE)) {
        job->err_code = (st >> 8) & 0xffu;
        job->err_layer = (uint16_t)job->layer;
        return NET_ERROR;
      }
      uint32_t cyc = hal_accel_read(ACC_CYCLES);
      job->layer_cycles[job->layer] = cyc;
      job->cycles += cyc;
      job->n_accel++;
      if (l->lut_n) apply_lut(job, l);
      break;
    }
    case K_MAXPOOL: maxpool(job, l); job->n_cpu++; break;
    case K_ROUTE: route(job, l); job->n_cpu++; break;
    case K_SHORTCUT: shortcut(job, l); job->n_cpu++; break;
    case K_UPSAMPLE: upsample(job, l); job->n_cpu++; break;
    case K_DROPOUT: break;
    case K_YOLO: {
      uint32_t C, H, W;
      image_input_shape(img, l->in[0], &C, &H, &W);
      memcpy(job->mem + img->slot_res[job->slot] + l->head_off, job->mem + l->addr, C * H * W * (l->bits / 8u));
      break;
    }
  }
  job->layer++;
  return job->layer >= img->L ? NET_DONE : NET_RUNNING;
}
