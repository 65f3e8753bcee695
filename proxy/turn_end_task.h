// TurnEndTask: runs a function once at the end of the current loop turn however many times it
// was scheduled, so that what many callbacks queued leaves in one write (the HTTP/2 sessions'
// Flush). A uv_check_t runs it right after the poll phase that scheduled it; a uv_idle_t keeps
// poll from blocking when it was scheduled before the poll (from a timer), and runs it first then.
#pragma once

#include <uv.h>

#include "proxy/uv_handle.h"

namespace lameduck::proxy {

class TurnEndTask {
 public:
  using Fn = void (*)(void* arg);

  int Init(uv_loop_t* loop, Fn fn, void* arg) {
    fn_ = fn;
    arg_ = arg;
    int rc = check_.Init(loop, uv_check_init, this);
    return rc != 0 ? rc : idle_.Init(loop, uv_idle_init, this);
  }
  void Schedule() {
    if (scheduled_ || !check_ || !idle_) return;
    scheduled_ = true;
    uv_check_start(check_.get(), [](uv_check_t* h) { Run(h->data); });
    uv_idle_start(idle_.get(), [](uv_idle_t* h) { Run(h->data); });
  }
  void Close() {
    check_.Close();
    idle_.Close();
    scheduled_ = false;
  }

 private:
  static void Run(void* self_ptr) {
    if (self_ptr == nullptr) return;
    auto* self = static_cast<TurnEndTask*>(self_ptr);
    uv_check_stop(self->check_.get());
    uv_idle_stop(self->idle_.get());
    self->scheduled_ = false;
    self->fn_(self->arg_);  // may destroy nothing: owners die in their close callbacks
  }

  UvHandle<uv_check_t> check_;
  UvHandle<uv_idle_t> idle_;
  Fn fn_ = nullptr;
  void* arg_ = nullptr;
  bool scheduled_ = false;
};

}  // namespace lameduck::proxy
