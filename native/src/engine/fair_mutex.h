#pragma once
// A FIFO (ticket) mutex. Backends run one forward chunk at a time; with a plain mutex a long
// prefill can re-take the lock chunk after chunk while a completion's decode step waits. Tickets
// make every waiter's turn come after at most the chunks that were queued before it.
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace ilm {

class FairMutex {
 public:
  void lock() {
    std::unique_lock<std::mutex> guard(mutex_);
    const uint64_t ticket = next_ticket_++;
    turn_changed_.wait(guard, [&] { return now_serving_ == ticket; });
  }
  void unlock() {
    {
      std::lock_guard<std::mutex> guard(mutex_);
      now_serving_++;
    }
    turn_changed_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable turn_changed_;
  uint64_t next_ticket_ = 0;
  uint64_t now_serving_ = 0;
};

}  // namespace ilm
