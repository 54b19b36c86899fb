/* The bridge firmware's core: everything above the HAL. A main loop feeds it link bytes and polls it. */
#ifndef BRIDGE_H
#define BRIDGE_H
#include <stddef.h>
#include <stdint.h>

void bridge_init(void);                        /* after the HAL is up: reads ID, loads the stored image */
void bridge_rx(const uint8_t *data, size_t n); /* bytes from the link; responses go out through the HAL */
void bridge_poll(void);                        /* one step of the frame being computed */
int bridge_busy(void);                         /* a frame is queued or being computed */

#endif
