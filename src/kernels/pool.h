// A small persistent thread pool: parallel_for over [0, n) split into one contiguous range per
// thread, the calling thread taking the first. Workers spin briefly between layers (a frame is a
// burst of ~100 short jobs), then sleep on a condition variable.
#pragma once
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace zqint {

class Pool {
 public:
  explicit Pool(int threads);
  ~Pool();
  int size() const { return n_; }
  // fn(begin, end, thread) for contiguous ranges covering [0, n).
  void run(int n, const std::function<void(int, int, int)>& fn);

 private:
  void worker(int id);
  int n_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<unsigned> gen_{0};
  std::atomic<int> pending_{0};
  std::atomic<int> sleepers_{0};
  bool stop_ = false;
  const std::function<void(int, int, int)>* fn_ = nullptr;
  int items_ = 0;
};

}  // namespace zqint
