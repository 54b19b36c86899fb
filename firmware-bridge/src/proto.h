/* Constants of docs/formats/serial-protocol.md (version 1). */
#ifndef PROTO_H
#define PROTO_H

#define PROTO_VERSION 1
#define PROTO_MIN_VERSION 1
#define PKT_HEADER 6
#define PKT_OVERHEAD 10 /* header + CRC-32 */
#define PKT_RESPONSE 0x80

enum {
  MSG_HELLO = 0x01, MSG_PING = 0x02, MSG_STATS = 0x03,
  MSG_UPLOAD_BEGIN = 0x10, MSG_UPLOAD_DATA = 0x11, MSG_UPLOAD_END = 0x12,
  MSG_FRAME_DATA = 0x20, MSG_INFER = 0x21, MSG_READ = 0x22
};

enum {
  E_OK = 0, E_VERSION = 1, E_TYPE = 2, E_ARG = 3, E_STATE = 4, E_DIGEST = 5, E_IMAGE = 6,
  E_NO_MEMORY = 7, E_TOO_BIG = 8, E_BUSY = 9, E_RANGE = 10, E_INPUT = 11, E_ACCEL = 12, E_STORAGE = 13
};

#define HELLO_BYTES 176
#define STATS_COUNT 12
#define INFER_RESP_FIXED 44
#define HEAD_DESC_BYTES 16

#endif
