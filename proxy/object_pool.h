// ObjectPool<T>: a free list of objects whose capacity is worth keeping (write requests, the
// per-request state of HTTP/1 connections), so that steady traffic allocates nothing. Bounded,
// and trimmed: Trim() frees the objects no Take needed since the last Trim, so a pool grown for a
// burst shrinks back once it is over. Single-threaded (one loop).
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>
#include <vector>

namespace lameduck::proxy {

template <typename T, typename Deleter = std::default_delete<T>>
class ObjectPool {
 public:
  using Ptr = std::unique_ptr<T, Deleter>;
  explicit ObjectPool(size_t max_free) : max_free_(max_free) {}
  ObjectPool(const ObjectPool&) = delete;
  ObjectPool& operator=(const ObjectPool&) = delete;

  // A free one, or make()'s.
  template <typename Make>
  Ptr Take(Make make) {
    if (free_.empty()) return make();
    Ptr object = std::move(free_.back());
    free_.pop_back();
    unused_since_trim_ = std::min(unused_since_trim_, free_.size());
    return object;
  }
  void Give(Ptr object) {
    if (free_.size() < max_free_) free_.push_back(std::move(object));
  }
  size_t Trim() {  // how many it freed
    // The oldest (front) ones: the back is what the next Take gets, still warm in the cache.
    size_t unused = std::min(unused_since_trim_, free_.size());
    free_.erase(free_.begin(), free_.begin() + static_cast<std::ptrdiff_t>(unused));
    unused_since_trim_ = free_.size();
    return unused;
  }
  size_t free_count() const { return free_.size(); }

 private:
  size_t max_free_;
  std::vector<Ptr> free_;
  size_t unused_since_trim_ = 0;  // the fewest free objects since the last Trim
};

}  // namespace lameduck::proxy
