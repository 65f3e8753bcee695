#include "proxy/upstream_connection.h"

#include "proxy/client_connection.h"
#include "proxy/proxy.h"

namespace lameduck::proxy {

UpstreamConnection::UpstreamConnection(Proxy& proxy)
    : proxy_(proxy),
      socket_(*this, proxy.buffers(), proxy.write_reqs()),
      parser_(proxy.options().max_header_bytes) {}

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
  if (client_ != nullptr) client_->OnUpstreamConnected();
}

void UpstreamConnection::Attach(ClientConnection& client, bool head_request) {
  client_ = &client;
  parser_.Reset(head_request);
  final_head_seen_ = false;
  wrote_ = false;
  write_failed_ = false;
  response_bytes_ = 0;
  ++exchanges_;
  if (state_ == State::kActive) socket_.StartReading();
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
  if (rc != 0 && state_ == State::kActive && client_ != nullptr && wrote_) {
    write_failed_ = true;
    if (head != nullptr) head->clear();
    return 0;
  }
  wrote_ = wrote_ || rc == 0;
  return rc;
}

void UpstreamConnection::ArmResponseTimeout() {
  if (state_ != State::kActive || final_head_seen_) return;
  uv_timer_start(timer_.get(), &UpstreamConnection::OnTimer,
                 proxy_.options().upstream_timeout.count(), 0);
}

void UpstreamConnection::StartTunnel() {
  state_ = State::kTunnel;
  uv_timer_stop(timer_.get());
}

void UpstreamConnection::PauseReading() {
  if (state_ == State::kActive || state_ == State::kTunnel) socket_.StopReading();
}

void UpstreamConnection::ResumeReading() {
  if (state_ == State::kActive || state_ == State::kTunnel) socket_.StartReading();
}

void UpstreamConnection::EnterPool(std::chrono::milliseconds idle_limit) {
  state_ = State::kIdle;
  client_ = nullptr;
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
  ClientConnection* client = client_;
  client_ = nullptr;
  bool started = response_started();
  Close();
  if (client != nullptr) client->OnUpstreamFailed(*this, error, started);
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
  switch (state_) {
    case State::kIdle:
      // The app closed a pooled connection, or sent bytes nobody asked for: either way it is
      // no longer a clean place for the next request.
      Close();
      return;
    case State::kActive:
      if (nread < 0) {
        OnEof(nread);
      } else {
        ParseResponse(block, static_cast<size_t>(nread));
      }
      return;
    case State::kTunnel:
      if (client_ == nullptr) {
        Close();
      } else if (nread < 0) {
        client_->OnTunnelEof(*this);
      } else {
        client_->OnTunnelData(*this, block, 0, static_cast<size_t>(nread));
      }
      return;
    case State::kConnecting:
    case State::kClosing:
      return;
  }
}

void UpstreamConnection::ParseResponse(const BlockRef& block, size_t length) {
  ParseResponseBytes(block, length);
  // A head held back for the first body bytes must not wait for a later read: an app may send
  // the head and stream the body much later (server-sent events, long polls).
  if (client_ != nullptr && state_ == State::kActive) client_->FlushResponseHead();
}

void UpstreamConnection::ParseResponseBytes(const BlockRef& block, size_t length) {
  const char* data = block.data();
  size_t offset = 0;
  if (client_ != nullptr) client_->NoteActivity();
  // After an event llhttp may complete a message without further input (a head with
  // Content-Length: 0 that ended the read), so it runs once more even with nothing left.
  bool again = false;
  while ((offset < length || again) && state_ == State::kActive && client_ != nullptr) {
    http1::ResponseParser::Step step = parser_.Parse(data + offset, length - offset);
    again = false;
    if (step.error) {
      Fail(ProxyError::kUpstreamBadResponse);
      return;
    }
    size_t end = offset + step.used;
    response_bytes_ += step.used;
    if (step.body) DeliverBody(block, offset, end);
    offset = end;
    if (client_ == nullptr || state_ != State::kActive) return;
    if (!step.head && !step.end) continue;
    again = true;
    const ResponseHead& head = parser_.head();
    if (step.head) {
      if (!head.interim()) {
        final_head_seen_ = true;
        uv_timer_stop(timer_.get());  // the response-head clock
      }
      parser_.set_dechunk(client_->OnResponseHead(*this, head) == http1::ResponseFraming::kDechunk);
      if (client_ == nullptr || state_ != State::kActive) return;
    }
    if (step.end) {
      if (head.interim()) continue;  // the final response follows on the same connection
      bool upgraded = head.status == 101;
      // Bytes after a final response that nobody asked for mean the connection is out of step.
      bool reusable = !upgraded && offset == length && parser_.keep_alive();
      client_->OnResponseComplete(*this, reusable);
      if (upgraded && client_ != nullptr && state_ == State::kTunnel && offset < length) {
        client_->OnTunnelData(*this, block, offset, length - offset);
      }
      return;
    }
  }
}

void UpstreamConnection::DeliverBody(const BlockRef& block, size_t begin, size_t end) {
  if (parser_.dechunk()) {
    const std::vector<uv_buf_t>& spans = parser_.body_spans();
    if (!spans.empty()) client_->OnResponseBody(spans.data(), spans.size(), block);
    return;
  }
  if (end == begin) return;
  uv_buf_t buf = uv_buf_init(block.data() + begin, static_cast<unsigned>(end - begin));
  client_->OnResponseBody(&buf, 1, block);
}

void UpstreamConnection::OnEof(ssize_t nread) {
  if (client_ == nullptr) {
    Close();
    return;
  }
  // A reset is never the end of a body, also when a write met it first and took its error, and
  // the read sees a plain EOF.
  if (nread != UV_EOF || write_failed_ || socket_.WasReset()) {
    Fail(ProxyError::kUpstreamClosed);
    return;
  }
  // A close-delimited body ends here (RFC 9112 6.3, rule 8).
  if (parser_.Finish()) {
    ClientConnection* client = client_;
    client->OnResponseComplete(*this, /*reusable=*/false);
    Close();
    return;
  }
  Fail(ProxyError::kUpstreamClosed);
}

void UpstreamConnection::OnSocketWritten(int status) {
  if (state_ == State::kClosing || client_ == nullptr) return;
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
  client_->OnUpstreamWritable(*this);
}

void UpstreamConnection::OnSocketShutdown(int status) {
  if (state_ == State::kTunnel && client_ != nullptr) client_->OnUpstreamShutdown(*this, status);
}

void UpstreamConnection::OnSocketClosed() { proxy_.Remove(*this); }

}  // namespace lameduck::proxy
