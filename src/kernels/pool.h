// A small persistent thread pool. run(n, fn) cuts [0, n) into a few chunks per thread that every
// participant (the caller included) takes from one atomic counter: when a worker is late (the
// machine is busy), the caller simply does more chunks instead of waiting for it. Workers spin
// briefly between jobs (a frame is a burst of ~100 short layers), then sleep; every wait yields
// the core after a short spin, so more threads than cores still make progress.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <type_traits>
#include <mutex>
#include <thread>
#include <vector>

namespace zqint {

class Pool {
 public:
  explicit Pool(int threads);
  ~Pool();
  int size() const { return n_; }
  // fn(begin, end, thread) for contiguous ranges covering [0, n); `thread` < size() indexes scratch.
  // The callable is borrowed for the duration of the call (no allocation per layer).
  template <class F>
  void run(int n, F&& fn) {
    Task t{[](void* c, int b, int e, int id) { (*static_cast<std::remove_reference_t<F>*>(c))(b, e, id); }, (void*)&fn};
    runTask(n, t);
  }

 private:
  struct Task {
    void (*call)(void*, int, int, int);
    void* ctx;
  };
  void runTask(int n, const Task& t);
  // One job; two slots alternate so a late worker never sees a slot being rewritten (users).
  struct Job {
    std::atomic<unsigned> gen{0};
    std::atomic<uint64_t> next{0};
    std::atomic<int> done{0};
    std::atomic<int> users{0};
    Task fn{nullptr, nullptr};
    int items = 0, chunks = 0;
  };
  void worker(int id);
  void work(Job& j, int id);
  int n_;
  bool oversubscribed_;  // more threads than the machine has cores
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<unsigned> gen_{0};
  std::atomic<Job*> cur_{nullptr};
  Job jobs_[2];
  std::atomic<int> sleepers_{0};
  bool stop_ = false;
};

}  // namespace zqint
