/*
 * The memory map of the soft-CPU build (an example SoC: an RV32IMC core, a UART with FIFOs, a
 * timer, the conv accelerator's registers, external RAM shared with the accelerator, and a SPI
 * flash behind a small controller). Addresses are this example's; a board changes them here.
 */
#ifndef BOARD_H
#define BOARD_H
#include <stdint.h>

#define MMIO32(a) (*(volatile uint32_t *)(uintptr_t)(a))

#define UART_DATA MMIO32(0x10000000u)  /* write: send a byte; read: bit 31 set = empty, else a byte */
#define UART_STAT MMIO32(0x10000004u)  /* bit 0: TX FIFO full */
#define TIMER_US MMIO32(0x10001000u)   /* free-running microseconds */
#define TRNG MMIO32(0x10001004u)       /* a random word (ring-oscillator TRNG) */
#define ACCEL_REGS 0x20000000u         /* accelerator.md register file, word offsets */
#define EXT_RAM ((uint8_t *)0x40000000u)
#define EXT_RAM_BYTES (8u << 20)       /* 8 MiB PSRAM/SDRAM */
#define FLASH_MAP ((const uint8_t *)0x30000000u) /* memory-mapped SPI flash (reads) */
#define FLASH_CMD MMIO32(0x10002000u)  /* write 1: erase the 4 KiB sector at FLASH_ADDR; 2: program FLASH_DATA */
#define FLASH_ADDR MMIO32(0x10002004u)
#define FLASH_DATA MMIO32(0x10002008u)
#define FLASH_BUSY MMIO32(0x1000200Cu)
#define FLASH_SLOT_BYTES (4u << 20)    /* two slots of 4 MiB after a 4 KiB directory sector */

#endif
