/*
 * bridge-host: the bridge firmware on a PC. The link is a pseudo-terminal linked at --link PATH,
 * the accelerator the C model (--accel model) or the Verilated RTL (--accel rtl). Prints the
 * pty's name on stdout, then serves until SIGTERM or SIGINT.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "bridge.h"
#include "hal.h"
#include "hal_host.h"

static volatile sig_atomic_t stop;
static void on_signal(int s) { (void)s; stop = 1; }

static void usage(FILE *f) {
  fprintf(f,
          "usage: bridge-host --link PATH [--baud N] [--state DIR] [--accel model|rtl] [--mem MIB] [--nv MIB]\n"
          "  --link PATH    create a pseudo-terminal and symlink it at PATH (the client opens PATH)\n"
          "  --baud N       pace the link at N/10 bytes/s each way, as a UART at N baud (default: unthrottled)\n"
          "  --state DIR    keep the device image in DIR across restarts (default: memory only)\n"
          "  --accel KIND   model (the C model, default) or rtl (the Verilated RTL, when linked in)\n"
          "  --mem MIB      accelerator memory in MiB (default 16)\n"
          "  --nv MIB       image storage capacity in MiB (default 16)\n");
}

static long num(const char *opt, const char *v, long lo, long hi) {
  char *end;
  errno = 0;
  long n = strtol(v ? v : "", &end, 10);
  if (!v || errno || *end || n < lo || n > hi) {
    fprintf(stderr, "bridge-host: %s takes a number in %ld..%ld\n", opt, lo, hi);
    exit(2);
  }
  return n;
}

int main(int argc, char **argv) {
  const char *link = NULL, *state = NULL, *accel = "model";
  long baud = 0, mem_mib = 16, nv_mib = 16;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--link") && v) link = argv[++i];
    else if (!strcmp(a, "--baud")) baud = num(a, v, 300, 100000000), i++;
    else if (!strcmp(a, "--state") && v) state = argv[++i];
    else if (!strcmp(a, "--accel") && v) accel = argv[++i];
    else if (!strcmp(a, "--mem")) mem_mib = num(a, v, 1, 2048), i++;
    else if (!strcmp(a, "--nv")) nv_mib = num(a, v, 1, 2048), i++;
    else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "bridge-host: unknown or incomplete option %s\n", a);
      usage(stderr);
      return 2;
    }
  }
  if (!link) {
    fprintf(stderr, "bridge-host: --link PATH is required\n");
    usage(stderr);
    return 2;
  }
  int r = host_accel_select(accel, (uint32_t)(mem_mib << 20));
  if (r == -1) {
    fprintf(stderr, "bridge-host: --accel takes model or rtl, not %s\n", accel);
    return 2;
  }
  if (r == -2) {
    fprintf(stderr,
            "bridge-host: --accel rtl needs the Verilated accelerator linked in: make -C firmware-bridge/rtl, then "
            "make -C firmware-bridge host ACCEL_RTL_LIB=rtl/build/libaccel_rtl.a\n");
    return 2;
  }
  if (r != 0) {
    fprintf(stderr, "bridge-host: the %s accelerator did not start\n", accel);
    return 1;
  }
  if (host_nv_init(state, (uint32_t)(nv_mib << 20)) != 0) {
    fprintf(stderr, "bridge-host: storage %s: %s\n", state ? state : "(memory)", strerror(errno));
    return 1;
  }
  char name[256];
  r = host_link_open(link, (uint32_t)baud, name, sizeof name);
  if (r != 0) {
    fprintf(stderr, "bridge-host: %s: %s\n", link, r == -2 ? "exists and is not a symlink" : strerror(errno));
    return r == -2 ? 2 : 1;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  bridge_init();
  printf("%s\n", name);
  fflush(stdout);
  if (baud) fprintf(stderr, "bridge-host: %s -> %s, accelerator %s, %ld MiB, paced as %ld baud\n", link, name, accel, mem_mib, baud);
  else fprintf(stderr, "bridge-host: %s -> %s, accelerator %s, %ld MiB, unthrottled\n", link, name, accel, mem_mib);

  static uint8_t buf[8192];
  while (!stop) {
    /* Sleep in poll() unless the firmware has work it can do now: a frame step that does not wait
     * for the accelerator (which wakes us through its pipe when a layer is done). */
    const int can_step = bridge_busy() && !host_accel_running();
    const double wait = host_link_wait_s(); /* throttled: seconds until the next byte is due */
    struct pollfd p[2] = { { wait > 0 ? -1 : host_link_fd(), POLLIN, 0 }, { host_accel_done_fd(), POLLIN, 0 } };
    int timeout = can_step ? 0 : wait > 0 ? (int)(wait * 1000) + 1 : 100;
    poll(p, 2, timeout);
    if (p[1].revents & POLLIN) {
      char drain[64];
      if (read(host_accel_done_fd(), drain, sizeof drain) < 0) { /* nothing to drain */
      }
    }
    if (wait <= 0 || host_link_wait_s() <= 0) {
      int n = hal_link_read(buf, (int)sizeof buf);
      if (n > 0) bridge_rx(buf, (size_t)n);
    }
    if (bridge_busy()) bridge_poll();
  }
  host_link_close(link, name);
  fprintf(stderr, "bridge-host: stopped (%llu response bytes dropped with nobody reading)\n",
          (unsigned long long)host_link_dropped());
  return 0;
}
