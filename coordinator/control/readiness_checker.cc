#include "coordinator/control/readiness_checker.h"

namespace lameduck::coordinator {
namespace {

int InitPipe(uv_loop_t* loop, uv_pipe_t* pipe) { return uv_pipe_init(loop, pipe, 0); }

}  // namespace

ReadinessChecker::ReadinessChecker(uv_loop_t* loop, const Config& config,
                                   std::function<void(bool)> on_result)
    : loop_(loop), config_(config), on_result_(std::move(on_result)) {}

void ReadinessChecker::Start() {
  interval_.Init(loop_, uv_timer_init, this);
  timeout_.Init(loop_, uv_timer_init, this);
  uv_timer_start(
      interval_.get(),
      [](uv_timer_t* t) {
        if (auto* self = static_cast<ReadinessChecker*>(t->data)) self->Check();
      },
      0, kIntervalMs);
}

void ReadinessChecker::Stop() {
  stopped_ = true;
  interval_.Close();
  timeout_.Close();
  tcp_.Close();
  pipe_.Close();
}

void ReadinessChecker::Check() {
  if (in_flight_ || stopped_) return;
  in_flight_ = true;
  const proxy::Address& upstream = config_.proxy.upstream;
  int rc = upstream.kind == proxy::Address::Kind::kUnix ? pipe_.Init(loop_, InitPipe, this)
                                                        : tcp_.Init(loop_, uv_tcp_init, this);
  if (rc != 0) {
    Done(false);
    return;
  }
  connect_req_.data = this;
  auto on_connect = [](uv_connect_t* req, int status) {
    if (status == UV_ECANCELED) return;  // the check was over; its handle closed
    static_cast<ReadinessChecker*>(req->data)->OnConnected(status);
  };
  if (upstream.kind == proxy::Address::Kind::kUnix) {
    uv_pipe_connect(&connect_req_, pipe_.get(), upstream.path.c_str(), on_connect);
  } else if (uv_tcp_connect(&connect_req_, tcp_.get(), upstream.sa(), on_connect) != 0) {
    Done(false);
    return;
  }
  uv_timer_start(
      timeout_.get(),
      [](uv_timer_t* t) {
        if (auto* self = static_cast<ReadinessChecker*>(t->data)) self->Done(false);
      },
      kTimeoutMs, 0);
}

void ReadinessChecker::OnConnected(int status) {
  if (!in_flight_) return;
  if (status != 0) {
    Done(false);
    return;
  }
  if (!config_.upstream_ready) {
    Done(true);
    return;
  }
  request_ = "GET " + *config_.upstream_ready +
             " HTTP/1.1\r\nHost: localhost\r\nUser-Agent: lameduck-readiness\r\n"
             "Connection: close\r\n\r\n";
  response_.clear();
  uv_stream_t* stream = tcp_ ? reinterpret_cast<uv_stream_t*>(tcp_.get())
                             : reinterpret_cast<uv_stream_t*>(pipe_.get());
  uv_buf_t buf = uv_buf_init(request_.data(), static_cast<unsigned>(request_.size()));
  write_req_.data = this;
  if (uv_write(&write_req_, stream, &buf, 1, [](uv_write_t*, int) {}) != 0) {
    Done(false);
    return;
  }
  uv_read_start(
      stream,
      [](uv_handle_t* h, size_t, uv_buf_t* out) {
        auto* self = static_cast<ReadinessChecker*>(h->data);
        *out = uv_buf_init(self->buffer_, sizeof(self->buffer_));
      },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
        if (auto* self = static_cast<ReadinessChecker*>(s->data)) self->OnRead(nread);
      });
}

void ReadinessChecker::OnRead(ssize_t nread) {
  if (!in_flight_ || nread == 0) return;
  if (nread < 0) {
    Done(false);
    return;
  }
  response_.append(buffer_, static_cast<size_t>(nread));
  // "HTTP/1.1 200 ..." is all that is needed.
  if (response_.size() < 12) return;
  bool two_xx = response_.starts_with("HTTP/1.") && response_[8] == ' ' && response_[9] == '2';
  Done(two_xx);
}

void ReadinessChecker::Done(bool healthy) {
  if (!in_flight_) return;
  in_flight_ = false;
  if (timeout_) uv_timer_stop(timeout_.get());
  tcp_.Close();
  pipe_.Close();
  if (!stopped_) on_result_(healthy);
}

}  // namespace lameduck::coordinator
