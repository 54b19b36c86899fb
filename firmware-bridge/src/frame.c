#include "frame.h"
#include <string.h>
#include "crc32.h"

void frame_rx_init(frame_rx_t *rx) { memset(rx, 0, sizeof *rx); }

/* A complete encoded frame is in rx->buf[0..n): decode in place and check it. */
static int finish(frame_rx_t *rx, packet_t *pkt) {
  long m = cobs_decode(rx->buf, rx->n, rx->buf);
  if (m < PKT_OVERHEAD || rd16(rx->buf + 4) != (uint32_t)m - PKT_OVERHEAD) {
    rx->cobs_errors++;
    return 0;
  }
  size_t body = (size_t)m - 4;
  if (crc32_update(0, rx->buf, body) != rd32(rx->buf + body)) {
    rx->crc_errors++;
    return 0;
  }
  pkt->type = rx->buf[0];
  pkt->status = rx->buf[1];
  pkt->seq = rd16(rx->buf + 2);
  pkt->len = rd16(rx->buf + 4);
  pkt->payload = rx->buf + PKT_HEADER;
  rx->frames++;
  return 1;
}

size_t frame_rx_feed(frame_rx_t *rx, const uint8_t *data, size_t n, packet_t *pkt, int *got) {
  *got = 0;
  for (size_t i = 0; i < n; i++) {
    uint8_t b = data[i];
    rx->bytes++;
    if (b == 0) {
      int ok = 0;
      if (rx->dropping) rx->dropping = 0;
      else if (rx->n > 0) ok = finish(rx, pkt);
      rx->n = 0;
      if (ok) {
        *got = 1;
        return i + 1;
      }
      continue;
    }
    if (rx->dropping) continue;
    if (rx->n == sizeof rx->buf) {
      rx->overruns++;
      rx->dropping = 1;
      rx->n = 0;
      continue;
    }
    rx->buf[rx->n++] = b;
  }
  return n;
}

size_t frame_tx_finish(frame_tx_t *tx, uint8_t type, uint8_t status, uint16_t seq, uint16_t len) {
  tx->pkt[0] = type;
  tx->pkt[1] = status;
  wr16(tx->pkt + 2, seq);
  wr16(tx->pkt + 4, len);
  size_t body = PKT_HEADER + (size_t)len;
  wr32(tx->pkt + body, crc32_update(0, tx->pkt, body));
  size_t w = cobs_encode(tx->pkt, body + 4, tx->wire);
  tx->wire[w++] = 0;
  return w;
}

size_t frame_encode(uint8_t type, uint8_t status, uint16_t seq, const uint8_t *payload, uint16_t len,
                    uint8_t *scratch, uint8_t *wire) {
  scratch[0] = type;
  scratch[1] = status;
  wr16(scratch + 2, seq);
  wr16(scratch + 4, len);
  if (len) memcpy(scratch + PKT_HEADER, payload, len);
  size_t body = PKT_HEADER + (size_t)len;
  wr32(scratch + body, crc32_update(0, scratch, body));
  size_t w = cobs_encode(scratch, body + 4, wire);
  wire[w++] = 0;
  return w;
}
