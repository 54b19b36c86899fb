/*
 * Capacities of this firmware build. Every buffer of the firmware is static and sized from these;
 * HELLO reports them (docs/formats/serial-protocol.md §3). A board build overrides them with -D.
 */
#ifndef CAPS_H
#define CAPS_H

#ifndef CAP_MAX_PAYLOAD
#define CAP_MAX_PAYLOAD 4104 /* largest packet payload accepted and sent: 4096 data bytes + 8 of fields */
#endif
#ifndef CAP_WINDOW
#define CAP_WINDOW 4 /* requests the host may have outstanding */
#endif
#ifndef CAP_SLOTS
#define CAP_SLOTS 2 /* frames held at once */
#endif
#ifndef CAP_MAX_LAYERS
#define CAP_MAX_LAYERS 256
#endif
#ifndef CAP_MAX_LUT
#define CAP_MAX_LUT 4096
#endif
#ifndef CAP_MAX_SIDE
#define CAP_MAX_SIDE 1024
#endif
#define CAP_MAX_INPUTS 4
#define CAP_MAX_STRIDE 2 /* accelerator.md version 1 */
#define CAP_MAX_HEADS 8
#define FIRMWARE_NAME "zeroq-bridge 1.0"

#endif
