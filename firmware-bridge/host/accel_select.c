#define _DEFAULT_SOURCE
/*
 * hal_accel_* of the host build: the C model, or the Verilated RTL when it is linked in. Both
 * compute a whole layer inside the CTRL write; here that write runs on a worker thread, so that,
 * as on a board, the accelerator computes while the firmware keeps serving the link: STATUS says
 * busy until the layer is done.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>
#include "accel_model.h"
#include "hal_accel.h"
#include "hal_host.h"

#ifdef HAVE_ACCEL_RTL
int      rtl_accel_init(uint32_t mem_bytes);
void     rtl_accel_write(uint32_t reg, uint32_t value);
uint32_t rtl_accel_read(uint32_t reg);
uint8_t *rtl_accel_mem(void);
uint32_t rtl_accel_mem_size(void);
#endif

static void (*acc_write)(uint32_t, uint32_t) = model_accel_write;
static uint32_t (*acc_read)(uint32_t) = model_accel_read;
static uint8_t *(*acc_mem)(void) = model_accel_mem;
static uint32_t (*acc_mem_size)(void) = model_accel_mem_size;

static pthread_t worker;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int pending;
static atomic_int running;
static int done_pipe[2] = { -1, -1 };

static void *work(void *arg) {
  (void)arg;
  for (;;) {
    pthread_mutex_lock(&mu);
    while (!pending) pthread_cond_wait(&cv, &mu);
    pending = 0;
    pthread_mutex_unlock(&mu);
    acc_write(ACC_CTRL, 1);
    atomic_store(&running, 0); /* after the layer's memory writes: the firmware sees them once it sees 0 */
    char b = 1;
    if (write(done_pipe[1], &b, 1) < 0) { /* the main loop also polls STATUS */
    }
  }
  return NULL;
}

int host_accel_select(const char *name, uint32_t mem_bytes) {
  int r;
  if (strcmp(name, "model") == 0) {
    acc_write = model_accel_write;
    acc_read = model_accel_read;
    acc_mem = model_accel_mem;
    acc_mem_size = model_accel_mem_size;
    r = model_accel_init(mem_bytes) == 0 ? 0 : -3;
  } else if (strcmp(name, "rtl") == 0) {
#ifdef HAVE_ACCEL_RTL
    acc_write = rtl_accel_write;
    acc_read = rtl_accel_read;
    acc_mem = rtl_accel_mem;
    acc_mem_size = rtl_accel_mem_size;
    r = rtl_accel_init(mem_bytes) == 0 ? 0 : -3;
#else
    return -2;
#endif
  } else {
    return -1;
  }
  if (r != 0) return r;
  if (pipe(done_pipe) != 0 || pthread_create(&worker, NULL, work, NULL) != 0) return -3;
  return 0;
}

int host_accel_done_fd(void) { return done_pipe[0]; }
int host_accel_running(void) { return atomic_load(&running); }

void hal_accel_write(uint32_t reg, uint32_t value) {
  if (reg == ACC_CTRL) {
    if (!(value & 1u) || atomic_load(&running)) return; /* a start while busy is ignored */
    atomic_store(&running, 1);
    pthread_mutex_lock(&mu);
    pending = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    return;
  }
  while (atomic_load(&running)) usleep(100); /* registers are not written while busy */
  acc_write(reg, value);
}

uint32_t hal_accel_read(uint32_t reg) {
  if (atomic_load(&running)) {
    if (reg == ACC_STATUS) return ACC_ST_BUSY;
    while (atomic_load(&running)) usleep(100);
  }
  return acc_read(reg);
}

uint8_t *hal_accel_mem(void) { return acc_mem(); }
uint32_t hal_accel_mem_size(void) { return acc_mem_size(); }
