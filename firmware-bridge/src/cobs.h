/* Consistent Overhead Byte Stuffing: the encoding holds no zero byte; 0x00 ends a frame. */
#ifndef COBS_H
#define COBS_H
#include <stddef.h>
#include <stdint.h>

/* Largest encoding of n bytes (without the delimiter). */
#define COBS_MAX(n) ((n) + ((n) + 253) / 254 + 1)

/* Encodes n bytes into out (room for COBS_MAX(n)); returns the encoded length. */
size_t cobs_encode(const uint8_t *in, size_t n, uint8_t *out);

/* Decodes n encoded bytes (no delimiter) into out (may equal in: decoding never grows);
 * returns the decoded length, or -1 if the input is not a valid encoding (a zero byte, or a
 * code pointing past the end). */
long cobs_decode(const uint8_t *in, size_t n, uint8_t *out);

#endif
