// UvHandle<T>: owns one libuv handle whose owner may go first (timers, signals, listeners).
// Destruction starts uv_close; the close callback releases the memory once libuv is done with
// it. Not for the sockets of connections: a connection embeds its socket and dies in its close
// callback (see proxy/socket.h).
#pragma once

#include <uv.h>

#include <memory>

namespace lameduck::proxy {

template <typename T>
class UvHandle {
 public:
  UvHandle() = default;
  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;
  ~UvHandle() { Close(); }

  int Init(uv_loop_t* loop, int (*init)(uv_loop_t*, T*), void* owner) {
    Close();
    auto handle = std::make_unique<T>();
    if (int rc = init(loop, handle.get()); rc != 0) return rc;  // not closable: plain free
    handle->data = owner;
    handle_ = handle.release();  // from here on, only the close callback frees it
    return 0;
  }
  T* get() const { return handle_; }
  explicit operator bool() const { return handle_ != nullptr; }

  void Close() {  // idempotent; no callback reaches the owner after this
    if (handle_ == nullptr) return;
    auto* base = reinterpret_cast<uv_handle_t*>(handle_);
    base->data = nullptr;
    uv_close(base, [](uv_handle_t* h) { delete reinterpret_cast<T*>(h); });
    handle_ = nullptr;
  }

 private:
  T* handle_ = nullptr;
};

}  // namespace lameduck::proxy
