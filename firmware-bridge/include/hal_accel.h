/*
 * The accelerator as the firmware sees it: docs/formats/accelerator.md (version 1).
 * Three implementations: the C model (accel_model.c, prefix model_), the Verilated RTL
 * (firmware-bridge/rtl/, prefix rtl_) and the board's memory-mapped registers.
 */
#ifndef HAL_ACCEL_H
#define HAL_ACCEL_H
#include <stdint.h>

/* Register word offsets of accelerator.md. */
enum {
  ACC_CTRL = 0, ACC_STATUS = 1, ACC_CYCLES = 2, ACC_IN_ADDR = 3, ACC_OUT_ADDR = 4, ACC_W_ADDR = 5,
  ACC_P_ADDR = 6, ACC_IN_C = 7, ACC_IN_H = 8, ACC_IN_W = 9, ACC_OUT_C = 10, ACC_OUT_H = 11,
  ACC_OUT_W = 12, ACC_KSIZE = 13, ACC_STRIDE = 14, ACC_PAD = 15, ACC_GROUPS = 16, ACC_FLAGS = 17,
  ACC_ID = 18, ACC_NREGS = 19
};
enum { ACC_ST_BUSY = 1u, ACC_ST_DONE = 2u, ACC_ST_ERROR = 4u };
enum { ACC_FL_UINT8_IN = 1u, ACC_FL_LEAKY = 1u << 1, ACC_FL_RELU = 2u << 1, ACC_FL_OUT16 = 1u << 3 };
enum { ACC_ERR_SHAPE = 1, ACC_ERR_MEMORY = 2 };

void     hal_accel_write(uint32_t reg, uint32_t value); /* word offsets of accelerator.md */
uint32_t hal_accel_read(uint32_t reg);                   /* polling STATUS until not busy */
uint8_t *hal_accel_mem(void);                            /* shared external memory as the CPU sees it */
uint32_t hal_accel_mem_size(void);

#endif
