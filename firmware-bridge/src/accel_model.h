/*
 * The C model of the conv accelerator (docs/formats/accelerator.md), written from
 * docs/formats/fixed-point.md "Convolution". A start computes the whole layer at once, so STATUS
 * is never busy when read. CYCLES is a nominal count for an 8-multiplier array
 * (O·Ho·Wo·(ceil(Cg·k²/8) + 2)), not a measurement: the RTL's counts are measured.
 */
#ifndef ACCEL_MODEL_H
#define ACCEL_MODEL_H
#include <stdint.h>

#define MODEL_MAX_K 7
#define MODEL_MACS 8

int      model_accel_init(uint32_t mem_bytes); /* 0 ok; allocates the memory once, at start */
void     model_accel_write(uint32_t reg, uint32_t value);
uint32_t model_accel_read(uint32_t reg);
uint8_t *model_accel_mem(void);
uint32_t model_accel_mem_size(void);

/* Tests: run the layer of the given registers on a memory the caller provides. */
void model_accel_attach(uint8_t *mem, uint32_t bytes);

#endif
