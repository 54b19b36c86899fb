/*
 * Runs a loaded image on one frame, one step at a time, so the bridge keeps serving the link
 * while the accelerator computes: a step converts the frame, starts a conv, checks a running
 * conv, or runs one of the soft CPU's layers.
 */
#ifndef NET_H
#define NET_H
#include <stdint.h>
#include "image.h"

enum { NET_RUNNING = 0, NET_DONE = 1, NET_ERROR = 2 };

typedef struct {
  const image_t *img;
  uint8_t *mem;
  uint32_t slot;
  int layer;      /* -1: the frame is not converted yet */
  int started;    /* the current conv has been started */
  uint64_t cycles;
  uint16_t n_accel, n_cpu;
  uint32_t *layer_cycles; /* one per layer */
  uint32_t err_code;      /* accelerator error code */
  uint16_t err_layer;
} net_job_t;

void net_start(net_job_t *job, const image_t *img, uint8_t *mem, uint32_t slot, uint32_t *layer_cycles);
int net_step(net_job_t *job);

#endif
