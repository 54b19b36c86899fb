/* The Verilated accelerator behind C functions: the same calls as the bridge's C model (prefix rtl_
 * instead of model_). The shim owns the external memory and serves the RTL's memory port from it. */
#ifndef ACCEL_RTL_H
#define ACCEL_RTL_H
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

int rtl_accel_init(uint32_t mem_bytes);          /* 0 on success; may be called again to resize */
void rtl_accel_write(uint32_t reg, uint32_t value); /* writing CTRL = 1 runs the layer to its end */
uint32_t rtl_accel_read(uint32_t reg);
uint8_t *rtl_accel_mem(void);
uint32_t rtl_accel_mem_size(void);

/* Memory port timing: read data `latency` cycles after the request (>= 1), one request accepted every
 * `interval` cycles (>= 1). Defaults 4 and 1, or the environment's ZQ_RTL_MEM_LATENCY and
 * ZQ_RTL_MEM_INTERVAL. */
void rtl_accel_mem_timing(uint32_t latency, uint32_t interval);

/* Port traffic of the last layer, in 32-bit words. */
typedef struct {
  uint64_t reads, writes, cycles;
  uint32_t out_of_range;      /* accesses past the memory (the RTL must refuse them first: always 0) */
} rtl_accel_stats_t;
void rtl_accel_stats(rtl_accel_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
