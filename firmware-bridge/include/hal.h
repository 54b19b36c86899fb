/*
 * The rest of the bridge firmware's hardware abstraction: the byte link, a timer, non-volatile
 * storage for the device image. Host build: host/hal_host.c (a pty, the monotonic clock, files);
 * soft CPU: rv32/hal_rv32.c. The accelerator is include/hal_accel.h.
 */
#ifndef HAL_H
#define HAL_H
#include <stdint.h>

/* Byte link. read: never blocks; returns the bytes read (0: none). write: returns when every
 * byte is on its way (a link nobody listens to may drop them, as a UART would). */
int hal_link_read(uint8_t *buf, int max);
void hal_link_write(const uint8_t *buf, int n);

/* Timer: free-running milliseconds and microseconds (both wrap). */
uint32_t hal_time_ms(void);
uint32_t hal_time_us(void);

/* A value that differs at every start of the firmware. */
uint32_t hal_boot_id(void);

/* Non-volatile storage of the device image: one active image and one staging area. Writing the
 * staging area never touches the active image; commit makes the staged image the active one
 * atomically (after a reset, either the old or the new one is active, never a mix).
 * Functions returning int: 0 ok, -1 failure. */
uint32_t hal_nv_capacity(void);
int hal_nv_stage_begin(uint32_t size);
int hal_nv_stage_write(uint32_t off, const uint8_t *data, uint32_t n);
int hal_nv_stage_read(uint32_t off, uint8_t *data, uint32_t n);
int hal_nv_commit(void);
uint32_t hal_nv_active_size(void); /* 0: no active image */
int hal_nv_active_read(uint32_t off, uint8_t *data, uint32_t n);

#endif
