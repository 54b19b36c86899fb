/* A hand-made device image for the unit tests and the fuzz target. */
#ifndef TINY_IMAGE_H
#define TINY_IMAGE_H
#include <stddef.h>
#include <stdint.h>
/* One 1x1 conv (3 -> 1 channel, 4-bit weights 1, 1, -1, fw 0, fm 1, the given M and B, 16-bit
 * output with 8 fraction bits) read by one yolo layer, on a 1x2 input; 252 bytes into img (512). */
size_t tiny_image(uint8_t *img, int16_t M, int32_t B);
#endif
