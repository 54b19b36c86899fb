/*
 * libFuzzer target: the bridge's byte input (frame parser, COBS, CRC) and, behind it, every packet
 * handler. Byte 0 of an input picks the mode:
 *   bit 0 clear: the rest goes to the link as it is (the parser must survive any bytes);
 *   bit 0 set:   the rest is a list of packets [type, len (u16), payload...] that the harness frames
 *                with a correct CRC, so the handlers see arbitrary payloads;
 *   bit 1 set:   a small valid device image is stored and loaded first, so frame slots, INFER and
 *                READ are reachable;
 *   bit 2 set:   the rest is a device image: stored, checked and loaded (image.c on any bytes), and
 *                when it loads, one zero frame is run through it (net.c on whatever network it holds).
 * The firmware's state is rebuilt for every input.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "accel_model.h"
#include "bridge.h"
#include "crc32.h"
#include "frame.h"
#include "hal.h"
#include "hal_test.h"
#include "tiny_image.h"

static uint8_t mem[1 << 16];

static void send_packet(uint8_t type, const uint8_t *payload, uint16_t len) {
  static uint8_t scratch[FRAME_PKT_MAX], wire[FRAME_WIRE_MAX];
  size_t w = frame_encode(type, 0, 1, payload, len, scratch, wire);
  bridge_rx(wire, w);
  while (bridge_busy()) bridge_poll();
  test_tx_len = 0;
}

/* A frame of zeros through whatever image loaded (its input size read from its header). */
static void run_zero_frame(const uint8_t *img, size_t n) {
  if (n < 22) return;
  const uint32_t h = rd16(img + 18), w = rd16(img + 20), bytes = 3u * h * w;
  if (bytes == 0 || bytes > sizeof mem) return;
  static uint8_t pl[5 + 1024], zeros[1024];
  for (uint32_t off = 0; off < bytes; off += 1024) {
    uint32_t k = bytes - off < 1024 ? bytes - off : 1024;
    pl[0] = 0;
    wr32(pl + 1, off);
    memset(pl + 5, 0, k);
    send_packet(MSG_FRAME_DATA, pl, (uint16_t)(5 + k));
  }
  uint32_t crc = 0;
  for (uint32_t off = 0; off < bytes; off += 1024) crc = crc32_update(crc, zeros, bytes - off < 1024 ? bytes - off : 1024);
  uint8_t inf[12] = { 0 };
  wr32(inf + 4, 1);
  wr32(inf + 8, crc);
  send_packet(MSG_INFER, inf, 12);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static uint8_t scratch[FRAME_PKT_MAX], wire[FRAME_WIRE_MAX], img[512];
  if (size == 0) return 0;
  model_accel_attach(mem, sizeof mem);
  test_nv_clear();
  if (data[0] & 2) {
    size_t n = tiny_image(img, 2, -7);
    hal_nv_stage_begin((uint32_t)n);
    hal_nv_stage_write(0, img, (uint32_t)n);
    hal_nv_commit();
  }
  if (data[0] & 4) {
    hal_nv_stage_begin((uint32_t)(size - 1));
    hal_nv_stage_write(0, data + 1, (uint32_t)(size - 1));
    hal_nv_commit();
    bridge_init();
    run_zero_frame(data + 1, size - 1);
    return 0;
  }
  bridge_init();
  test_tx_len = 0;
  const uint8_t *p = data + 1;
  size_t n = size - 1;
  if (!(data[0] & 1)) {
    bridge_rx(p, n);
  } else {
    uint16_t seq = 0;
    while (n >= 3) {
      uint8_t type = p[0];
      size_t len = (size_t)(p[1] | (p[2] << 8));
      p += 3;
      n -= 3;
      if (len > n) len = n;
      if (len > CAP_MAX_PAYLOAD) len = CAP_MAX_PAYLOAD;
      size_t w = frame_encode(type, 0, seq++, p, (uint16_t)len, scratch, wire);
      bridge_rx(wire, w);
      while (bridge_busy()) bridge_poll();
      p += len;
      n -= len;
      test_tx_len = 0;
    }
  }
  while (bridge_busy()) bridge_poll();
  return 0;
}
