#include "proxy/upstream_connection.h"

#include "proxy/client_connection.h"
#include "proxy/proxy.h"

namespace lameduck::proxy {

// Trampolines from llhttp into the connection: record facts, return; the connection acts after
// llhttp_execute returns.
struct UpstreamParserCallbacks {
  static UpstreamConnection& Self(llhttp_t* parser) {
    return *static_cast<UpstreamConnection*>(parser->data);
  }
  static int OnMessageBegin(llhttp_t* parser) {
    auto& self = Self(parser);
    self.head_.Reset();
    self.in_head_ = true;
    self.head_delivered_ = false;
    self.head_bytes_ = 0;
    return 0;
  }
  static int OnStatus(llhttp_t* parser, const char* at, size_t length) {
    Self(parser).head_.AppendTarget(at, length);
    return 0;
  }
  static int OnHeaderField(llhttp_t* parser, const char* at, size_t length) {
    auto& self = Self(parser);
    if (self.in_head_) self.head_.AppendField(at, length);
    return 0;
  }
  static int OnHeaderValue(llhttp_t* parser, const char* at, size_t length) {
    auto& self = Self(parser);
    if (self.in_head_) self.head_.AppendValue(at, length);
    return 0;
  }
  static int OnHeadersComplete(llhttp_t* parser) {
    auto& self = Self(parser);
    self.in_head_ = false;
    // A response to HEAD, a 1xx, a 204 and a 304 have no body whatever their framing fields
    // say (RFC 9110 9.3.2, 15.2, 15.3.5, 15.4.5; RFC 9112 6.3 rule 1): a 304's Content-Length
    // is the length of the representation. llhttp would wait for that many bytes, so say it.
    // Then there is no pause here: the head goes to the client with the message's completion.
    int status = parser->status_code;
    bool interim = status < 200 && status != 101;
    if ((self.head_request_ && status >= 200) || interim || status == 204 || status == 304) {
      return 1;
    }
    self.event_ = UpstreamConnection::ParseEvent::kHeadComplete;
    return HPE_PAUSED;
  }
  static int OnBody(llhttp_t* parser, const char* at, size_t length) {
    auto& self = Self(parser);
    if (self.dechunk_) {
      self.dechunked_.push_back(uv_buf_init(const_cast<char*>(at), static_cast<unsigned>(length)));
    }
    return 0;
  }
  static int OnMessageComplete(llhttp_t* parser) {
    Self(parser).event_ = UpstreamConnection::ParseEvent::kMessageComplete;
    return HPE_PAUSED;
  }
  static const llhttp_settings_t* Settings() {
    static const llhttp_settings_t settings = [] {
      llhttp_settings_t s;
      llhttp_settings_init(&s);
      s.on_message_begin = &OnMessageBegin;
      s.on_status = &OnStatus;
      s.on_header_field = &OnHeaderField;
      s.on_header_value = &OnHeaderValue;
      s.on_headers_complete = &OnHeadersComplete;
      s.on_body = &OnBody;
      s.on_message_complete = &OnMessageComplete;
      return s;
    }();
    return &settings;
  }
};

UpstreamConnection::UpstreamConnection(Proxy& proxy)
    : proxy_(proxy), socket_(*this, proxy.buffers(), proxy.write_reqs()) {
  llhttp_init(&parser_, HTTP_RESPONSE, UpstreamParserCallbacks::Settings());
  parser_.data = this;
  dechunked_.reserve(16);
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
  if (client_ != nullptr) client_->OnUpstreamConnected();
}

void UpstreamConnection::Attach(ClientConnection& client, bool head_request) {
  client_ = &client;
  head_request_ = head_request;
  dechunk_ = false;
  in_body_ = false;
  final_head_seen_ = false;
  wrote_ = false;
  write_failed_ = false;
  response_bytes_ = 0;
  ++exchanges_;
  llhttp_reset(&parser_);
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

void UpstreamConnection::SetReadPaused(bool paused) {
  if (state_ != State::kActive && state_ != State::kTunnel) return;
  if (paused) {
    socket_.StopReading();
  } else {
    socket_.StartReading();
  }
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
  if (client_ != nullptr) client_->Touch();
  // After a pause is lifted llhttp may complete a message without further input (a head with
  // Content-Length: 0 that ended the read), so it runs once more even with nothing left.
  bool resumed = false;
  while ((offset < length || resumed) && state_ == State::kActive && client_ != nullptr) {
    resumed = false;
    event_ = ParseEvent::kNone;
    dechunked_.clear();
    llhttp_errno_t err = llhttp_execute(&parser_, data + offset, length - offset);
    size_t end =
        err == HPE_OK ? length : static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
    if (err != HPE_OK && err != HPE_PAUSED) {
      Fail(ProxyError::kUpstreamBadResponse);
      return;
    }
    response_bytes_ += end - offset;
    if (in_body_) {
      DeliverBody(block, offset, end);
    } else {
      head_bytes_ += end - offset;
      if (head_bytes_ > proxy_.options().max_header_bytes) {
        Fail(ProxyError::kUpstreamBadResponse);
        return;
      }
    }
    offset = end;
    if (client_ == nullptr || state_ != State::kActive) return;
    if (event_ == ParseEvent::kNone) continue;
    llhttp_resume(&parser_);
    resumed = true;
    int status = parser_.status_code;
    bool interim = status >= 100 && status < 200 && status != 101;
    if (!head_delivered_) {
      head_delivered_ = true;
      if (!interim) {
        final_head_seen_ = true;
        uv_timer_stop(timer_.get());  // the response-head clock
      }
      dechunk_ = client_->OnResponseHead(*this, head_, parser_) == ResponseFraming::kDechunk;
      if (client_ == nullptr || state_ != State::kActive) return;
      in_body_ = event_ == ParseEvent::kHeadComplete && !interim;  // 1xx have no body
    }
    if (event_ == ParseEvent::kMessageComplete) {
      in_body_ = false;
      if (interim) continue;  // the final response follows on the same connection
      bool upgraded = status == 101;
      // Bytes after a final response that nobody asked for mean the connection is out of step.
      bool reusable = !upgraded && offset == length && llhttp_should_keep_alive(&parser_);
      client_->OnResponseComplete(*this, reusable);
      if (upgraded && client_ != nullptr && state_ == State::kTunnel && offset < length) {
        client_->OnTunnelData(*this, block, offset, length - offset);
      }
      return;
    }
  }
}

void UpstreamConnection::DeliverBody(const BlockRef& block, size_t begin, size_t end) {
  if (dechunk_) {
    if (!dechunked_.empty()) client_->OnResponseBody(dechunked_.data(), dechunked_.size(), block);
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
  // A close-delimited body ends here (RFC 9112 6.3, rule 8): llhttp_finish completes it.
  event_ = ParseEvent::kNone;
  llhttp_errno_t err = llhttp_finish(&parser_);
  if ((err == HPE_OK || err == HPE_PAUSED) && event_ == ParseEvent::kMessageComplete) {
    in_body_ = false;
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
