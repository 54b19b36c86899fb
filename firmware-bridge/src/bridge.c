/*
 * The bridge's protocol state machine (docs/formats/serial-protocol.md): packets in, responses
 * out, the device image's upload and load, frame slots and the frame being computed.
 */
#include "bridge.h"
#include <string.h>
#include "crc32.h"
#include "frame.h"
#include "hal.h"
#include "hal_accel.h"
#include "image.h"
#include "net.h"
#include "proto.h"
#include "sha256.h"

enum { SLOT_EMPTY = 0, SLOT_QUEUED, SLOT_RUNNING, SLOT_DONE, SLOT_ERROR };

typedef struct {
  uint8_t state;
  uint16_t seq; /* of the latest INFER: its response carries it */
  uint32_t frame_id;
  /* done: the response's figures; error: the error response */
  uint32_t result_crc;
  uint64_t cycles;
  uint32_t device_us;
  uint16_t n_accel, n_cpu;
  uint8_t err_status;
  uint8_t err_code;
  uint16_t err_layer;
} slot_t;

static frame_rx_t rx;
static frame_tx_t tx;
static image_t images[2];
static image_t *img;      /* the loaded image, or NULL */
static image_t *img_next; /* parsed into while checking a new one */
static uint8_t image_state;
static uint8_t digest[32];
static accel_caps_t caps;
static uint32_t accel_id, boot_id, boot_ms;
static uint16_t host_max = CAP_MAX_PAYLOAD;

static struct {
  int active;
  uint16_t token;
  uint32_t size;
  uint8_t sha[32];
} upload;
static uint16_t token_counter, committed_token;

static slot_t slots[CAP_SLOTS];
static uint8_t queue[CAP_SLOTS];
static int queued;
static net_job_t job;
static int job_active;
static uint32_t job_t0;
static uint32_t layer_cycles[CAP_SLOTS][CAP_MAX_LAYERS];

static struct {
  uint32_t frames_tx, bytes_tx, inferred, accel_errors, uploads, refused;
} st;

static uint8_t io[512]; /* staging reads (digest) */
static char why[96];

static void send(uint8_t type, uint8_t status, uint16_t seq, uint16_t len) {
  size_t n = frame_tx_finish(&tx, (uint8_t)(type | PKT_RESPONSE), status, seq, len);
  st.frames_tx++;
  st.bytes_tx += (uint32_t)n;
  hal_link_write(tx.wire, (int)n);
}

static void send_error(uint8_t type, uint8_t status, uint16_t seq, const char *text) {
  uint16_t n = 0;
  if (text) {
    n = (uint16_t)strlen(text);
    if (n > 120) n = 120;
    memcpy(frame_tx_payload(&tx), text, n);
  }
  send(type, status, seq, n);
}

static void reset_slots(void) {
  job_active = 0;
  queued = 0;
  memset(slots, 0, sizeof slots);
  /* A conv of an abandoned frame may still run on a real accelerator: let it end. */
  while (hal_accel_read(ACC_STATUS) & ACC_ST_BUSY) {
  }
}

static int rd_stage(uint32_t off, uint8_t *d, uint32_t n) { return hal_nv_stage_read(off, d, n); }
static int rd_active(uint32_t off, uint8_t *d, uint32_t n) { return hal_nv_active_read(off, d, n); }

static int digest_of(image_read_fn rd, uint32_t size, uint8_t out[32]) {
  sha256_t s;
  sha256_init(&s);
  for (uint32_t off = 0; off < size;) {
    uint32_t n = size - off < sizeof io ? size - off : (uint32_t)sizeof io;
    if (rd(off, io, n) != 0) return -1;
    sha256_update(&s, io, n);
    off += n;
  }
  sha256_final(&s, out);
  return 0;
}

/* Loads the active image of the storage (at start and after a commit). */
static int load_active(void) {
  uint32_t size = hal_nv_active_size();
  img = NULL;
  image_state = 0;
  memset(digest, 0, sizeof digest);
  if (size == 0) return E_OK;
  image_state = 2;
  if (digest_of(rd_active, size, digest) != 0) return E_STORAGE;
  int r = image_process(img_next, rd_active, size, &caps, hal_accel_mem(), 1, why, sizeof why);
  if (r != E_OK) return r;
  img = img_next;
  img_next = img == &images[0] ? &images[1] : &images[0];
  image_state = 1;
  return E_OK;
}

void bridge_init(void) {
  frame_rx_init(&rx);
  memset(&st, 0, sizeof st);
  memset(&upload, 0, sizeof upload);
  accel_id = hal_accel_read(ACC_ID);
  caps.max_k = (accel_id >> 8) & 0xffu;
  caps.mem_bytes = hal_accel_mem_size();
  boot_id = hal_boot_id();
  boot_ms = hal_time_ms();
  img_next = &images[0];
  reset_slots();
  if (load_active() != E_OK) st.refused++;
}

static void hello(const packet_t *p) {
  if (p->len < 4) {
    send_error(p->type, E_ARG, p->seq, "HELLO takes 4 bytes");
    return;
  }
  const uint8_t ver = p->payload[0], flags = p->payload[1];
  const uint16_t hm = rd16(p->payload + 2);
  uint8_t *o = frame_tx_payload(&tx);
  memset(o, 0, HELLO_BYTES);
  o[0] = PROTO_VERSION;
  o[1] = PROTO_MIN_VERSION;
  wr16(o + 2, CAP_MAX_PAYLOAD);
  o[4] = CAP_WINDOW;
  o[5] = CAP_SLOTS;
  wr16(o + 6, CAP_MAX_LAYERS);
  wr32(o + 8, (1u << 1) | (1u << 2) | (1u << 3) | (1u << 4) | (1u << 5) | (1u << 6) | (1u << 7));
  wr16(o + 12, 0x1FCu); /* Nw 2..8 */
  o[14] = 3;            /* 8- and 16-bit tensors */
  o[15] = 0x3F;         /* linear, leaky, relu, mish, swish, logistic */
  o[16] = CAP_MAX_INPUTS;
  o[17] = (uint8_t)caps.max_k;
  o[18] = CAP_MAX_STRIDE;
  wr16(o + 20, CAP_MAX_LUT);
  wr16(o + 22, CAP_MAX_SIDE);
  wr32(o + 24, caps.mem_bytes);
  wr32(o + 28, hal_nv_capacity());
  wr32(o + 32, accel_id);
  wr32(o + 36, 0);
  wr32(o + 40, boot_id);
  o[44] = image_state;
  memcpy(o + 48, digest, 32);
  wr32(o + 80, img ? img->size : 0);
  wr32(o + 84, img ? img->mem_used : 0);
  memcpy(o + 88, FIRMWARE_NAME, sizeof FIRMWARE_NAME <= 24 ? sizeof FIRMWARE_NAME : 24);
  if (img) memcpy(o + 112, img->name, strlen(img->name)); /* at most 63 bytes */
  if (ver < PROTO_MIN_VERSION || ver > PROTO_VERSION) {
    send(p->type, E_VERSION, p->seq, HELLO_BYTES);
    return;
  }
  if (hm < 256) {
    send_error(p->type, E_ARG, p->seq, "host_max_payload below 256");
    return;
  }
  host_max = hm < CAP_MAX_PAYLOAD ? hm : CAP_MAX_PAYLOAD;
  if (flags & 1u) {
    upload.active = 0;
    reset_slots();
  }
  send(p->type, E_OK, p->seq, HELLO_BYTES);
}

static void stats(const packet_t *p) {
  uint8_t *o = frame_tx_payload(&tx);
  const uint32_t v[STATS_COUNT] = { rx.frames, rx.bytes, rx.crc_errors, rx.cobs_errors, rx.overruns, st.frames_tx,
                                    st.bytes_tx, st.inferred, st.accel_errors, st.uploads, st.refused, hal_time_ms() - boot_ms };
  for (int i = 0; i < STATS_COUNT; i++) wr32(o + 4 * i, v[i]);
  send(p->type, E_OK, p->seq, 4 * STATS_COUNT);
}

static void upload_begin(const packet_t *p) {
  if (p->len != 36) {
    send_error(p->type, E_ARG, p->seq, "UPLOAD_BEGIN takes 36 bytes");
    return;
  }
  uint8_t *o = frame_tx_payload(&tx);
  memset(o, 0, 8);
  const uint32_t size = rd32(p->payload);
  wr32(o + 4, (CAP_MAX_PAYLOAD - 8u) & ~3u);
  upload.active = 0;
  if (image_state == 1 && memcmp(digest, p->payload + 4, 32) == 0 && img && img->size == size) {
    o[0] = 1;
    send(p->type, E_OK, p->seq, 8);
    return;
  }
  if (size > hal_nv_capacity() || size == 0) {
    send_error(p->type, E_TOO_BIG, p->seq, "the image does not fit the storage");
    return;
  }
  if (hal_nv_stage_begin(size) != 0) {
    send_error(p->type, E_STORAGE, p->seq, "storage");
    return;
  }
  if (++token_counter == 0) token_counter = 1;
  upload.active = 1;
  upload.token = token_counter;
  upload.size = size;
  memcpy(upload.sha, p->payload + 4, 32);
  wr16(o + 2, upload.token);
  send(p->type, E_OK, p->seq, 8);
}

static void upload_data(const packet_t *p) {
  if (p->len < 6) {
    send_error(p->type, E_ARG, p->seq, "UPLOAD_DATA takes 6 bytes and data");
    return;
  }
  const uint16_t token = rd16(p->payload);
  const uint32_t off = rd32(p->payload + 2), n = p->len - 6u;
  if (!upload.active || token != upload.token) {
    send_error(p->type, E_STATE, p->seq, "no upload with this token");
    return;
  }
  if (off > upload.size || n > upload.size - off) {
    send_error(p->type, E_RANGE, p->seq, "past the image's size");
    return;
  }
  if (hal_nv_stage_write(off, p->payload + 6, n) != 0) {
    send_error(p->type, E_STORAGE, p->seq, "storage");
    return;
  }
  send(p->type, E_OK, p->seq, 0);
}

static void upload_end(const packet_t *p) {
  if (p->len != 2) {
    send_error(p->type, E_ARG, p->seq, "UPLOAD_END takes 2 bytes");
    return;
  }
  const uint16_t token = rd16(p->payload);
  const uint32_t t0 = hal_time_ms();
  uint8_t *o = frame_tx_payload(&tx);
  if (!upload.active && token != 0 && token == committed_token && image_state == 1) {
    memcpy(o, digest, 32); /* a repeat of the END just committed */
    wr32(o + 32, 0);
    send(p->type, E_OK, p->seq, 36);
    return;
  }
  if (!upload.active || token != upload.token) {
    send_error(p->type, E_STATE, p->seq, "no upload with this token");
    return;
  }
  uint8_t sha[32];
  if (digest_of(rd_stage, upload.size, sha) != 0) {
    send_error(p->type, E_STORAGE, p->seq, "storage");
    return;
  }
  if (memcmp(sha, upload.sha, 32) != 0) {
    upload.active = 0;
    send_error(p->type, E_DIGEST, p->seq, "the staged image's sha256 differs");
    return;
  }
  int r = image_process(img_next, rd_stage, upload.size, &caps, NULL, 0, why, sizeof why);
  if (r != E_OK) {
    upload.active = 0;
    st.refused++;
    send_error(p->type, (uint8_t)r, p->seq, why);
    return;
  }
  if (hal_nv_commit() != 0) {
    upload.active = 0;
    send_error(p->type, E_STORAGE, p->seq, "storage commit");
    return;
  }
  upload.active = 0;
  committed_token = token;
  reset_slots();
  r = load_active();
  if (r != E_OK) {
    st.refused++;
    send_error(p->type, (uint8_t)r, p->seq, why);
    return;
  }
  st.uploads++;
  memcpy(o, digest, 32);
  wr32(o + 32, hal_time_ms() - t0);
  send(p->type, E_OK, p->seq, 36);
}

static void frame_data(const packet_t *p) {
  if (p->len < 5 || p->payload[0] >= CAP_SLOTS) {
    send_error(p->type, E_ARG, p->seq, "FRAME_DATA: slot, offset, data");
    return;
  }
  slot_t *s = &slots[p->payload[0]];
  const uint32_t off = rd32(p->payload + 1), n = p->len - 5u;
  if (!img) {
    send_error(p->type, E_STATE, p->seq, "no image loaded");
    return;
  }
  if (s->state == SLOT_QUEUED || s->state == SLOT_RUNNING) {
    send_error(p->type, E_BUSY, p->seq, "slot busy");
    return;
  }
  if (off > img->in_bytes || n > img->in_bytes - off) {
    send_error(p->type, E_RANGE, p->seq, "past the frame");
    return;
  }
  s->state = SLOT_EMPTY;
  memcpy(hal_accel_mem() + img->slot_in[p->payload[0]] + off, p->payload + 5, n);
  send(p->type, E_OK, p->seq, 0);
}

static void infer_response(uint32_t k, uint16_t seq) {
  slot_t *s = &slots[k];
  if (s->state == SLOT_ERROR) {
    uint8_t *o = frame_tx_payload(&tx);
    o[0] = s->err_code;
    wr16(o + 1, s->err_layer);
    send(MSG_INFER, s->err_status, seq, 3);
    return;
  }
  uint8_t *o = frame_tx_payload(&tx);
  memset(o, 0, INFER_RESP_FIXED);
  wr32(o, s->frame_id);
  o[4] = (uint8_t)k;
  o[5] = (uint8_t)img->heads;
  wr16(o + 6, s->n_accel);
  wr32(o + 8, img->result_bytes);
  wr32(o + 12, s->result_crc);
  wr64(o + 16, s->cycles);
  wr32(o + 24, s->device_us);
  memcpy(o + 28, digest, 8);
  wr16(o + 36, s->n_cpu);
  for (uint32_t h = 0; h < img->heads; h++) {
    const layer_t *y = &img->layers[img->head_layer[h]];
    uint8_t *d = o + INFER_RESP_FIXED + HEAD_DESC_BYTES * h;
    memset(d, 0, HEAD_DESC_BYTES);
    wr16(d, img->head_layer[h]);
    wr16(d + 2, y->c);
    wr16(d + 4, y->h);
    wr16(d + 6, y->w);
    d[8] = y->bits;
    wr16(d + 10, (uint16_t)y->frac);
    wr32(d + 12, y->head_off);
  }
  send(MSG_INFER, E_OK, seq, (uint16_t)(INFER_RESP_FIXED + HEAD_DESC_BYTES * img->heads));
}

static void infer(const packet_t *p) {
  if (p->len != 12 || p->payload[0] >= CAP_SLOTS) {
    send_error(p->type, E_ARG, p->seq, "INFER: slot, frame id, crc");
    return;
  }
  const uint32_t k = p->payload[0];
  slot_t *s = &slots[k];
  const uint32_t fid = rd32(p->payload + 4), crc = rd32(p->payload + 8);
  if (!img) {
    send_error(p->type, E_STATE, p->seq, "no image loaded");
    return;
  }
  if (s->frame_id == fid && (s->state == SLOT_QUEUED || s->state == SLOT_RUNNING)) {
    /* Still computing: say so at once (the host polls with repeats); the result goes to the first
     * INFER's seq, and to any repeat after it is done. */
    send_error(p->type, E_BUSY, p->seq, "computing");
    return;
  }
  if (s->frame_id == fid && (s->state == SLOT_DONE || s->state == SLOT_ERROR)) {
    infer_response(k, p->seq);
    return;
  }
  if (s->state == SLOT_QUEUED || s->state == SLOT_RUNNING) {
    send_error(p->type, E_BUSY, p->seq, "slot busy");
    return;
  }
  if (crc32_update(0, hal_accel_mem() + img->slot_in[k], img->in_bytes) != crc) {
    s->state = SLOT_EMPTY;
    send_error(p->type, E_INPUT, p->seq, "the frame's CRC differs");
    return;
  }
  s->state = SLOT_QUEUED;
  s->frame_id = fid;
  s->seq = p->seq;
  queue[queued++] = (uint8_t)k;
}

static void read_req(const packet_t *p) {
  if (p->len != 12 || p->payload[0] >= CAP_SLOTS || p->payload[1] > 1) {
    send_error(p->type, E_ARG, p->seq, "READ: slot, region, n, frame id, offset");
    return;
  }
  const uint32_t k = p->payload[0], region = p->payload[1], n = rd16(p->payload + 2);
  const uint32_t fid = rd32(p->payload + 4), off = rd32(p->payload + 8);
  slot_t *s = &slots[k];
  if (!img || s->state != SLOT_DONE || s->frame_id != fid) {
    send_error(p->type, E_STATE, p->seq, "the slot does not hold this frame");
    return;
  }
  if (n + 8u > host_max) {
    send_error(p->type, E_ARG, p->seq, "longer than the host takes");
    return;
  }
  const uint32_t total = region == 0 ? img->result_bytes : 4u * img->L;
  if (off > total || n > total - off) {
    send_error(p->type, E_RANGE, p->seq, "past the region");
    return;
  }
  uint8_t *o = frame_tx_payload(&tx);
  wr32(o, fid);
  wr32(o + 4, off);
  if (region == 0) {
    memcpy(o + 8, hal_accel_mem() + img->slot_res[k] + off, n);
  } else {
    for (uint32_t i = 0; i < n; i++) o[8 + i] = (uint8_t)(layer_cycles[k][(off + i) / 4] >> (8 * ((off + i) % 4)));
  }
  send(p->type, E_OK, p->seq, (uint16_t)(8 + n));
}

static void handle(const packet_t *p) {
  if (p->type & PKT_RESPONSE) return; /* not for us */
  switch (p->type) {
    case MSG_HELLO: hello(p); break;
    case MSG_PING:
      memmove(frame_tx_payload(&tx), p->payload, p->len);
      send(p->type, E_OK, p->seq, p->len);
      break;
    case MSG_STATS: stats(p); break;
    case MSG_UPLOAD_BEGIN: upload_begin(p); break;
    case MSG_UPLOAD_DATA: upload_data(p); break;
    case MSG_UPLOAD_END: upload_end(p); break;
    case MSG_FRAME_DATA: frame_data(p); break;
    case MSG_INFER: infer(p); break;
    case MSG_READ: read_req(p); break;
    default: send_error(p->type, E_TYPE, p->seq, "unknown message type"); break;
  }
}

void bridge_rx(const uint8_t *data, size_t n) {
  while (n > 0) {
    packet_t p;
    int got;
    size_t used = frame_rx_feed(&rx, data, n, &p, &got);
    data += used;
    n -= used;
    if (got) handle(&p);
  }
}

int bridge_busy(void) { return job_active || queued > 0; }

void bridge_poll(void) {
  if (!img) return;
  if (!job_active) {
    if (queued == 0) return;
    const uint32_t k = queue[0];
    memmove(queue, queue + 1, (size_t)--queued);
    slots[k].state = SLOT_RUNNING;
    net_start(&job, img, hal_accel_mem(), k, layer_cycles[k]);
    job_active = 1;
    job_t0 = hal_time_us();
  }
  int r = net_step(&job);
  if (r == NET_RUNNING) return;
  job_active = 0;
  slot_t *s = &slots[job.slot];
  if (r == NET_ERROR) {
    st.accel_errors++;
    s->state = SLOT_ERROR;
    s->err_status = E_ACCEL;
    s->err_code = (uint8_t)job.err_code;
    s->err_layer = job.err_layer;
  } else {
    st.inferred++;
    s->state = SLOT_DONE;
    s->cycles = job.cycles;
    s->n_accel = job.n_accel;
    s->n_cpu = job.n_cpu;
    s->device_us = hal_time_us() - job_t0;
    s->result_crc = crc32_update(0, hal_accel_mem() + img->slot_res[job.slot], img->result_bytes);
  }
  infer_response(job.slot, s->seq);
}
