// Idle keep-alive connections to the upstream (nginx's keepalive pool). One enters only after a
// complete response that allowed reuse, with nothing left to write; it leaves when taken for a
// request, when the app closes it or sends a byte, or after kIdleLimit. Most recently used first,
// so the warmest connection serves and the coldest expires.
#pragma once

#include <chrono>
#include <cstddef>

namespace lameduck::proxy {

class UpstreamConnection;

class UpstreamPool {
 public:
  // Below Node's default keepAliveTimeout (5 s), the most common app-side idle limit: a pooled
  // connection is dropped by us before the app closes it under a request in flight.
  static constexpr std::chrono::milliseconds kIdleLimit{4000};
  static constexpr size_t kMaxIdle = 512;

  UpstreamConnection* Take();  // nullptr when empty
  void Put(UpstreamConnection& connection);
  void Remove(UpstreamConnection& connection);  // no-op if not pooled
  void CloseAll();
  size_t size() const { return size_; }

 private:
  UpstreamConnection* head_ = nullptr;  // most recently returned
  UpstreamConnection* tail_ = nullptr;
  size_t size_ = 0;
};

}  // namespace lameduck::proxy
