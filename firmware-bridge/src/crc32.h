/* CRC-32 (IEEE 802.3 / zlib): reflected polynomial 0xEDB88320, init and final xor 0xFFFFFFFF. */
#ifndef CRC32_H
#define CRC32_H
#include <stdint.h>
#include <stddef.h>

/* crc32_update(0, data, n) is the CRC of data; feeding pieces in order gives the same result. */
uint32_t crc32_update(uint32_t crc, const uint8_t *data, size_t n);

#endif
