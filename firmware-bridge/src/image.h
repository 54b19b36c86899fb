/*
 * The device image (docs/formats/serial-protocol.md §7): parsing, the checks of §7.3, the layout
 * of the accelerator's memory, and loading (weights unpacked, channel parameters with TS/OS).
 */
#ifndef IMAGE_H
#define IMAGE_H
#include <stddef.h>
#include <stdint.h>
#include "caps.h"

enum { K_CONV = 1, K_MAXPOOL = 2, K_ROUTE = 3, K_SHORTCUT = 4, K_UPSAMPLE = 5, K_DROPOUT = 6, K_YOLO = 7 };
enum { A_LINEAR = 0, A_LEAKY = 1, A_RELU = 2, A_MISH = 3, A_SWISH = 4, A_LOGISTIC = 5 };

#define IMG_HEADER 128
#define IMG_RECORD 56
#define IMG_VERSION 1
#define IMG_ARITHMETIC 1

typedef struct {
  uint8_t kind, act, nin, bits;
  int16_t frac;
  int16_t in[CAP_MAX_INPUTS];
  uint16_t c, h, w;
  uint16_t p[6];
  uint32_t params_off, weights_off, lut_off;
  uint16_t lut_n;
  int16_t lut_shift;
  int32_t lut_z;
  /* Layout in the accelerator's memory. */
  uint32_t addr;    /* output tensor (an alias's is its input's) */
  uint32_t scratch; /* conv with a table: the accelerator's 16-bit output */
  uint32_t w_addr, p_addr, lut_addr;
  uint32_t head_off; /* yolo: offset of its head in a slot's result */
} layer_t;

typedef struct {
  char name[64];
  uint32_t size;
  uint16_t L, heads;
  uint16_t in_c, in_h, in_w;
  layer_t layers[CAP_MAX_LAYERS];
  uint16_t head_layer[CAP_MAX_HEADS];
  uint32_t input_addr; /* the frame as CHW uint8 */
  uint32_t in_bytes;   /* a slot's frame: 3·h·w (HWC) */
  uint32_t result_bytes;
  uint32_t slot_in[CAP_SLOTS], slot_res[CAP_SLOTS];
  uint32_t mem_used;
} image_t;

/* Where image bytes come from: the staging area or the active image of the storage. */
typedef int (*image_read_fn)(uint32_t off, uint8_t *data, uint32_t n);

/* What the accelerator offers (from its ID register) and how much memory there is. */
typedef struct {
  uint32_t max_k;
  uint32_t mem_bytes;
} accel_caps_t;

/*
 * Parses and checks an image of `size` bytes, lays out the accelerator's memory and, when `load`
 * is set, writes weights, channel parameters and tables into `mem`. Returns E_OK, E_IMAGE (reason
 * in why), E_NO_MEMORY or E_STORAGE.
 */
int image_process(image_t *img, image_read_fn rd, uint32_t size, const accel_caps_t *caps, uint8_t *mem,
                  int load, char *why, size_t why_len);

/* Input shape of layer input index i (-1: the network input). */
void image_input_shape(const image_t *img, int i, uint32_t *c, uint32_t *h, uint32_t *w);
/* Format of the tensor read from input index i. */
int image_input_bits(const image_t *img, int i);
int image_input_frac(const image_t *img, int i);
/* Address of the tensor read from input index i. */
uint32_t image_input_addr(const image_t *img, int i);

#endif
