#include "proxy/upstream_connection.h"

#include "proxy/proxy.h"

namespace lameduck::proxy {

UpstreamConnection::UpstreamConnection(Proxy& proxy)
    : proxy_(proxy),
      socket_(*this, proxy.buffers(), proxy.write_reqs()),
      parser_(proxy.options().max_header_bytes) {
  // Once per connection: a head is built by appends, and an app that does not keep connections
  // alive would otherwise cost several reallocations per request.
  request_head_.reserve(1024);
}

int UpstreamConnection::Connect() {
  state_ = State::kConnecting;
  uv_loop_t* loop = proxy_.loop();
  if (int rc = socket_.Init(loop, proxy_.options().upstream.kind); rc != 0) return rc;
  // From here on the socket exists: any failure closes it through Close(), and the Proxy
  // erases this connection in OnSocketClosed, never before.
  int rc = timer_.Init(loop, uv_timer_init, this);
  if (rc == 0) rc = socket_.Connect(proxy_.options().upstream);
  if (rc != 0) {
    Close();
    return rc;
  }
  uv_timer_start(timer_.get(), &UpstreamConnection::OnTimer,
                 proxy_.options().connect_timeout.count(), 0);
  return 0;
}

void UpstreamConnection::OnSocketConnected(int status) {
  if (state_ != State::kConnecting) return;  // closed while connecting
  uv_timer_stop(timer_.get());
  if (status != 0) {
    Fail(ProxyError::kUpstreamConnect);
    return;
  }
  state_ = State::kActive;
  socket_.StartReading();
  if (request_ended_) ArmResponseTimer();
  if (receiver_ != nullptr) receiver_->OnUpstreamReady();
}

void UpstreamConnection::Attach(ResponseReceiver& receiver, bool head_request) {
  receiver_ = &receiver;
  parser_.Reset(head_request);
  request_ended_ = false;
  final_head_seen_ = false;
  wrote_ = false;
  write_failed_ = false;
  response_bytes_ = 0;
  ++exchanges_;
  if (state_ == State::kActive) socket_.StartReading();
}

int UpstreamConnection::WriteRequestHead(const HeadCollector& head,
                                         const http1::RequestRewrite& rewrite, bool) {
  http1::WriteRequestHead(head, rewrite, request_head_);
  return Write(&request_head_, nullptr, 0, BlockRef());
}

int UpstreamConnection::Write(std::string* head, const uv_buf_t* bufs, unsigned count,
                              BlockRef block) {
  if (write_failed_) {
    if (head != nullptr) head->clear();
    return 0;
  }
  int rc = socket_.Write(head, bufs, count, std::move(block));
  // Only once part of the request went out can the app have answered it; a first write that
  // fails is the caller's to handle (a pooled connection the app closed: the request is retried).
  if (rc != 0 && state_ == State::kActive && receiver_ != nullptr && wrote_) {
    write_failed_ = true;
    if (head != nullptr) head->clear();
    return 0;
  }
  wrote_ = wrote_ || rc == 0;
  return rc;
}

void UpstreamConnection::EndRequest(const HeadCollector*) {
  request_ended_ = true;
  if (state_ == State::kActive) ArmResponseTimer();  // else once connected
}

void UpstreamConnection::ArmResponseTimer() {
  if (final_head_seen_) return;
  uv_timer_start(timer_.get(), &UpstreamConnection::OnTimer,
                 proxy_.options().upstream_timeout.count(), 0);
}

void UpstreamConnection::PauseReading() {
  if (state_ == State::kActive || state_ == State::kTunnel) socket_.StopReading();
}

void UpstreamConnection::ResumeReading() {
  if (state_ == State::kActive || state_ == State::kTunnel) socket_.StartReading();
}

void UpstreamConnection::EnterPool(std::chrono::milliseconds idle_limit) {
  state_ = State::kIdle;
  receiver_ = nullptr;
  socket_.StartReading();  // to notice the app closing it
  uv_timer_start(timer_.get(), &UpstreamConnection::OnTimer, idle_limit.count(), 0);
}

void UpstreamConnection::LeavePool() {
  state_ = State::kActive;
  uv_timer_stop(timer_.get());
}

void UpstreamConnection::Close() {
  if (state_ == State::kClosing) return;
  state_ = State::kClosing;
  proxy_.pool().Remove(*this);
  timer_.Close();
  socket_.Close();
}

void UpstreamConnection::Fail(ProxyError error) {
  ResponseReceiver* receiver = receiver_;
  receiver_ = nullptr;
  bool started = response_started();
  Close();
  if (receiver != nullptr) receiver->OnUpstreamError(error, started);
}

void UpstreamConnection::OnTimer(uv_timer_t* timer) {
  auto* self = static_cast<UpstreamConnection*>(timer->data);
  if (self == nullptr) return;
  switch (self->state_) {
    case State::kConnecting:
      self->Fail(ProxyError::kUpstreamConnect);
      break;
    case State::kActive:
      self->Fail(ProxyError::kUpstreamTimeout);
      break;
    case State::kIdle:
      self->Close();
      break;
    case State::kTunnel:
    case State::kClosing:
      break;
  }
}

void UpstreamConnection::OnSocketRead(ssize_t nread, BlockRef block) {
  if (receiver_ == nullptr) {
    // Pooled: the app closed it, or sent bytes nobody asked for; either way it is no longer a
    // clean place for the next request. Or the exchange let it go and it is closing.
    Close();
    return;
  }
  switch (state_) {
    case State::kActive:
      if (nread < 0) {
        OnEof(nread);
      } else {
        ParseResponse(block, static_cast<size_t>(nread));
      }
      return;
    case State::kTunnel:
      if (nread < 0) {
        receiver_->OnTunnelEof();
      } else {
        receiver_->OnTunnelData(block, 0, static_cast<size_t>(nread));
      }
      return;
    case State::kIdle:
    case State::kConnecting:
    case State::kClosing:
      return;
  }
}

void UpstreamConnection::ParseResponse(const BlockRef& block, size_t length) {
  using Verdict = ResponseReceiver::Verdict;
  using HeadVerdict = ResponseReceiver::HeadVerdict;
  const char* data = block.data();
  size_t offset = 0;
  // After an event llhttp may complete a message without further input (a head with
  // Content-Length: 0 that ended the read), so it runs once more even with nothing left.
  bool again = false;
  while (offset < length || again) {
    http1::ResponseParser::Step step = parser_.Parse(data + offset, length - offset);
    again = false;
    if (step.error) {
      Fail(ProxyError::kUpstreamBadResponse);
      return;
    }
    size_t end = offset + step.used;
    response_bytes_ += step.used;
    if (step.body && DeliverBody(block, offset, end) == Verdict::kStop) return;
    offset = end;
    if (!step.head && !step.end) continue;
    again = true;
    const ResponseHead& head = parser_.head();
    if (step.head) {
      if (!head.interim()) {
        final_head_seen_ = true;
        uv_timer_stop(timer_.get());  // the response-head clock
      }
      HeadVerdict verdict = receiver_->OnHead(head);
      if (verdict == HeadVerdict::kStop) return;
      if (verdict == HeadVerdict::kRefuse) {
        Fail(ProxyError::kUpstreamBadResponse);
        return;
      }
      parser_.set_dechunk(verdict == HeadVerdict::kDataOnly);
    }
    if (step.end) {
      if (head.interim()) continue;  // the final response follows on the same connection
      EndResponse(block, offset, length);
      return;
    }
  }
  // A head held back for the first body bytes must not wait for a later read: an app may send
  // the head and stream the body much later (server-sent events, long polls).
  receiver_->OnReadDone();
}

bool UpstreamConnection::Reusable(size_t unparsed) const {
  // Bytes after a final response that nobody asked for mean the connection is out of step; a
  // request not wholly handed over, or still being written, would be out of step too.
  return state_ == State::kActive && unparsed == 0 && parser_.keep_alive() && request_ended_ &&
         !write_failed_ && socket_.writes_pending() == 0;
}

void UpstreamConnection::EndResponse(const BlockRef& block, size_t offset, size_t length) {
  ResponseReceiver* receiver = receiver_;
  if (parser_.head().status == 101) {
    state_ = State::kTunnel;
    uv_timer_stop(timer_.get());
    receiver->OnUpgraded(block, offset, length - offset);
    return;
  }
  receiver_ = nullptr;
  if (Reusable(length - offset)) {
    parser_.ReleaseHead();
    proxy_.pool().Put(*this);
  } else {
    Close();
  }
  receiver->OnEnd();
}

ResponseReceiver::Verdict UpstreamConnection::DeliverBody(const BlockRef& block, size_t begin,
                                                          size_t end) {
  if (parser_.dechunk()) {
    const std::vector<uv_buf_t>& spans = parser_.body_spans();
    if (spans.empty()) return ResponseReceiver::Verdict::kContinue;
    return receiver_->OnBody(spans.data(), spans.size(), block);
  }
  if (end == begin) return ResponseReceiver::Verdict::kContinue;
  uv_buf_t buf = uv_buf_init(block.data() + begin, static_cast<unsigned>(end - begin));
  return receiver_->OnBody(&buf, 1, block);
}

void UpstreamConnection::OnEof(ssize_t nread) {
  // A reset is never the end of a body, also when a write met it first and took its error, and
  // the read sees a plain EOF.
  if (nread != UV_EOF || write_failed_ || socket_.WasReset()) {
    Fail(ProxyError::kUpstreamClosed);
    return;
  }
  // A close-delimited body ends here (RFC 9112 6.3, rule 8).
  if (!parser_.Finish()) {
    Fail(ProxyError::kUpstreamClosed);
    return;
  }
  ResponseReceiver* receiver = receiver_;
  receiver_ = nullptr;
  Close();
  receiver->OnEnd();
}

void UpstreamConnection::OnSocketWritten(int status) {
  if (state_ == State::kClosing || receiver_ == nullptr) return;
  if (status != 0) {
    // EPIPE/ECONNRESET on write: the app closed. A response may still be readable (an early
    // answer) and the read side, still on, will see it or the close: it decides.
    if (state_ == State::kTunnel) {
      Fail(ProxyError::kUpstreamClosed);  // the app's end of the tunnel is gone
    } else {
      write_failed_ = true;
    }
    return;
  }
  receiver_->OnUpstreamWritable();
}

void UpstreamConnection::OnSocketShutdown(int status) {
  if (state_ == State::kTunnel && receiver_ != nullptr) receiver_->OnTunnelShutdown(status);
}

void UpstreamConnection::OnSocketClosed() { proxy_.Remove(*this); }

}  // namespace lameduck::proxy
