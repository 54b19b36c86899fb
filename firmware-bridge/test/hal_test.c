/* A HAL for the unit tests: the link is two memory buffers, the time a counter, the storage memory,
 * the accelerator the C model on a memory of the test's. */
#include "hal_test.h"
#include <string.h>
#include "accel_model.h"
#include "hal.h"
#include "hal_accel.h"

uint8_t test_tx[1 << 20];
size_t test_tx_len;
uint32_t test_time_ms;

static uint8_t nv_active[1 << 16], nv_stage[1 << 16];
static uint32_t active_size, stage_size;

int hal_link_read(uint8_t *buf, int max) { (void)buf; (void)max; return 0; }
void hal_link_write(const uint8_t *buf, int n) {
  if (test_tx_len + (size_t)n <= sizeof test_tx) {
    memcpy(test_tx + test_tx_len, buf, (size_t)n);
    test_tx_len += (size_t)n;
  }
}
uint32_t hal_time_ms(void) { return test_time_ms; }
uint32_t hal_time_us(void) { return test_time_ms * 1000u; }
uint32_t hal_boot_id(void) { return 0x12345678u; }

uint32_t hal_nv_capacity(void) { return sizeof nv_active; }
int hal_nv_stage_begin(uint32_t size) {
  if (size > sizeof nv_stage) return -1;
  stage_size = size;
  memset(nv_stage, 0, size);
  return 0;
}
int hal_nv_stage_write(uint32_t off, const uint8_t *d, uint32_t n) {
  if (off > stage_size || n > stage_size - off) return -1;
  memcpy(nv_stage + off, d, n);
  return 0;
}
int hal_nv_stage_read(uint32_t off, uint8_t *d, uint32_t n) {
  if (off > stage_size || n > stage_size - off) return -1;
  memcpy(d, nv_stage + off, n);
  return 0;
}
int hal_nv_commit(void) {
  memcpy(nv_active, nv_stage, stage_size);
  active_size = stage_size;
  return 0;
}
uint32_t hal_nv_active_size(void) { return active_size; }
int hal_nv_active_read(uint32_t off, uint8_t *d, uint32_t n) {
  if (off > active_size || n > active_size - off) return -1;
  memcpy(d, nv_active + off, n);
  return 0;
}
void test_nv_clear(void) { active_size = stage_size = 0; }

void hal_accel_write(uint32_t reg, uint32_t value) { model_accel_write(reg, value); }
uint32_t hal_accel_read(uint32_t reg) { return model_accel_read(reg); }
uint8_t *hal_accel_mem(void) { return model_accel_mem(); }
uint32_t hal_accel_mem_size(void) { return model_accel_mem_size(); }
