#include "pool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static inline void cpuRelax() { _mm_pause(); }
#elif defined(__aarch64__)
static inline void cpuRelax() { asm volatile("yield"); }
#else
static inline void cpuRelax() {}
#endif

namespace zqint {

Pool::Pool(int threads) : n_(threads < 1 ? 1 : threads) {
  for (int i = 1; i < n_; i++) threads_.emplace_back([this, i] { worker(i); });
}

Pool::~Pool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    gen_.fetch_add(1);
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

static inline void range(int items, int parts, int id, int& b, int& e) {
  b = (int)((long long)items * id / parts);
  e = (int)((long long)items * (id + 1) / parts);
}

void Pool::run(int n, const std::function<void(int, int, int)>& fn) {
  if (n_ == 1 || n < 2) {
    fn(0, n, 0);
    return;
  }
  fn_ = &fn;
  items_ = n;
  pending_.store(n_ - 1, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lock(mu_);
    gen_.fetch_add(1, std::memory_order_release);
  }
  if (sleepers_.load() > 0) cv_.notify_all();
  int b, e;
  range(n, n_, 0, b, e);
  fn(b, e, 0);
  while (pending_.load(std::memory_order_acquire) > 0) cpuRelax();
}

void Pool::worker(int id) {
  unsigned seen = 0;  // the generation at construction: a job posted before this thread starts is not missed
  for (;;) {
    int spins = 0;
    while (gen_.load(std::memory_order_acquire) == seen && spins < 200000) {
      cpuRelax();
      spins++;
    }
    if (gen_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      sleepers_.fetch_add(1);
      cv_.wait(lock, [&] { return gen_.load() != seen; });
      sleepers_.fetch_sub(1);
    }
    seen = gen_.load(std::memory_order_acquire);
    if (stop_) return;
    int b, e;
    range(items_, n_, id, b, e);
    if (b < e) (*fn_)(b, e, id);
    pending_.fetch_sub(1, std::memory_order_release);
  }
}

}  // namespace zqint
