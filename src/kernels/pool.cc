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

// Waiting for other threads: a short spin (they are usually a few hundred cycles away), then
// yielding the core, so that a pool with more threads than cores still makes progress: the thread
// waited for may need the very core the waiter holds.
template <class Done>
static void waitUntil(Done done) {
  for (int spins = 0; !done(); spins++) {
    if (spins < 256) cpuRelax();
    else std::this_thread::yield();
  }
}

Pool::Pool(int threads)
    : n_(threads < 1 ? 1 : threads > kMaxThreads ? kMaxThreads : threads),
      oversubscribed_(std::thread::hardware_concurrency() > 0 && n_ > (int)std::thread::hardware_concurrency()) {
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

// Runs the next chunk of owner's range; false when that range is exhausted.
bool Pool::take(Job& j, int owner, int id) {
  Cursor& k = j.cur[owner];
  if (k.next.load(std::memory_order_relaxed) >= j.per) return false;
  const int i = k.next.fetch_add(1);
  if (i >= j.per) return false;
  const int c = owner * j.per + i;
  const int b = (int)((long long)j.items * c / j.chunks), e = (int)((long long)j.items * (c + 1) / j.chunks);
  if (b < e) j.fn.call(j.fn.ctx, b, e, id);
  j.done.fetch_add(1, std::memory_order_release);
  return true;
}

// The thread's own chunks, then the others' (from the next thread on).
void Pool::work(Job& j, int id) {
  while (take(j, id, id)) {
  }
  for (int d = 1; d < n_; d++)
    while (take(j, (id + d) % n_, id)) {
    }
}

void Pool::runTask(int n, const Task& fn) {
  if (n_ == 1 || n < 2) {
    fn.call(fn.ctx, 0, n, 0);
    return;
  }
  const unsigned gen = gen_.load(std::memory_order_relaxed) + 1;
  Job& j = jobs_[gen & 1];
  j.gen.store(0);                         // invalidate before waiting: a worker arriving later skips it
  waitUntil([&] { return j.users.load() == 0; });  // a worker of generation gen-2 still inside
  j.fn = fn;
  j.items = n;
  j.per = n < 4 * n_ ? (n + n_ - 1) / n_ : 4;
  j.chunks = j.per * n_;  // chunks past n are empty ranges
  for (int t = 0; t < n_; t++) j.cur[t].next.store(0, std::memory_order_relaxed);
  j.done.store(0);
  j.gen.store(gen);
  cur_.store(&j);
  {
    std::lock_guard<std::mutex> lock(mu_);
    gen_.store(gen);
  }
  if (sleepers_.load() > 0) cv_.notify_all();
  work(j, 0);
  waitUntil([&] { return j.done.load(std::memory_order_acquire) >= j.chunks; });
}

void Pool::worker(int id) {
  unsigned seen = 0;  // the generation at construction: a job posted before this thread starts is not missed
  for (;;) {
    // Spin briefly for the next layer of the frame (yielding when cores are short), then sleep.
    const int limit = oversubscribed_ ? 1000 : 100000;
    for (int spins = 0; gen_.load(std::memory_order_acquire) == seen && spins < limit; spins++) {
      if (spins < 256 || !oversubscribed_) cpuRelax();
      else std::this_thread::yield();
    }
    if (gen_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      sleepers_.fetch_add(1);
      cv_.wait(lock, [&] { return gen_.load() != seen; });
      sleepers_.fetch_sub(1);
    }
    seen = gen_.load();
    if (stop_) return;
    Job* j = cur_.load();
    j->users.fetch_add(1);
    if (j->gen.load() == seen) work(*j, id);
    j->users.fetch_sub(1);
  }
}

}  // namespace zqint
