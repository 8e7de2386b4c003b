#pragma once
// A fixed pool of worker threads for data-parallel loops. The calling thread works too, and
// workers spin briefly before sleeping so that back-to-back loops (decode runs hundreds per
// token) do not pay a wake-up each time.
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ilm::cpu {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return int(workers_.size()) + 1; }

  // Runs fn(task, thread_index) for task in [0, n_tasks), tasks handed out dynamically.
  void parallel_for(int n_tasks, const std::function<void(int task, int thread)>& fn);

 private:
  void worker_loop(int index);
  void run_tasks(int thread);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> next_task_{0};
  std::atomic<int> active_{0};
  int n_tasks_ = 0;
  const std::function<void(int, int)>* fn_ = nullptr;
  std::atomic<bool> stop_{false};
};

// Number of physical cores (not SMT siblings); at least 1.
int physical_core_count();

}  // namespace ilm::cpu
