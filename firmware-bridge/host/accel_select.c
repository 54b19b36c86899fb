/* hal_accel_* of the host build: the C model, or the Verilated RTL when it is linked in. */
#include <string.h>
#include "accel_model.h"
#include "hal_accel.h"
#include "hal_host.h"

#ifdef HAVE_ACCEL_RTL
int      rtl_accel_init(uint32_t mem_bytes);
void     rtl_accel_write(uint32_t reg, uint32_t value);
uint32_t rtl_accel_read(uint32_t reg);
uint8_t *rtl_accel_mem(void);
uint32_t rtl_accel_mem_size(void);
#endif

static void (*acc_write)(uint32_t, uint32_t) = model_accel_write;
static uint32_t (*acc_read)(uint32_t) = model_accel_read;
static uint8_t *(*acc_mem)(void) = model_accel_mem;
static uint32_t (*acc_mem_size)(void) = model_accel_mem_size;

int host_accel_select(const char *name, uint32_t mem_bytes) {
  if (strcmp(name, "model") == 0) {
    acc_write = model_accel_write;
    acc_read = model_accel_read;
    acc_mem = model_accel_mem;
    acc_mem_size = model_accel_mem_size;
    return model_accel_init(mem_bytes) == 0 ? 0 : -3;
  }
  if (strcmp(name, "rtl") == 0) {
#ifdef HAVE_ACCEL_RTL
    acc_write = rtl_accel_write;
    acc_read = rtl_accel_read;
    acc_mem = rtl_accel_mem;
    acc_mem_size = rtl_accel_mem_size;
    return rtl_accel_init(mem_bytes) == 0 ? 0 : -3;
#else
    return -2;
#endif
  }
  return -1;
}

void hal_accel_write(uint32_t reg, uint32_t value) { acc_write(reg, value); }
uint32_t hal_accel_read(uint32_t reg) { return acc_read(reg); }
uint8_t *hal_accel_mem(void) { return acc_mem(); }
uint32_t hal_accel_mem_size(void) { return acc_mem_size(); }
