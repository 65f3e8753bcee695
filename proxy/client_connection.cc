#include "proxy/client_connection.h"

#include <arpa/inet.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "proxy/http2/preface.h"
#include "proxy/proxy.h"
#include "proxy/upstream_connection.h"

namespace lameduck::proxy {
namespace {

// Back-pressure: a side stops reading when what it forwarded is queued beyond the high-water
// mark at the other side, and resumes below the low-water mark.
constexpr size_t kHighWaterBytes = 256 * 1024;
constexpr size_t kLowWaterBytes = 64 * 1024;
// A lingering close waits this long at most for the client's FIN.
constexpr uint64_t kLingerMs = 5000;
// A connection the drain finds freshly accepted, its first request not yet here, gets this long
// from its accept for it: the client connected to send one, and closing now would answer the
// request it is sending with EOF (accepted in the accept grace's last moment, its bytes a few
// microseconds behind its handshake). Silent beyond it (a browser's preconnect), it is closed as
// an idle one.
constexpr uint64_t kFirstRequestGraceMs = 1000;
// A WebSocket's Close 1001: the code says the server is going away (RFC 6455 7.4.1), which
// browsers and client libraries take as "reconnect".
constexpr uint16_t kGoingAway = 1001;
constexpr std::string_view kGoingAwayReason = "server shutting down";

bool Congested(size_t queued_bytes, bool reading) {
  return reading ? queued_bytes > kHighWaterBytes : queued_bytes >= kLowWaterBytes;
}

}  // namespace

ClientConnection::ClientConnection(Proxy& proxy)
    : proxy_(proxy), socket_(*this, proxy.buffers(), proxy.write_reqs()) {}

ClientConnection::~ClientConnection() {
  proxy_.deadlines().Stop(*this);
  ReleaseWork();
}

void ClientConnection::StartHead() {
  if (work_ == nullptr) {
    work_ = proxy_.http1_work().Take(
        [this] { return std::make_unique<Http1Work>(proxy_.options().max_header_bytes); });
    work_->parser.Reset();  // it may come from another connection
  }
  work_->parser.StartHead();
}

void ClientConnection::ReleaseWork() {
  if (work_ != nullptr) proxy_.http1_work().Give(std::move(work_));
}

int ClientConnection::Accept(uv_stream_t* server, int fd, Address::Kind kind) {
  if (int rc = socket_.Init(proxy_.loop(), kind); rc != 0) return rc;
  kind_ = kind;
  Recount();  // from here on the Proxy erases it only in Remove, which uncounts it
  int rc = fd >= 0 ? socket_.Open(fd) : uv_accept(server, socket_.stream());
  if (rc != 0) {
    if (fd >= 0) close(fd);  // not adopted: still ours
    Close();
    return 0;
  }
  if (kind == Address::Kind::kTcp) {
    auto* tcp = reinterpret_cast<uv_tcp_t*>(socket_.stream());  // TCP_NODELAY: from the listener
    sockaddr_storage peer{};
    int length = sizeof(peer);
    if (uv_tcp_getpeername(tcp, reinterpret_cast<sockaddr*>(&peer), &length) == 0) {
      PeerIp(peer, client_ip_, sizeof(client_ip_));
    }
  }
  NoteActivity();
  accepted_ms_ = last_activity_ms_;
  ArmTimer(proxy_.options().header_timeout.count());  // a new connection owes us a head
  UpdateReading();
  return 0;
}

void ClientConnection::SetState(State state) {
  if (state != State::kIdle) fresh_ = false;
  state_ = state;
  Recount();
}

void ClientConnection::SetResponseState(Exchange::ResponseState state) {
  exchange_.response = state;
  Recount();
}

void ClientConnection::SetShutdownDone() {
  shutdown_done_ = true;
  Recount();
}

ClientConnection::CountClass ClientConnection::Classify() const {
  switch (state_) {
    case State::kIdle:
      return CountClass::kIdle;
    case State::kProxying:
      return exchange_.response != Exchange::ResponseState::kComplete ? CountClass::kInFlight
                                                                      : CountClass::kOther;
    case State::kTunnel:
      return CountClass::kUpgraded;
    case State::kLingering:
      return shutdown_done_ ? CountClass::kFinishing : CountClass::kOther;
    case State::kClosing:
      // Served in full before: it owed nothing then, and closing does not change that.
      return counted_as_ == CountClass::kFinishing ? CountClass::kFinishing : CountClass::kOther;
    case State::kReadingHead:
      return CountClass::kOther;
    case State::kHandedOver:
      return CountClass::kUncounted;
  }
  return CountClass::kOther;
}

void ClientConnection::Recount() {
  CountClass now = Classify();
  if (now == counted_as_) return;
  if (now == CountClass::kInFlight) {
    ++proxy_.tally().requests;
  } else if (counted_as_ == CountClass::kInFlight) {
    TallyRequestEnd(now);
  }
  // Served in full, only the client's FIN awaited: it owes nothing from here on.
  if (now == CountClass::kFinishing && Owes(counted_as_)) ++proxy_.tally().ended_by(EndNow());
  proxy_.MoveCount(counted_as_, now);
  counted_as_ = now;
}

void ClientConnection::TallyRequestEnd(CountClass now) {
  ProxyTally& tally = proxy_.tally();
  if (now == CountClass::kUpgraded) {
    ++tally.completed;  // answered with 101: the tunnel is the connection's from here
  } else if (exchange_.response == Exchange::ResponseState::kComplete) {
    bool closes = exchange_.close_after || drain_close_ || proxy_.close_after_each_response();
    ++(closes ? tally.completed_close : tally.completed);
  } else if (forced_) {
    ++tally.requests_forced;
  } else {
    ++tally.aborted;
  }
}

ConnectionEnd ClientConnection::EndNow() const {
  if (forced_) return ConnectionEnd::kForced;
  if (long_lived_clean_) return ConnectionEnd::kLongLived;
  if (idle_close_) return ConnectionEnd::kIdle;
  if (state_ == State::kLingering ||
      (state_ == State::kProxying && exchange_.response == Exchange::ResponseState::kComplete)) {
    return ConnectionEnd::kAfterResponse;
  }
  return ConnectionEnd::kByClient;
}

void ClientConnection::NoteActivity() { last_activity_ms_ = uv_now(proxy_.loop()); }

void ClientConnection::ArmTimer(uint64_t timeout_ms) {
  if (state_ == State::kClosing || state_ == State::kHandedOver) return;
  proxy_.deadlines().Start(*this, timeout_ms);
}

void ClientConnection::OnDeadline() {
  const ProxyOptions& options = proxy_.options();
  switch (state_) {
    case State::kIdle:
      // A fresh connection the drain gave time for its first request, which did not come.
      // (Bytes that arrived meanwhile are delivered next, and served.)
      if (drain_close_ && fresh_) {
        CloseIfIdle();
        return;
      }
      idle_close_ = true;  // --idle-timeout (or a first request that never came)
      Close();
      return;
    case State::kReadingHead:
      SendError(ProxyError::kHeaderTimeout);
      return;
    case State::kProxying:
    case State::kTunnel: {
      uint64_t idle_limit = options.idle_timeout.count();
      if (long_lived_ != nullptr && long_lived_->ended && state_ == State::kTunnel) {
        // Close 1001 went out: the closing handshake gets a bounded time, activity or not.
        uint64_t bound = std::min<uint64_t>(kLingerMs, idle_limit);
        uint64_t waited = uv_now(proxy_.loop()) - long_lived_->ended_ms;
        if (waited >= bound) {
          Close();
        } else {
          ArmTimer(bound - waited);
        }
        return;
      }
      if (state_ == State::kProxying && exchange_.request == Exchange::RequestState::kComplete &&
          exchange_.response == Exchange::ResponseState::kAwaitingHead) {
        ArmTimer(idle_limit);  // waiting for a response head: --upstream-timeout decides
        return;
      }
      uint64_t idle = uv_now(proxy_.loop()) - last_activity_ms_;
      if (idle < idle_limit) {
        ArmTimer(idle_limit - idle);
      } else if (uint64_t still = QueuedBytesUnchangedForMs(); still < idle_limit) {
        ArmTimer(idle_limit - still);  // a slow peer is draining the kernel's buffers
      } else {
        proxy_.events().OnProxyError(ProxyError::kStalled);
        Abort();
      }
      return;
    }
    case State::kLingering:
      // Still writing the last response to a slow reader: not stalled while it drains.
      if (uint64_t still = QueuedBytesUnchangedForMs();
          !shutdown_done_ && still < static_cast<uint64_t>(options.idle_timeout.count())) {
        ArmTimer(options.idle_timeout.count() - still);
        return;
      }
      Close();
      return;
    case State::kClosing:
    case State::kHandedOver:
      return;
  }
}

// Progress that no libuv callback reports: a peer reading slowly drains the kernel's send
// buffer long before libuv's next write completes (that needs the buffer half empty). Returns
// for how long (ms) the bytes still queued, ours and the kernel's in both directions of the
// exchange, have not changed; called only when the timer finds no other activity, so it costs
// a couple of ioctls per --idle-timeout, never one per byte.
uint64_t ClientConnection::QueuedBytesUnchangedForMs() {
  auto queued = [](int fd) -> uint64_t {
    int bytes = 0;
    if (fd < 0 || ioctl(fd, SIOCOUTQ, &bytes) != 0) return 0;
    return static_cast<uint64_t>(bytes);
  };
  uint64_t bytes = queued(socket_.fd()) + socket_.write_queue_bytes();
  if (exchange_.upstream != nullptr) {
    bytes += queued(exchange_.upstream->fd()) + exchange_.upstream->write_queue_bytes();
  }
  uint64_t now = uv_now(proxy_.loop());
  if (bytes != queued_bytes_) {
    queued_bytes_ = bytes;
    queued_since_ms_ = now;
  }
  return now - queued_since_ms_;
}

void ClientConnection::OnSocketRead(ssize_t nread, BlockRef block) {
  if (nread < 0) {
    client_eof_ = true;
    switch (state_) {
      case State::kIdle:
      case State::kReadingHead:
        // Closing now would cancel a response still queued for the client.
        if (socket_.writes_pending() > 0) {
          Linger();
        } else {
          Close();
        }
        return;
      case State::kLingering:
        if (shutdown_done_) Close();  // else OnSocketShutdown closes, once the response is out
        UpdateReading();
        return;
      case State::kProxying:
        if (nread == UV_EOF && exchange_.request == Exchange::RequestState::kComplete) {
          // A half-close after a whole request (RFC 9112 9.6): answer it, then close.
          exchange_.close_after = true;
          UpdateReading();
        } else {
          Abort();  // gone mid-request, or reset: the upstream connection is spoiled too
        }
        return;
      case State::kTunnel:
        if (exchange_.upstream == nullptr) {
          Close();
        } else {
          exchange_.upstream->ShutdownWrite();  // pass the half-close on, after what is queued
          if (state_ != State::kClosing) UpdateReading();  // a failed shutdown closed it
        }
        return;
      case State::kClosing:
      case State::kHandedOver:
        return;
    }
  }
  NoteActivity();
  ProcessInput(std::move(block), 0, static_cast<size_t>(nread));
}

bool ClientConnection::Sniff(const BlockRef& block, size_t& offset, size_t& length) {
  std::string_view bytes(block.data() + offset, length);
  switch (http2::MatchPreface(preface_length_, bytes)) {
    case http2::PrefaceMatch::kComplete:
      HandOver(block, offset, length);
      return false;
    case http2::PrefaceMatch::kPartial:
      // The rest of the preface is in a later read (the header timer runs meanwhile).
      std::memcpy(preface_ + preface_length_, bytes.data(), bytes.size());
      preface_length_ += bytes.size();
      if (state_ == State::kIdle) {
        SetState(State::kReadingHead);
        StartHead();
        ArmTimer(proxy_.options().header_timeout.count());
      }
      length = 0;
      return false;
    case http2::PrefaceMatch::kMismatch:
      break;
  }
  sniffing_ = false;
  if (preface_length_ == 0) return true;
  // "P" began a POST, not a preface: the bytes held back are the head's first ones.
  http1::RequestParser::Result result = work_->parser.ParseHead(preface_, preface_length_);
  if (result.outcome != http1::RequestParser::Outcome::kNeedMore) {
    SendError(result.outcome == http1::RequestParser::Outcome::kError ? result.error
                                                                      : ProxyError::kBadRequest);
    return false;
  }
  return true;
}

void ClientConnection::HandOver(const BlockRef& block, size_t offset, size_t length) {
  int fd = dup(socket_.fd());
  if (fd < 0) {
    Abort();
    return;
  }
  std::string_view prefix(preface_, preface_length_);
  // First out of the counts and the timers: the session counts itself from now on.
  SetState(State::kHandedOver);
  proxy_.deadlines().Stop(*this);
  proxy_.AdoptHttp2(fd, kind_, client_ip_, prefix, block, offset, length);
  // Only the handle goes: the socket lives on in the dup (a FIN would end the session's too,
  // so never a shutdown here, and never a reset: SO_LINGER is shared through the dup).
  socket_.Close(CloseMode::kFin);
}

void ClientConnection::ProcessInput(BlockRef block, size_t offset, size_t length) {
  if (sniffing_ && length > 0 && !Sniff(block, offset, length)) {
    if (state_ != State::kHandedOver && state_ != State::kClosing) UpdateReading();
    return;
  }
  bool more = true;
  while (more) {
    switch (state_) {
      case State::kIdle:
        if (length == 0) {
          more = false;
          break;
        }
        SetState(State::kReadingHead);
        StartHead();
        ArmTimer(proxy_.options().header_timeout.count());
        break;
      case State::kReadingHead:
        more = ReadHead(block, offset, length);
        break;
      case State::kProxying:
        if (length == 0) {
          more = false;
        } else if (exchange_.request == Exchange::RequestState::kComplete || exchange_.unsent ||
                   (h2c_ && !exchange_.upstream_ready())) {
          // The next request, or more than can wait; or body bytes for an h2c stream, which
          // are parsed (their data taken out) only once it can take them.
          Stash(std::move(block), offset, length);
          more = false;
        } else {
          more = ReadBody(block, offset, length);
        }
        break;
      case State::kTunnel:
        if (length > 0 && exchange_.upstream != nullptr) {
          uv_buf_t buf = uv_buf_init(block.data() + offset, static_cast<unsigned>(length));
          if (exchange_.upstream->Write(nullptr, &buf, 1, block.Share()) != 0) Abort();
        }
        more = false;
        break;
      case State::kLingering:
      case State::kClosing:
      case State::kHandedOver:
        more = false;  // discarded
        break;
    }
  }
  // Only now, with what this read brought checked, does the exchange take an upstream.
  if (state_ == State::kProxying && exchange_.attempt == Exchange::Attempt::kNone) {
    if (AttachUpstream(UpstreamSource::kPoolOrNew) && exchange_.upstream_ready()) {
      OnUpstreamReady(exchange_);  // a pooled connection is ready at once
    }
  }
  UpdateReading();
}

bool ClientConnection::ReadHead(const BlockRef& block, size_t& offset, size_t& length) {
  http1::RequestParser::Result result = work_->parser.ParseHead(block.data() + offset, length);
  offset += result.used;
  length -= result.used;
  switch (result.outcome) {
    case http1::RequestParser::Outcome::kNeedMore:
      return false;  // the head continues in a later read
    case http1::RequestParser::Outcome::kError:
      SendError(result.error);
      return false;
    case http1::RequestParser::Outcome::kHeadComplete:
    case http1::RequestParser::Outcome::kMessageComplete:
      break;
  }
  StartExchange(result.outcome == http1::RequestParser::Outcome::kMessageComplete
                    ? Exchange::RequestState::kComplete
                    : Exchange::RequestState::kBody);
  return state_ == State::kProxying;
}

void ClientConnection::StartExchange(Exchange::RequestState request) {
  exchange_.Begin(
      work_->parser.http10(), work_->parser.upgrade(),
      !work_->parser.keep_alive() || drain_close_ || proxy_.close_after_each_response());
  exchange_.request = request;
  h2c_ = proxy_.options().upstream_protocol == UpstreamProtocol::kH2c;
  chunk_response_ = false;
  SetState(State::kProxying);  // with the attempt kNone: an upstream is taken after this read
  ArmTimer(proxy_.options().idle_timeout.count());
}

bool ClientConnection::AttachUpstream(UpstreamSource source) {
  Upstream* upstream = proxy_.TakeUpstream(h2c_, source == UpstreamSource::kNew);
  if (upstream == nullptr) {
    SendError(ProxyError::kUpstreamConnect);
    return false;
  }
  exchange_.Attach(*upstream, work_->parser.head_request(),
                   /*retry=*/source == UpstreamSource::kNew);
  return true;
}

bool ClientConnection::SendRequestHead() {
  http1::RequestRewrite rewrite;
  rewrite.method = work_->parser.method_name();
  rewrite.client_ip = client_ip_;
  rewrite.upgrade = exchange_.upgrade;
  rewrite.default_host = proxy_.upstream_host();
  if (exchange_.SendHead(work_->parser.head(), rewrite) != 0) {
    FailUpstream(ProxyError::kUpstreamClosed, /*response_started=*/false);
    return false;
  }
  return true;
}

void ClientConnection::OnUpstreamReady(Exchange&) {
  // A failed write ends the exchange, or starts a retry on a new connection that is not
  // connected yet: then nothing more goes out now.
  // Then the body bytes that waited for the connection, and any not parsed yet.
  if (!SendRequestHead() || !ForwardUnsent()) return;
  ProcessPending();
  UpdateReading();
}

bool ClientConnection::ReadBody(const BlockRef& block, size_t& offset, size_t& length) {
  work_->body_spans.clear();
  http1::RequestParser::Result result =
      work_->parser.ParseBody(block.data() + offset, length, h2c_ ? &work_->body_spans : nullptr);
  size_t used = result.used;
  if (result.outcome == http1::RequestParser::Outcome::kError) {
    // A broken chunked body. If part of the message already went upstream, that connection is
    // out of step for good: it closes.
    exchange_.DropUpstream();
    SendError(ProxyError::kBadRequest);
    return false;
  }
  if (exchange_.upstream_ready() && h2c_) {
    for (const auto& span : work_->body_spans) {
      if (!ForwardBody(block, offset + span.offset, span.length)) break;
    }
  } else if (exchange_.upstream_ready()) {
    ForwardBody(block, offset, used);
  } else if (used > 0) {
    exchange_.HoldBody(block, offset, used);
  }
  offset += used;
  length -= used;
  if (state_ != State::kProxying) return false;
  if (result.outcome == http1::RequestParser::Outcome::kMessageComplete) OnRequestComplete();
  return state_ == State::kProxying && length > 0;
}

bool ClientConnection::ForwardBody(const BlockRef& block, size_t offset, size_t length) {
  if (exchange_.ForwardBody(block, offset, length) != 0) {
    FailUpstream(ProxyError::kUpstreamClosed, exchange_.upstream->response_started());
    return false;
  }
  return true;
}

bool ClientConnection::ForwardUnsent() {
  if (exchange_.ForwardHeldBody() != 0) {
    FailUpstream(ProxyError::kUpstreamClosed, exchange_.upstream->response_started());
    return false;
  }
  return true;
}

void ClientConnection::OnRequestComplete() {
  exchange_.EndRequest();
  MaybeFinishExchange();
}

void ClientConnection::Stash(BlockRef block, size_t offset, size_t length) {
  pending_ = std::move(block);
  pending_offset_ = offset;
  pending_length_ = length;
}

void ClientConnection::ProcessPending() {
  if (!pending_) return;
  BlockRef block = std::move(pending_);
  ProcessInput(std::move(block), pending_offset_, pending_length_);
}

Exchange::Owner::HeadVerdict ClientConnection::OnHead(Exchange&, const ResponseHead& head) {
  using http1::ResponseConnection;
  using http1::ResponseFraming;
  NoteActivity();
  int status = head.status;
  if (status < 200 && status != 101) {
    // Interim (100 Continue, 103 Early Hints): passed on, except to HTTP/1.0 clients, which
    // cannot take them (RFC 9110 15.2).
    if (!exchange_.http10) {
      http1::WriteResponseHead(*head.fields,
                               {status, ResponseFraming::kAsIs, ResponseConnection::kKeepAlive},
                               work_->response_head);
      if (WriteToClient(&work_->response_head, nullptr, 0, BlockRef()) != 0)
        return HeadVerdict::kStop;
    }
    return HeadVerdict::kForward;
  }
  if (status == 101 && !exchange_.upgrade) {
    return HeadVerdict::kRefuse;  // nobody asked for a tunnel
  }
  exchange_.status = status;
  bool chunked = head.chunked;
  bool has_body = !work_->parser.head_request() && status != 204 && status != 304 && status != 101;
  if (status == 101) {
    StartLongLived(head.fields && ListHasToken(head.fields->Find("upgrade"), "websocket")
                       ? LongLivedKind::kWebSocket
                       : LongLivedKind::kOtherUpgrade);
  }
  // An event stream without a length is followed event by event, so that a drain can end it
  // between two: lameduck takes its data (chunked here for an HTTP/1.1 client).
  bool event_stream = has_body && status >= 200 && status < 300 && !head.content_length &&
                      proxy_.options().drain_sse == LongLivedDrain::kClose && head.fields &&
                      IsEventStream(head.fields->Find("content-type"));
  if (event_stream) StartLongLived(LongLivedKind::kSse);
  // An h2c app's body is data without framing: without a length, an HTTP/1.1 client gets it
  // chunked (its trailers in the last chunk), an HTTP/1.0 one close-delimited.
  chunk_response_ = (h2c_ || event_stream) && has_body && !head.content_length && !exchange_.http10;
  chunk_open_ = false;
  bool close_delimited = has_body && !chunked && !head.content_length && !chunk_response_;
  ResponseFraming framing = chunk_response_                           ? ResponseFraming::kChunk
                            : exchange_.http10 && chunked && has_body ? ResponseFraming::kDechunk
                                                                      : ResponseFraming::kAsIs;
  // Close after this response when: the client or the drain asks; the request is still coming
  // (an early answer); or only the close can end the body. An upgrade the app declined (it
  // answered and ignored the Upgrade, RFC 9110 7.8) leaves the connection HTTP/1.1: it stays.
  exchange_.close_after = exchange_.close_after || drain_close_ ||
                          proxy_.close_after_each_response() ||
                          exchange_.request != Exchange::RequestState::kComplete ||
                          close_delimited || framing == ResponseFraming::kDechunk;
  ResponseConnection connection = status == 101           ? ResponseConnection::kUpgrade
                                  : exchange_.close_after ? ResponseConnection::kClose
                                  : exchange_.http10      ? ResponseConnection::kKeepAliveHttp10
                                                          : ResponseConnection::kKeepAlive;
  http1::WriteResponseHead(*head.fields, {status, framing, connection}, work_->response_head);
  // Held back so that the head and the first body bytes, usually in the same upstream read,
  // leave in one write.
  SetResponseState(Exchange::ResponseState::kHeadHeld);
  return framing == ResponseFraming::kDechunk || event_stream ? HeadVerdict::kDataOnly
                                                              : HeadVerdict::kForward;
}

Exchange::Owner::Verdict ClientConnection::OnBody(Exchange&, const uv_buf_t* bufs, size_t count,
                                                  const BlockRef& block) {
  if (long_lived_ == nullptr || long_lived_->kind != LongLivedKind::kSse) {
    return WriteBody(bufs, count, block);
  }
  // An event stream: followed event by event; once the drain asked, it ends at the first
  // boundary, and what the app sent after it is not sent on.
  LongLived& events = *long_lived_;
  auto mode = events.ending ? SseEvents::Mode::kStopAtBoundary : SseEvents::Mode::kAll;
  for (size_t i = 0; i < count; ++i) {
    size_t n = events.events.Follow(bufs[i].base, bufs[i].len, mode);
    if (!events.ending || !events.events.at_boundary()) continue;
    if (WriteBody(bufs, i, block) == Verdict::kStop) return Verdict::kStop;
    uv_buf_t part = uv_buf_init(bufs[i].base, static_cast<unsigned>(n));
    if (n > 0 && WriteBody(&part, 1, block) == Verdict::kStop) return Verdict::kStop;
    EndEventStream();
    return Verdict::kStop;
  }
  return WriteBody(bufs, count, block);
}

Exchange::Owner::Verdict ClientConnection::WriteBody(const uv_buf_t* bufs, size_t count,
                                                     const BlockRef& block) {
  // De-chunked reads can hold many spans; a write takes a bounded number.
  constexpr size_t kMaxSpansPerWrite = 32;
  for (size_t i = 0; i < count && state_ != State::kClosing; i += kMaxSpansPerWrite) {
    size_t n = std::min(kMaxSpansPerWrite, count - i);
    bool with_head = exchange_.response == Exchange::ResponseState::kHeadHeld;
    if (with_head) SetResponseState(Exchange::ResponseState::kStreaming);
    bool framed = false;
    if (chunk_response_) {
      size_t bytes = 0;
      for (size_t j = i; j < i + n; ++j) bytes += bufs[j].len;
      if (bytes == 0 && !with_head) continue;  // an empty chunk would end the body
      if (bytes > 0) {
        if (!with_head) work_->response_head.clear();
        http1::AppendChunkHead(work_->response_head, bytes, chunk_open_);
        chunk_open_ = true;
        framed = true;
      }
    }
    WriteToClient(with_head || framed ? &work_->response_head : nullptr, bufs + i, n, block);
  }
  // A failed write to the client closed it, and with it the upstream: stop there.
  return exchange_.upstream != nullptr ? Verdict::kContinue : Verdict::kStop;
}

void ClientConnection::OnReadDone(Exchange&) {
  NoteActivity();
  if (long_lived_ != nullptr && long_lived_->kind == LongLivedKind::kSse && long_lived_->ending &&
      long_lived_->events.at_boundary()) {
    EndEventStream();  // it began after the drain's spread: a head, and no event yet
    return;
  }
  FlushResponseHead();
}

void ClientConnection::FlushResponseHead() {
  if (exchange_.response != Exchange::ResponseState::kHeadHeld) return;
  SetResponseState(Exchange::ResponseState::kStreaming);
  WriteToClient(&work_->response_head, nullptr, 0, BlockRef());
}

void ClientConnection::OnEnd(Exchange&) {
  FinishLongLived(LongLivedEnd::kByPeer);  // an event stream the app ended
  if (chunk_response_) EndChunkedBody(nullptr);
  FlushResponseHead();
  if (state_ == State::kClosing) return;
  SetResponseState(Exchange::ResponseState::kComplete);
  proxy_.events().OnResponseComplete(exchange_.status, Protocol::kHttp1);
  MaybeFinishExchange();
}

void ClientConnection::OnUpgraded(Exchange& exchange, const BlockRef& block, size_t offset,
                                  size_t length) {
  FlushResponseHead();
  if (state_ == State::kClosing) return;
  if (length > 0) {
    OnTunnelData(exchange, block, offset, length);  // bytes the app sent after its 101
    if (state_ == State::kClosing) return;
  }
  StartTunnel();
}

void ClientConnection::OnTrailers(Exchange&, const HeadCollector& trailers) {
  // HTTP/2 trailers end the stream: they go in the last chunk now. Only a chunked body has a
  // place for them; with a Content-Length they are dropped.
  if (chunk_response_) EndChunkedBody(&trailers);
}

void ClientConnection::EndChunkedBody(const HeadCollector* trailers) {
  if (exchange_.response != Exchange::ResponseState::kHeadHeld) work_->response_head.clear();
  http1::AppendLastChunk(work_->response_head, trailers, chunk_open_);
  chunk_response_ = false;
  SetResponseState(Exchange::ResponseState::kStreaming);
  WriteToClient(&work_->response_head, nullptr, 0, BlockRef());
}

void ClientConnection::OnUpstreamError(Exchange&, ProxyError error, bool response_started) {
  RecoverFromUpstreamFailure(error, response_started);
}

void ClientConnection::FailUpstream(ProxyError error, bool response_started) {
  exchange_.DropUpstream();
  RecoverFromUpstreamFailure(error, response_started);
}

void ClientConnection::RecoverFromUpstreamFailure(ProxyError error, bool response_started) {
  if (state_ == State::kProxying &&
      exchange_.MayRetry(error, work_->parser.idempotent(), response_started)) {
    // A reused connection the app had closed: send the request once more on a fresh one.
    if (AttachUpstream(UpstreamSource::kNew)) UpdateReading();
    return;
  }
  SendError(error);
}

void ClientConnection::OnUpstreamWritable(Exchange&) {
  NoteActivity();
  UpdateReading();
}

void ClientConnection::MaybeFinishExchange() {
  if (state_ != State::kProxying || exchange_.response != Exchange::ResponseState::kComplete) {
    return;
  }
  if (exchange_.request == Exchange::RequestState::kComplete) {
    FinishExchange();
  } else {
    Linger();  // answered early (a 413, say): the rest of the body is read and dropped
  }
}

void ClientConnection::FinishExchange() {
  if (exchange_.close_after || drain_close_ || proxy_.close_after_each_response()) {
    if (ClientPromisedNoMore()) {
      // As nginx does: the client said this was its last request, sent nothing after it, and
      // the response is already in the kernel. A close sends the FIN after it; the shutdown,
      // the wait and the read of the client's FIN that lingering costs buy nothing here.
      Close();
      return;
    }
    Linger();
    return;
  }
  SetState(State::kIdle);
  exchange_.request = Exchange::RequestState::kBody;
  SetResponseState(Exchange::ResponseState::kAwaitingHead);
  ReleaseWork();  // the next request's first byte takes one again
  ArmTimer(proxy_.options().idle_timeout.count());
  ProcessPending();  // a pipelined request waits here
  UpdateReading();
}

void ClientConnection::StartTunnel() {
  ReleaseWork();  // raw bytes from here on
  SetState(State::kTunnel);
  SetResponseState(Exchange::ResponseState::kComplete);
  proxy_.events().OnResponseComplete(101, Protocol::kHttp1);
  if (client_eof_) {
    // The client half-closed before the 101. A shutdown that fails at once reports it at once,
    // and that closes this connection (and its upstream): nothing more to do then.
    exchange_.upstream->ShutdownWrite();
    if (state_ == State::kClosing) return;
  }
  ArmTimer(proxy_.options().idle_timeout.count());
  ProcessPending();  // bytes the client sent after its upgrade request belong to the tunnel
  UpdateReading();
  if (state_ == State::kTunnel && long_lived_ != nullptr && long_lived_->ending &&
      long_lived_->frames.at_boundary()) {
    SendGoingAway();  // asked to end before the 101 was out (or after the spread): now
  }
}

void ClientConnection::OnTunnelData(Exchange&, const BlockRef& block, size_t offset,
                                    size_t length) {
  NoteActivity();
  const char* data = block.data() + offset;
  bool going_away = false;
  if (long_lived_ != nullptr && long_lived_->kind == LongLivedKind::kWebSocket) {
    LongLived& socket = *long_lived_;
    if (socket.ended) return;  // after lameduck's Close, nothing more goes to the client
    if (!socket.frames.broken()) {
      auto mode =
          socket.ending ? WebSocketFrames::Mode::kStopAtBoundary : WebSocketFrames::Mode::kAll;
      size_t n = socket.frames.Follow(data, length, mode);
      if (socket.ending && socket.frames.at_boundary() && !socket.frames.saw_close()) {
        length = n;  // the rest is the app's, after the end of the message in flight
        going_away = true;
      } else if (n < length) {
        socket.frames.Follow(data + n, length - n);  // the app closes itself: all goes on
      }
    }
  }
  if (length > 0) {
    uv_buf_t buf = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(length));
    if (WriteToClient(nullptr, &buf, 1, block) != 0) return;
  }
  if (going_away) SendGoingAway();
}

void ClientConnection::OnTunnelEof(Exchange&) {
  socket_.Shutdown();  // pass the half-close on, after what is queued for the client
}

void ClientConnection::OnTunnelShutdown(Exchange&, int status) {
  if (status != 0) {
    Close();
    return;
  }
  upstream_shutdown_done_ = true;
  MaybeEndTunnel();
}

void ClientConnection::MaybeEndTunnel() {
  // Both directions saw their FIN and everything queued before it was written: nothing is
  // left to lose by closing.
  if (state_ == State::kTunnel && shutdown_done_ && upstream_shutdown_done_) Close();
}

void ClientConnection::SendError(ProxyError error) {
  if (state_ == State::kLingering || state_ == State::kClosing) return;
  proxy_.events().OnProxyError(error);
  if (exchange_.response != Exchange::ResponseState::kAwaitingHead || state_ == State::kTunnel) {
    Abort();  // mid-response: the client must see it incomplete, never a clean end
    return;
  }
  exchange_.DropUpstream();
  exchange_.status = StatusFor(error);
  http1::WriteErrorResponse(exchange_.status, work_->response_head);
  SetResponseState(Exchange::ResponseState::kComplete);
  exchange_.close_after = true;
  proxy_.events().OnResponseComplete(exchange_.status, Protocol::kHttp1);
  if (WriteToClient(&work_->response_head, nullptr, 0, BlockRef()) != 0) return;
  Linger();
}

void ClientConnection::StartLongLived(LongLivedKind kind) {
  long_lived_ = std::make_unique<LongLived>(kind);
  proxy_.NoteLongLived(kind, +1);
  // Begun after the drain's spread acted on every one: it is ended at its first boundary.
  if (proxy_.end_long_lived_at_once() && Endable()) {
    drain_close_ = true;
    long_lived_->ending = true;
  }
}

bool ClientConnection::Endable() const {
  if (long_lived_ == nullptr || long_lived_->ended) return false;
  switch (long_lived_->kind) {
    case LongLivedKind::kWebSocket:
      return proxy_.options().drain_websocket == LongLivedDrain::kClose &&
             !long_lived_->frames.broken() && !long_lived_->frames.saw_close();
    case LongLivedKind::kSse:
      return proxy_.options().drain_sse == LongLivedDrain::kClose;
    case LongLivedKind::kGrpcStream:
    case LongLivedKind::kOtherUpgrade:
      return false;  // raw bytes: no boundary to end them at
  }
  return false;
}

bool ClientConnection::AwaitsDrainClose() const {
  if (drain_close_) return false;
  return state_ == State::kIdle || (Endable() && !long_lived_->ending);
}

bool ClientConnection::DrainClose() {
  if (long_lived_ == nullptr) return CloseIfIdle();
  drain_close_ = true;
  EndLongLived();
  return false;
}

void ClientConnection::EndLongLived() {
  if (!Endable() || long_lived_->ending) return;
  LongLived& exchange = *long_lived_;
  exchange.ending = true;
  if (exchange.kind == LongLivedKind::kWebSocket) {
    // Before StartTunnel (the 101's head not out yet) it waits for the tunnel to start.
    if (state_ == State::kTunnel && exchange.frames.at_boundary()) SendGoingAway();
  } else if (exchange.kind == LongLivedKind::kSse) {
    if (state_ == State::kProxying && exchange.events.at_boundary()) EndEventStream();
  }
}

void ClientConnection::SendGoingAway() {
  LongLived& socket = *long_lived_;
  socket.ending = false;
  socket.ended = true;
  socket.ended_ms = uv_now(proxy_.loop());
  std::string frame = WebSocketFrames::CloseFrame(kGoingAway, kGoingAwayReason);
  if (WriteToClient(&frame, nullptr, 0, BlockRef()) != 0) return;
  // The client answers with its Close, which goes on to the app; the app answers it and closes,
  // and the FINs end the tunnel as any other. Bounded: OnDeadline closes it after kLingerMs.
  ArmTimer(std::min<uint64_t>(kLingerMs, proxy_.options().idle_timeout.count()));
}

void ClientConnection::EndEventStream() {
  long_lived_->ended = true;
  FinishLongLived(LongLivedEnd::kClean);
  exchange_.close_after = true;
  // The last chunk (or, close-delimited, the close that follows) ends the body after a whole
  // event: EventSource reconnects, with Last-Event-ID. The app's side is let go: its connection
  // closes, as when a client goes away.
  if (chunk_response_) {
    EndChunkedBody(nullptr);
  } else {
    FlushResponseHead();
  }
  if (state_ == State::kClosing) return;
  exchange_.DropUpstream();
  SetResponseState(Exchange::ResponseState::kComplete);
  proxy_.events().OnResponseComplete(exchange_.status, Protocol::kHttp1);
  MaybeFinishExchange();
}

void ClientConnection::FinishLongLived(LongLivedEnd how) {
  if (long_lived_ == nullptr) return;
  LongLivedKind kind = long_lived_->kind;
  long_lived_clean_ = how == LongLivedEnd::kClean;
  long_lived_.reset();
  proxy_.NoteLongLived(kind, -1);
  proxy_.events().OnLongLivedEnded(kind, how);
}

bool ClientConnection::ClientPromisedNoMore() const {
  // Not when lameduck chose to close (a drain, say): the client may have sent its next request
  // already, and unread input turns a close into a reset that can destroy the response.
  return work_ != nullptr && !work_->parser.keep_alive() && !exchange_.upgrade &&
         pending_length_ == 0 && socket_.writes_pending() == 0 && socket_.write_queue_bytes() == 0;
}

void ClientConnection::Linger() {
  if (state_ == State::kLingering || state_ == State::kClosing) return;
  exchange_.DropUpstream();
  SetState(State::kLingering);
  pending_.Reset();
  exchange_.unsent.Reset();
  // Shut the write side once the response is out, then read until the client's FIN: closing
  // with unread input would make the kernel send a reset, and the client could lose the
  // response it has not read yet. Until the shutdown completes, the response is still being
  // written: a stalled reader gets --idle-timeout, as any stalled transfer.
  ArmTimer(proxy_.options().idle_timeout.count());
  UpdateReading();
  socket_.Shutdown();  // last: done at once if nothing is queued, and that may close
}

void ClientConnection::OnSocketShutdown(int status) {
  if (state_ == State::kClosing) return;
  if (status != 0) {
    Close();
    return;
  }
  SetShutdownDone();
  if (state_ == State::kTunnel) {
    MaybeEndTunnel();
  } else if (state_ == State::kLingering) {
    if (client_eof_) {
      Close();
    } else {
      ArmTimer(std::min<uint64_t>(kLingerMs, proxy_.options().idle_timeout.count()));
      proxy_.events().OnConnectionFinished();
    }
  }
}

// A reset, not a FIN: a response cut short must not look whole to the client (a close-delimited
// body would), and a stalled or vanished client has nothing left to read.
void ClientConnection::Abort() { Close(CloseMode::kReset); }

void ClientConnection::ForceClose() {
  forced_ = true;
  Close();
}

void ClientConnection::Close(CloseMode mode) {
  if (state_ == State::kClosing || state_ == State::kHandedOver) return;
  if (long_lived_ != nullptr) {
    FinishLongLived(forced_              ? LongLivedEnd::kForced
                    : long_lived_->ended ? LongLivedEnd::kClean
                                         : LongLivedEnd::kByPeer);
  }
  end_ = EndNow();
  SetState(State::kClosing);
  pending_.Reset();
  exchange_.unsent.Reset();
  proxy_.deadlines().Stop(*this);
  exchange_.DropUpstream();
  socket_.Close(mode);
}

void ClientConnection::OnSocketClosed() { proxy_.Remove(*this); }

bool ClientConnection::CloseIfIdle() {
  if (state_ == State::kReadingHead) {
    drain_close_ = true;  // a request is arriving: serve it, then close
    return false;
  }
  if (state_ != State::kIdle) return false;
  if (fresh_) {
    uint64_t age = uv_now(proxy_.loop()) - accepted_ms_;
    uint64_t header_timeout = proxy_.options().header_timeout.count();
    if (age < kFirstRequestGraceMs && age < header_timeout) {
      drain_close_ = true;  // its request, if it comes, is served with Connection: close
      // Then OnDeadline closes it as below; never later than its header timeout would have.
      ArmTimer(std::min(kFirstRequestGraceMs, header_timeout) - age);
      return false;
    }
  }
  // Read before closing: a request may already be in the socket's buffer, not yet seen.
  char byte;
  ssize_t n = recv(socket_.fd(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) {
    drain_close_ = true;  // the loop delivers it next; it is served with Connection: close
    return false;
  }
  idle_close_ = true;
  if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
    Close();  // the client already closed, or the socket failed: nothing to say
  } else {
    Linger();
  }
  return true;
}

int ClientConnection::WriteToClient(std::string* head, const uv_buf_t* bufs, size_t count,
                                    const BlockRef& block) {
  int rc = socket_.Write(head, bufs, static_cast<unsigned>(count), block.Share());
  if (rc != 0) {
    Abort();
    return rc;
  }
  if (exchange_.upstream != nullptr && socket_.write_queue_bytes() > kHighWaterBytes) {
    exchange_.upstream->PauseReading();
  }
  return 0;
}

void ClientConnection::OnSocketWritten(int status) {
  if (state_ == State::kClosing) return;
  if (status != 0) {
    Abort();  // the client is gone
    return;
  }
  NoteActivity();
  if (exchange_.upstream != nullptr && socket_.write_queue_bytes() < kLowWaterBytes) {
    exchange_.upstream->ResumeReading();
  }
}

void ClientConnection::UpdateReading() {
  bool want = false;
  switch (state_) {
    case State::kIdle:
    case State::kReadingHead:
    case State::kLingering:
      want = !pending_ && !client_eof_;
      break;
    case State::kProxying:
      if (exchange_.request == Exchange::RequestState::kComplete) {
        // Reading on costs nothing (no epoll change per request) and notices a client that
        // goes away; a pipelined request that arrives is stashed, and reading stops.
        want = !pending_ && !client_eof_;
      } else {
        want = !pending_ && !exchange_.unsent && exchange_.upstream_ready() &&
               !Congested(exchange_.upstream->write_queue_bytes(), socket_.reading());
      }
      break;
    case State::kTunnel:
      want = !client_eof_ && exchange_.upstream != nullptr &&
             !Congested(exchange_.upstream->write_queue_bytes(), socket_.reading());
      break;
    case State::kClosing:
    case State::kHandedOver:
      break;
  }
  if (want) {
    socket_.StartReading();
  } else {
    socket_.StopReading();
  }
}

}  // namespace lameduck::proxy
