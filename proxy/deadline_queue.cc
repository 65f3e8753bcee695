#include "proxy/deadline_queue.h"

#include <utility>

namespace lameduck::proxy {

DeadlineQueue::DeadlineQueue(uv_loop_t* loop) : loop_(loop) {}

void DeadlineQueue::Start(Entry& entry, uint64_t timeout_ms) {
  uint64_t at = uv_now(loop_) + timeout_ms;
  if (entry.armed()) {
    bool later = at > entry.at_;
    entry.at_ = at;
    if (later) {
      Down(entry.index_);
    } else {
      Up(entry.index_);
    }
  } else {
    entry.at_ = at;
    heap_.push_back(&entry);
    entry.index_ = static_cast<uint32_t>(heap_.size() - 1);
    Up(entry.index_);
  }
  ArmTimer();
}

void DeadlineQueue::Stop(Entry& entry) {
  if (!entry.armed()) return;
  Remove(entry.index_);
  ArmTimer();
}

void DeadlineQueue::Place(size_t index, Entry* entry) {
  heap_[index] = entry;
  entry->index_ = static_cast<uint32_t>(index);
}

void DeadlineQueue::Up(size_t index) {
  Entry* entry = heap_[index];
  while (index > 0) {
    size_t parent = (index - 1) / 2;
    if (heap_[parent]->at_ <= entry->at_) break;
    Place(index, heap_[parent]);
    index = parent;
  }
  Place(index, entry);
}

void DeadlineQueue::Down(size_t index) {
  Entry* entry = heap_[index];
  size_t size = heap_.size();
  while (true) {
    size_t child = 2 * index + 1;
    if (child >= size) break;
    if (child + 1 < size && Earlier(child + 1, child)) ++child;
    if (entry->at_ <= heap_[child]->at_) break;
    Place(index, heap_[child]);
    index = child;
  }
  Place(index, entry);
}

void DeadlineQueue::Remove(size_t index) {
  Entry* removed = heap_[index];
  Entry* last = heap_.back();
  heap_.pop_back();
  removed->index_ = Entry::kUnarmed;
  if (last == removed) return;
  Place(index, last);
  Up(index);
  Down(last->index_);
}

void DeadlineQueue::ArmTimer() {
  if (heap_.empty()) {
    if (timer_ && timer_at_ != 0) uv_timer_stop(timer_.get());
    timer_at_ = 0;
    return;
  }
  // Only ever earlier: a timer armed for a deadline that moved on fires early, finds nothing
  // due and is armed again, cheaper than re-arming it whenever the earliest entry moves (each
  // keep-alive request moves its connection's).
  uint64_t at = heap_.front()->at_;
  if (timer_at_ != 0 && timer_at_ <= at) return;
  if (!timer_ && timer_.Init(loop_, uv_timer_init, this) != 0) return;
  timer_at_ = at;
  uint64_t now = uv_now(loop_);
  uv_timer_start(timer_.get(), &DeadlineQueue::OnTimer, at > now ? at - now : 0, 0);
}

void DeadlineQueue::OnTimer(uv_timer_t* timer) {
  auto* self = static_cast<DeadlineQueue*>(timer->data);
  if (self == nullptr) return;
  self->timer_at_ = 0;
  uint64_t now = uv_now(self->loop_);
  // One at a time from the top: a callback may start, stop or (through a close) end others.
  while (!self->heap_.empty() && self->heap_.front()->at_ <= now) {
    Entry* due = self->heap_.front();
    self->Remove(0);
    due->OnDeadline();
  }
  self->ArmTimer();
}

}  // namespace lameduck::proxy
