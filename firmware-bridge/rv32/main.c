/* The bridge firmware's main loop on the soft CPU: feed link bytes, step the frame being computed. */
#include "bridge.h"
#include "hal.h"

int main(void) {
  static uint8_t buf[64];
  bridge_init();
  for (;;) {
    int n = hal_link_read(buf, (int)sizeof buf);
    if (n > 0) bridge_rx(buf, (size_t)n);
    if (bridge_busy()) bridge_poll();
  }
}
