/*
 * The HAL of the host build: the link is a pseudo-terminal (throttled to a UART's byte rate when
 * asked), the timer the monotonic clock, the storage two files in a state folder (or memory).
 */
#define _GNU_SOURCE
#include "hal_host.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include "hal.h"

static int master = -1, slave = -1;
static double rate; /* bytes per second; 0: as fast as the pty goes */
static double tx_time, rx_time;
static uint32_t boot;
static uint64_t dropped;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void sleep_s(double s) {
  if (s <= 0) return;
  struct timespec t = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
  nanosleep(&t, NULL);
}

int host_link_open(const char *link, uint32_t baud, char *name, size_t name_len) {
  master = posix_openpt(O_RDWR | O_NOCTTY);
  if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) return -1;
  const char *pts = ptsname(master);
  if (!pts) return -1;
  snprintf(name, name_len, "%s", pts);
  /* Raw mode on the terminal side, and one descriptor kept open on it: without any open slave,
   * reads of the master fail with EIO while a client reopens the port. */
  slave = open(name, O_RDWR | O_NOCTTY);
  if (slave < 0) return -1;
  struct termios tio;
  if (tcgetattr(slave, &tio) == 0) {
    cfmakeraw(&tio);
    tcsetattr(slave, TCSANOW, &tio);
  }
  fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
  struct stat st;
  if (lstat(link, &st) == 0) {
    if (!S_ISLNK(st.st_mode)) {
      errno = EEXIST;
      return -2;
    }
    unlink(link);
  }
  if (symlink(name, link) != 0) return -1;
  rate = baud ? baud / 10.0 : 0;
  tx_time = rx_time = now_s();
  return 0;
}

void host_link_close(const char *link, const char *name) {
  char buf[256];
  ssize_t n = readlink(link, buf, sizeof buf - 1);
  if (n > 0) {
    buf[n] = 0;
    if (strcmp(buf, name) == 0) unlink(link);
  }
  if (slave >= 0) close(slave);
  if (master >= 0) close(master);
  master = slave = -1;
}

int host_link_fd(void) { return master; }
uint64_t host_link_dropped(void) { return dropped; }

double host_link_wait_s(void) {
  if (rate <= 0) return 0;
  double w = rx_time - now_s();
  return w > 0 ? w : 0;
}

int hal_link_read(uint8_t *buf, int max) {
  if (rate > 0) {
    /* A UART delivers rate bytes per second. Bytes due while this process did not run (up to
     * 20 ms of them) are delivered at once, so a busy host keeps the average rate. */
    double t = now_s();
    const double burst = rate * 0.02 > 64 ? rate * 0.02 : 64;
    if (rx_time < t - burst / rate) rx_time = t - burst / rate;
    int allowed = (int)((t - rx_time) * rate);
    if (allowed <= 0) return 0;
    if (max > allowed) max = allowed;
  }
  ssize_t n = read(master, buf, (size_t)max);
  if (n <= 0) return 0;
  if (rate > 0) rx_time += (double)n / rate;
  return (int)n;
}

void hal_link_write(const uint8_t *buf, int n) {
  double give_up = now_s() + 1.0;
  while (n > 0) {
    int piece = n;
    if (rate > 0) {
      const int most = rate * 0.001 > 64 ? (int)(rate * 0.001) : 64;
      if (piece > most) piece = most;
      double t = now_s();
      if (tx_time < t - 0.02) tx_time = t - 0.02; /* catch up at most 20 ms of oversleeping */
      sleep_s(tx_time - t);
    }
    ssize_t w = write(master, buf, (size_t)piece);
    if (w > 0) {
      buf += w;
      n -= (int)w;
      if (rate > 0) tx_time += (double)w / rate;
      give_up = now_s() + 1.0;
      continue;
    }
    if (w < 0 && errno != EAGAIN && errno != EINTR) break;
    /* Nobody reads the port: wait a while, then drop the rest as a UART would. */
    double left = give_up - now_s();
    if (left <= 0) break;
    struct pollfd p = { master, POLLOUT, 0 };
    poll(&p, 1, (int)(left * 1000) + 1);
  }
  dropped += (uint64_t)(n > 0 ? n : 0);
}

uint32_t hal_time_ms(void) { return (uint32_t)(uint64_t)(now_s() * 1e3); }
uint32_t hal_time_us(void) { return (uint32_t)(uint64_t)(now_s() * 1e6); }
uint32_t hal_boot_id(void) { return boot; }

/* Storage: files <dir>/image.zqdi (active) and <dir>/image.zqdi.new (staging), or memory. */
static char dir[4096], active_path[4200], stage_path[4200];
static int active_fd = -1, stage_fd = -1;
static uint8_t *mem_active, *mem_stage;
static uint32_t active_size, stage_size, capacity;

int host_nv_init(const char *state_dir, uint32_t cap) {
  capacity = cap;
  int fd = open("/dev/urandom", O_RDONLY);
  if (fd < 0 || read(fd, &boot, sizeof boot) != sizeof boot) boot = (uint32_t)getpid() ^ (uint32_t)now_s();
  if (fd >= 0) close(fd);
  if (!state_dir) {
    mem_active = malloc(cap);
    mem_stage = malloc(cap);
    return mem_active && mem_stage ? 0 : -1;
  }
  snprintf(dir, sizeof dir, "%s", state_dir);
  mkdir(dir, 0755);
  snprintf(active_path, sizeof active_path, "%s/image.zqdi", dir);
  snprintf(stage_path, sizeof stage_path, "%s/image.zqdi.new", dir);
  unlink(stage_path);
  active_fd = open(active_path, O_RDONLY);
  if (active_fd >= 0) {
    struct stat st;
    if (fstat(active_fd, &st) == 0 && st.st_size > 0 && (uint64_t)st.st_size <= cap) active_size = (uint32_t)st.st_size;
  }
  return 0;
}

uint32_t hal_nv_capacity(void) { return capacity; }

int hal_nv_stage_begin(uint32_t size) {
  if (size > capacity) return -1;
  stage_size = size;
  if (!dir[0]) {
    memset(mem_stage, 0, size);
    return 0;
  }
  if (stage_fd >= 0) close(stage_fd);
  stage_fd = open(stage_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (stage_fd < 0 || ftruncate(stage_fd, size) != 0) return -1;
  return 0;
}

int hal_nv_stage_write(uint32_t off, const uint8_t *data, uint32_t n) {
  if (off > stage_size || n > stage_size - off) return -1;
  if (!dir[0]) {
    memcpy(mem_stage + off, data, n);
    return 0;
  }
  return stage_fd >= 0 && pwrite(stage_fd, data, n, off) == (ssize_t)n ? 0 : -1;
}

int hal_nv_stage_read(uint32_t off, uint8_t *data, uint32_t n) {
  if (off > stage_size || n > stage_size - off) return -1;
  if (!dir[0]) {
    memcpy(data, mem_stage + off, n);
    return 0;
  }
  return stage_fd >= 0 && pread(stage_fd, data, n, off) == (ssize_t)n ? 0 : -1;
}

int hal_nv_commit(void) {
  if (!dir[0]) {
    uint8_t *t = mem_active;
    mem_active = mem_stage;
    mem_stage = t;
    active_size = stage_size;
    return 0;
  }
  if (stage_fd < 0 || fsync(stage_fd) != 0) return -1;
  close(stage_fd);
  stage_fd = -1;
  if (rename(stage_path, active_path) != 0) return -1;
  int d = open(dir, O_RDONLY | O_DIRECTORY);
  if (d >= 0) {
    fsync(d);
    close(d);
  }
  if (active_fd >= 0) close(active_fd);
  active_fd = open(active_path, O_RDONLY);
  active_size = active_fd >= 0 ? stage_size : 0;
  return active_fd >= 0 ? 0 : -1;
}

uint32_t hal_nv_active_size(void) { return active_size; }

int hal_nv_active_read(uint32_t off, uint8_t *data, uint32_t n) {
  if (off > active_size || n > active_size - off) return -1;
  if (!dir[0]) {
    memcpy(data, mem_active + off, n);
    return 0;
  }
  return active_fd >= 0 && pread(active_fd, data, n, off) == (ssize_t)n ? 0 : -1;
}
