/* The HAL on the soft CPU (rv32/board.h): polled UART, a microsecond timer, the accelerator's
 * registers and memory, and two flash slots with a directory sector for atomic commits. */
#include <string.h>
#include "board.h"
#include "hal.h"
#include "hal_accel.h"

int hal_link_read(uint8_t *buf, int max) {
  int n = 0;
  while (n < max) {
    uint32_t v = UART_DATA;
    if (v & 0x80000000u) break;
    buf[n++] = (uint8_t)v;
  }
  return n;
}

void hal_link_write(const uint8_t *buf, int n) {
  for (int i = 0; i < n; i++) {
    while (UART_STAT & 1u) {
    }
    UART_DATA = buf[i];
  }
}

uint32_t hal_time_us(void) { return TIMER_US; }
uint32_t hal_time_ms(void) { return TIMER_US / 1000u; }
static uint32_t boot;
uint32_t hal_boot_id(void) {
  if (!boot) boot = TRNG | 1u;
  return boot;
}

void hal_accel_write(uint32_t reg, uint32_t value) { MMIO32(ACCEL_REGS + 4u * reg) = value; }
uint32_t hal_accel_read(uint32_t reg) { return MMIO32(ACCEL_REGS + 4u * reg); }
uint8_t *hal_accel_mem(void) { return EXT_RAM; }
uint32_t hal_accel_mem_size(void) { return EXT_RAM_BYTES; }

/* Flash: sector 0 is the directory {magic, active slot, size}; slots at 4 KiB and 4 KiB + 4 MiB.
 * The directory is rewritten only after the staged slot is complete, so a reset leaves either
 * directory in place. */
#define DIR_MAGIC 0x5A514449u
static uint32_t stage_slot, stage_size;

static void flash_wait(void) {
  while (FLASH_BUSY) {
  }
}
static void flash_erase(uint32_t addr) {
  FLASH_ADDR = addr;
  FLASH_CMD = 1;
  flash_wait();
}
static void flash_word(uint32_t addr, uint32_t w) {
  FLASH_ADDR = addr;
  FLASH_DATA = w;
  FLASH_CMD = 2;
  flash_wait();
}
static uint32_t dir_word(int i) {
  uint32_t w;
  memcpy(&w, FLASH_MAP + 4 * i, 4);
  return w;
}
static int dir_valid(void) { return dir_word(0) == DIR_MAGIC && dir_word(1) < 2 && dir_word(2) <= FLASH_SLOT_BYTES; }
static uint32_t slot_base(uint32_t s) { return 4096u + s * FLASH_SLOT_BYTES; }

uint32_t hal_nv_capacity(void) { return FLASH_SLOT_BYTES; }

int hal_nv_stage_begin(uint32_t size) {
  if (size > FLASH_SLOT_BYTES) return -1;
  stage_slot = dir_valid() ? 1u - dir_word(1) : 0u;
  stage_size = size;
  for (uint32_t a = 0; a < size; a += 4096u) flash_erase(slot_base(stage_slot) + a);
  return 0;
}

/* Programs whole words; UPLOAD_DATA chunks are multiples of 4 except the last. A word programmed
 * twice with the same bytes (a retried chunk) is harmless on NOR flash. */
int hal_nv_stage_write(uint32_t off, const uint8_t *d, uint32_t n) {
  if (off > stage_size || n > stage_size - off || (off & 3u)) return -1;
  for (uint32_t i = 0; i < n; i += 4) {
    uint32_t w = 0xFFFFFFFFu;
    memcpy(&w, d + i, n - i < 4 ? n - i : 4);
    flash_word(slot_base(stage_slot) + off + i, w);
  }
  return 0;
}

int hal_nv_stage_read(uint32_t off, uint8_t *d, uint32_t n) {
  if (off > stage_size || n > stage_size - off) return -1;
  memcpy(d, FLASH_MAP + slot_base(stage_slot) + off, n);
  return 0;
}

int hal_nv_commit(void) {
  flash_erase(0);
  flash_word(8, stage_size);
  flash_word(4, stage_slot);
  flash_word(0, DIR_MAGIC); /* last: the directory is valid only once complete */
  return dir_valid() ? 0 : -1;
}

uint32_t hal_nv_active_size(void) { return dir_valid() ? dir_word(2) : 0; }

int hal_nv_active_read(uint32_t off, uint8_t *d, uint32_t n) {
  uint32_t size = hal_nv_active_size();
  if (off > size || n > size - off) return -1;
  memcpy(d, FLASH_MAP + slot_base(dir_word(1)) + off, n);
  return 0;
}
