// DeadlineQueue: the timeouts of every client connection on one loop, on one libuv timer. An
// Entry is embedded in its owner (16 bytes: no allocation and no libuv handle per connection, so
// nothing to close and nothing to free after it) and sits in a binary min-heap by deadline; the
// timer is armed for the earliest one. Deadlines are in the loop's milliseconds (uv_now).
// Single-threaded (one loop).
#pragma once

#include <uv.h>

#include <cstdint>
#include <limits>
#include <vector>

#include "proxy/uv_handle.h"

namespace lameduck::proxy {

class DeadlineQueue {
 public:
  class Entry {
   public:
    bool armed() const { return index_ != kUnarmed; }

   protected:
    Entry() = default;
    ~Entry() = default;  // the owner stops it first (Stop), if it may still be armed
    Entry(const Entry&) = delete;
    Entry& operator=(const Entry&) = delete;
    // Its deadline passed. It is no longer armed; it may start itself again, or stop others.
    virtual void OnDeadline() = 0;

   private:
    friend class DeadlineQueue;
    static constexpr uint32_t kUnarmed = std::numeric_limits<uint32_t>::max();
    uint64_t at_ = 0;
    uint32_t index_ = kUnarmed;
  };

  explicit DeadlineQueue(uv_loop_t* loop);
  DeadlineQueue(const DeadlineQueue&) = delete;
  DeadlineQueue& operator=(const DeadlineQueue&) = delete;

  void Start(Entry& entry, uint64_t timeout_ms);  // (re)armed: due timeout_ms from now
  void Stop(Entry& entry);                        // a no-op if not armed
  size_t size() const { return heap_.size(); }

 private:
  static void OnTimer(uv_timer_t* timer);
  bool Earlier(size_t a, size_t b) const { return heap_[a]->at_ < heap_[b]->at_; }
  void Place(size_t index, Entry* entry);
  void Up(size_t index);
  void Down(size_t index);
  void Remove(size_t index);
  void ArmTimer();  // for the earliest deadline, if earlier than the timer's; stopped if none

  uv_loop_t* loop_;
  std::vector<Entry*> heap_;
  UvHandle<uv_timer_t> timer_;
  uint64_t timer_at_ = 0;  // the deadline the timer is armed for; 0: not armed
};

}  // namespace lameduck::proxy
