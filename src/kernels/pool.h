// A small persistent thread pool. run(n, fn) cuts [0, n) into a few chunks per thread. Thread t
// owns a contiguous range of them (the same part of every layer, so a layer mostly reads what the
// same core wrote in the layer before) and takes its chunks in order; a thread out of work takes
// the next chunks of the others' ranges, so when a worker is late (the machine is busy) the caller
// does more chunks instead of waiting for it. Workers spin briefly between jobs (a frame is a
// burst of ~100 short layers), then sleep. Every wait yields the
// core after a short spin, so more threads than cores still make progress.
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
  static constexpr int kMaxThreads = 64;
  // A thread's next chunk, alone on its cache line (the owner and the thieves update it).
  struct alignas(64) Cursor {
    std::atomic<int> next{0};
  };
  struct Job {
    std::atomic<unsigned> gen{0};
    std::atomic<int> done{0};
    std::atomic<int> users{0};
    Task fn{nullptr, nullptr};
    int items = 0, chunks = 0, per = 1;  // per: chunks a thread owns
    Cursor cur[kMaxThreads];
  };
  bool take(Job& j, int owner, int id);
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
