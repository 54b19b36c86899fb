/* Set-up of the host build's HAL (host/hal_host.c, host/accel_select.c). */
#ifndef HAL_HOST_H
#define HAL_HOST_H
#include <stddef.h>
#include <stdint.h>

/* Creates a pty, links it at `link`, and paces it at baud/10 bytes/s (0: unthrottled).
 * 0 ok, -1 system error, -2 `link` exists and is not a symlink. */
int host_link_open(const char *link, uint32_t baud, char *name, size_t name_len);
void host_link_close(const char *link, const char *name);
int host_link_fd(void);
uint64_t host_link_dropped(void);
/* Seconds until the throttled link may deliver the next byte (0 unthrottled or due). */
double host_link_wait_s(void);

/* Storage in state_dir (NULL: in memory, lost at exit), at most cap bytes per image. */
int host_nv_init(const char *state_dir, uint32_t cap);

/* Picks the accelerator behind hal_accel_*: "model" or "rtl". 0 ok, -1 unknown name,
 * -2 rtl not linked into this build, -3 its initialisation failed. */
int host_accel_select(const char *name, uint32_t mem_bytes);
/* Readable when the accelerator finished a layer (drain it); whether a layer is computing. */
int host_accel_done_fd(void);
int host_accel_running(void);

#endif
