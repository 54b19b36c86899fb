/*
 * Packets on the wire (docs/formats/serial-protocol.md §1): header (type, status, seq, len),
 * payload, CRC-32; COBS-encoded and ended by 0x00.
 */
#ifndef FRAME_H
#define FRAME_H
#include <stddef.h>
#include <stdint.h>
#include "caps.h"
#include "cobs.h"
#include "proto.h"

#define FRAME_PKT_MAX (PKT_OVERHEAD + CAP_MAX_PAYLOAD)
#define FRAME_WIRE_MAX (COBS_MAX(FRAME_PKT_MAX) + 1)

typedef struct {
  uint8_t type;
  uint8_t status;
  uint16_t seq;
  uint16_t len;
  const uint8_t *payload;
} packet_t;

typedef struct {
  uint32_t frames;      /* packets delivered */
  uint32_t crc_errors;  /* decoded, CRC differs */
  uint32_t cobs_errors; /* not a COBS encoding, too short, or len disagrees with the size */
  uint32_t overruns;    /* longer than the buffer */
  uint32_t bytes;       /* bytes fed */
  uint32_t n;           /* encoded bytes of the frame being received */
  uint8_t dropping;     /* an overrun: skip to the next delimiter */
  uint8_t buf[COBS_MAX(FRAME_PKT_MAX)];
} frame_rx_t;

void frame_rx_init(frame_rx_t *rx);

/*
 * Consumes bytes until a packet is complete or the input ends. Returns the bytes consumed; when a
 * packet was completed, *got = 1 and *pkt points into rx (valid until the next call).
 */
size_t frame_rx_feed(frame_rx_t *rx, const uint8_t *data, size_t n, packet_t *pkt, int *got);

typedef struct {
  uint8_t pkt[FRAME_PKT_MAX];
  uint8_t wire[FRAME_WIRE_MAX];
} frame_tx_t;

/* Where the payload of the next packet goes (CAP_MAX_PAYLOAD bytes of room). */
static inline uint8_t *frame_tx_payload(frame_tx_t *tx) { return tx->pkt + PKT_HEADER; }

/* Completes the packet whose payload (len bytes) is in place; returns the wire bytes in tx->wire. */
size_t frame_tx_finish(frame_tx_t *tx, uint8_t type, uint8_t status, uint16_t seq, uint16_t len);

/* Encodes a whole packet from separate parts into wire (room for FRAME_WIRE_MAX); for tests and tools. */
size_t frame_encode(uint8_t type, uint8_t status, uint16_t seq, const uint8_t *payload, uint16_t len,
                    uint8_t *scratch, uint8_t *wire);

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void wr32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void wr64(uint8_t *p, uint64_t v) { wr32(p, (uint32_t)v); wr32(p + 4, (uint32_t)(v >> 32)); }

#endif
