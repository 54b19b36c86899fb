/*
 * fault-relay: a serial link that goes wrong on command. It opens --upstream PATH (a bridge's
 * port) as a client, offers its own pseudo-terminal at --link PATH, and copies bytes both ways,
 * applying the faults set by lines on stdin (each answered by "ok ..." on stdout):
 *   corrupt P      flip one random bit of each byte with probability P (both ways)
 *   drop P         drop whole frames (up to their 0x00 delimiter) with probability P (both ways)
 *   stall MS       copy nothing for MS milliseconds (bytes wait, as on a stalled USB link)
 *   cut MS         close the port in the middle of the next frame from the bridge, reopen it after MS
 *   unplug MS      close the port now and reopen it (a new pty, same PATH) after MS
 *   pass           no faults
 *   stats          "stats up=N down=N frames=N corrupted=N dropped=N cuts=N" (bytes each way, frames seen)
 * When the upstream port vanishes (the bridge stopped) the relay keeps trying to reopen it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static const char *up_path, *link_path;
static int up = -1, master = -1, slave = -1;
static char pty_name[256];
static double p_corrupt, p_drop;
static double stall_until, replug_at, cut_ms = -1;
static int drop_up, drop_down, in_frame_up, in_frame_down, cut_armed;
static unsigned long long n_up, n_down, n_corrupt, n_dropped, n_cuts, n_frames;
static uint64_t rs = 0x9E3779B97F4A7C15ull;
static volatile sig_atomic_t stop;

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}
static uint64_t rnd(void) {
  rs ^= rs << 13;
  rs ^= rs >> 7;
  rs ^= rs << 17;
  return rs;
}
static double unit(void) { return (double)(rnd() >> 11) / 9007199254740992.0; }

static void raw(int fd) {
  struct termios t;
  if (tcgetattr(fd, &t) == 0) {
    cfmakeraw(&t);
    tcsetattr(fd, TCSANOW, &t);
  }
}

static int open_pty(void) {
  master = posix_openpt(O_RDWR | O_NOCTTY);
  if (master < 0 || grantpt(master) || unlockpt(master) || !ptsname(master)) return -1;
  snprintf(pty_name, sizeof pty_name, "%s", ptsname(master));
  slave = open(pty_name, O_RDWR | O_NOCTTY);
  if (slave < 0) return -1;
  raw(slave);
  fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
  struct stat st;
  if (lstat(link_path, &st) == 0) unlink(link_path);
  return symlink(pty_name, link_path);
}

static void close_pty(void) {
  unlink(link_path);
  if (slave >= 0) close(slave);
  if (master >= 0) close(master);
  slave = master = -1;
  in_frame_down = in_frame_up = 0;
}

static void open_up(void) {
  up = open(up_path, O_RDWR | O_NOCTTY | O_NONBLOCK);
  if (up >= 0) raw(up);
}

static void write_all(int fd, const uint8_t *b, size_t n) {
  while (n > 0 && fd >= 0) {
    ssize_t w = write(fd, b, n);
    if (w > 0) {
      b += w;
      n -= (size_t)w;
    } else if (w < 0 && errno == EAGAIN) {
      struct pollfd p = { fd, POLLOUT, 0 };
      if (poll(&p, 1, 1000) <= 0) return; /* nobody reads: lose it */
    } else {
      return;
    }
  }
}

/* Applies drop and corruption to a chunk going one way; returns the bytes kept in out. */
static size_t mangle(const uint8_t *in, size_t n, uint8_t *out, int *dropping, int *in_frame) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    uint8_t b = in[i];
    if (!*in_frame) {
      *in_frame = 1;
      n_frames++;
      *dropping = p_drop > 0 && unit() < p_drop;
      if (*dropping) n_dropped++;
    }
    if (b == 0) *in_frame = 0;
    if (*dropping) {
      if (b == 0) *dropping = 0;
      continue;
    }
    if (p_corrupt > 0 && unit() < p_corrupt) {
      b ^= (uint8_t)(1u << (rnd() % 8));
      n_corrupt++;
    }
    out[k++] = b;
  }
  return k;
}

static void command(char *line) {
  char *nl = strchr(line, '\n');
  if (nl) *nl = 0;
  double v = 0;
  char word[32] = { 0 };
  int got = sscanf(line, "%31s %lf", word, &v);
  if (got < 1) return;
  if (!strcmp(word, "corrupt")) p_corrupt = v;
  else if (!strcmp(word, "drop")) p_drop = v;
  else if (!strcmp(word, "stall")) stall_until = now_ms() + v;
  else if (!strcmp(word, "cut")) {
    cut_armed = 1;
    cut_ms = v;
  } else if (!strcmp(word, "unplug")) {
    close_pty();
    n_cuts++;
    replug_at = now_ms() + v;
  } else if (!strcmp(word, "pass")) {
    p_corrupt = p_drop = 0;
    stall_until = 0;
    cut_armed = 0;
  } else if (!strcmp(word, "stats")) {
    printf("stats up=%llu down=%llu frames=%llu corrupted=%llu dropped=%llu cuts=%llu\n", n_up, n_down, n_frames, n_corrupt,
           n_dropped, n_cuts);
    fflush(stdout);
    return;
  } else {
    printf("error unknown command %s\n", word);
    fflush(stdout);
    return;
  }
  printf("ok %s\n", line);
  fflush(stdout);
}

static void on_signal(int s) { (void)s; stop = 1; }

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--upstream")) up_path = argv[i + 1];
    else if (!strcmp(argv[i], "--link")) link_path = argv[i + 1];
    else if (!strcmp(argv[i], "--seed")) rs = strtoull(argv[i + 1], NULL, 10) * 2654435761ull + 1;
  }
  if (!up_path || !link_path) {
    fprintf(stderr, "usage: fault-relay --upstream PATH --link PATH [--seed N]\n");
    return 2;
  }
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  signal(SIGPIPE, SIG_IGN);
  open_up();
  if (open_pty() != 0) {
    fprintf(stderr, "fault-relay: %s: %s\n", link_path, strerror(errno));
    return 1;
  }
  printf("%s\n", pty_name);
  fflush(stdout);
  static uint8_t buf[4096], out[4096];
  static char line[256];
  size_t line_n = 0;
  double next_up_try = 0;
  while (!stop) {
    double t = now_ms();
    if (master < 0 && replug_at > 0 && t >= replug_at) {
      replug_at = 0;
      if (open_pty() != 0) replug_at = t + 50;
    }
    if (up < 0 && t >= next_up_try) {
      open_up();
      next_up_try = t + 50;
    }
    const int stalled = t < stall_until;
    struct pollfd p[3] = { { 0, POLLIN, 0 }, { stalled ? -1 : up, POLLIN, 0 }, { stalled ? -1 : master, POLLIN, 0 } };
    int timeout = stalled ? (int)(stall_until - t) + 1 : 50;
    if (poll(p, 3, timeout) < 0) continue;
    if (p[0].revents & (POLLIN | POLLHUP)) {
      ssize_t n = read(0, line + line_n, sizeof line - 1 - line_n);
      if (n <= 0) break; /* stdin closed: the controlling process is gone */
      line_n += (size_t)n;
      line[line_n] = 0;
      char *nl;
      while ((nl = strchr(line, '\n'))) {
        *nl = 0;
        command(line);
        size_t rest = line_n - (size_t)(nl + 1 - line);
        memmove(line, nl + 1, rest);
        line_n = rest;
        line[line_n] = 0;
      }
      if (line_n == sizeof line - 1) line_n = 0;
    }
    if (up >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t n = read(up, buf, sizeof buf);
      if (n > 0) {
        n_down += (uint64_t)n;
        size_t k = mangle(buf, (size_t)n, out, &drop_down, &in_frame_down);
        if (cut_armed && master >= 0) {
          /* Close in the middle of a frame: pass half of this chunk, then pull the plug. */
          size_t half = k / 2 ? k / 2 : (k ? 1 : 0);
          write_all(master, out, half);
          close_pty();
          n_cuts++;
          cut_armed = 0;
          replug_at = now_ms() + (cut_ms > 0 ? cut_ms : 0) + 1;
        } else if (master >= 0) {
          write_all(master, out, k);
        }
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        close(up);
        up = -1;
      }
    }
    if (master >= 0 && (p[2].revents & POLLIN)) {
      ssize_t n = read(master, buf, sizeof buf);
      if (n > 0) {
        n_up += (uint64_t)n;
        size_t k = mangle(buf, (size_t)n, out, &drop_up, &in_frame_up);
        if (up >= 0) write_all(up, out, k);
      }
    }
  }
  close_pty();
  if (up >= 0) close(up);
  return 0;
}
