#include "tiny_image.h"
#include <string.h>
#include "frame.h"
#include "image.h"

/* The device image of a network with one 1x1 conv (3 → 1 channel, 4-bit weights, 16-bit output)
 * read by one yolo layer, on a 1x2 input. */
size_t tiny_image(uint8_t *img, int16_t M, int32_t B) {
  memset(img, 0, 512);
  memcpy(img, "ZQDI", 4);
  wr16(img + 4, 1);
  wr16(img + 6, 128);
  wr16(img + 12, 2);
  wr16(img + 14, 1);
  wr16(img + 16, 3);
  wr16(img + 18, 1);
  wr16(img + 20, 2);
  wr16(img + 22, 56);
  wr32(img + 24, 128);
  wr32(img + 28, 128 + 2 * 56);
  wr32(img + 32, 1);
  strcpy((char *)img + 64, "tiny-test");
  uint8_t *r = img + 128;
  r[0] = K_CONV;
  r[1] = A_LINEAR;
  r[2] = 1;
  r[3] = 16;
  wr16(r + 4, 8);
  for (int j = 0; j < 4; j++) wr16(r + 8 + 2 * j, 0xFFFF);
  wr16(r + 16, 1);
  wr16(r + 18, 1);
  wr16(r + 20, 2);
  const uint16_t p[6] = { 1, 1, 1, 0, 1, 4 };
  for (int j = 0; j < 6; j++) wr16(r + 24 + 2 * j, p[j]);
  const uint32_t params = 240, weights = 248;
  wr32(r + 36, params);
  wr32(r + 40, weights);
  r = img + 128 + 56;
  r[0] = K_YOLO;
  r[2] = 1;
  r[3] = 16;
  wr16(r + 4, 8);
  wr16(r + 8, 0);
  for (int j = 1; j < 4; j++) wr16(r + 8 + 2 * j, 0xFFFF);
  wr16(r + 16, 1);
  wr16(r + 18, 1);
  wr16(r + 20, 2);
  /* B, M, fw = 0, fm = 1 (TS = 1); weights 1, 1, −1 in 4 bits: nibbles 1, 1, F. */
  wr32(img + params, (uint32_t)B);
  wr16(img + params + 4, (uint16_t)M);
  img[params + 6] = 0;
  img[params + 7] = 1;
  img[weights] = 0x11;
  img[weights + 1] = 0x0F;
  const size_t size = 252;
  wr32(img + 8, (uint32_t)size);
  return size;
}

