#include "proxy/http2_stream.h"

#include <charconv>
#include <cstring>

#include "proxy/http2/fields.h"
#include "proxy/http2_client_session.h"
#include "proxy/proxy.h"
#include "proxy/upstream_connection.h"

namespace lameduck::proxy {
namespace {

// As ClientConnection's: a side stops reading when what it forwarded is queued beyond the
// high-water mark at the other side, and resumes below the low-water mark.
constexpr size_t kHighWaterBytes = 256 * 1024;
constexpr size_t kLowWaterBytes = 64 * 1024;
// A refused stream is sent again only if its body so far fits here (a gRPC call's usually does).
constexpr size_t kReplayBytes = 64 * 1024;
// gRPC's UNAVAILABLE: "the service is currently unavailable", which clients treat as retryable.
constexpr std::string_view kGrpcUnavailable = "14";
constexpr std::string_view kGrpcShuttingDown = "lameduck: the server is shutting down";

}  // namespace

Http2Stream::Http2Stream(Http2ClientSession& session) : session_(session) {}

void Http2Stream::Begin(int32_t id) {
  id_ = id;
  head_.Reset();
  method_.clear();
  authority_.clear();
  host_.clear();
  cookie_.clear();
  trailers_.Reset();
  head_bytes_ = 0;
  has_content_length_ = false;
  h2c_ = session_.proxy().options().upstream_protocol != UpstreamProtocol::kHttp1;
  grpc_ = false;
  chunked_ = false;
  chunk_written_ = false;
  end_stream_ = false;
  request_done_ = false;
  request_body_.Clear();
  replay_.Clear();
  unconsumed_ = 0;
  response_body_.Clear();
  response_trailers_.Clear();
  head_submitted_ = false;
  response_eof_ = false;
  response_sent_ = false;
  deferred_ = false;
  upstream_paused_ = false;
  follow_ = Follow::kNone;
  events_ = SseEvents();
  messages_ = GrpcMessages();
  long_lived_ = false;
  ending_ = false;
  ended_ = false;
  exchange_.Begin(/*http10=*/false, /*upgrade=*/false, /*close_after=*/false);
}

void Http2Stream::OnField(std::string_view name, std::string_view value) {
  head_bytes_ += name.size() + value.size() + 32;
  if (head_bytes_ > session_.proxy().options().max_header_bytes) return;  // 431 at the end
  if (!name.empty() && name[0] == ':') {
    if (name == ":method") {
      method_ = value;
    } else if (name == ":path") {
      head_.AppendTarget(value.data(), value.size());
    } else if (name == ":authority") {
      authority_ = value;
    }
    return;  // :scheme: the app is reached over plain HTTP whatever the client said
  }
  if (name == "cookie") {
    if (!cookie_.empty()) cookie_.append("; ");
    cookie_.append(value);
    return;
  }
  if (name == "host") host_ = value;
  if (name == "content-length") has_content_length_ = true;
  head_.AppendField(name.data(), name.size());
  head_.AppendValue(value.data(), value.size());
}

void Http2Stream::OnTrailer(std::string_view name, std::string_view value) {
  head_bytes_ += name.size() + value.size() + 32;
  if (head_bytes_ > session_.proxy().options().max_header_bytes) return;
  trailers_.AppendField(name.data(), name.size());
  trailers_.AppendValue(value.data(), value.size());
}

void Http2Stream::OnHeadEnd(bool end_stream) {
  end_stream_ = end_stream;
  grpc_ = http2::IsGrpc(head_.Find("content-type"));
  if (head_bytes_ > session_.proxy().options().max_header_bytes) {
    SendError(ProxyError::kHeadTooLarge);
    return;
  }
  if (method_ == "CONNECT") {
    SendError(ProxyError::kMethodNotAllowed);
    return;
  }
  // RFC 9113 8.3.1: a Host that names another authority than :authority is malformed.
  if (!host_.empty() && !authority_.empty() && !EqualsIgnoreCase(host_, authority_)) {
    SendError(ProxyError::kBadRequest);
    return;
  }
  if (host_.empty() && !authority_.empty()) {
    head_.AppendField("host", 4);
    head_.AppendValue(authority_.data(), authority_.size());
  }
  if (!cookie_.empty()) {
    head_.AppendField("cookie", 6);
    head_.AppendValue(cookie_.data(), cookie_.size());
  }
  if (!end_stream && !has_content_length_ && !h2c_) {
    // HTTP/1 needs the body's length up front, or chunks: HTTP/2 has neither.
    chunked_ = true;
    head_.AppendField("transfer-encoding", 17);
    head_.AppendValue("chunked", 7);
  }
  if (end_stream) {
    request_done_ = true;
    exchange_.request = Exchange::RequestState::kComplete;
  }
  exchange_.body_replayable = true;  // until the body outgrows kReplayBytes
  AttachUpstream(UpstreamSource::kPoolOrNew);
}

void Http2Stream::AttachUpstream(UpstreamSource source) {
  Upstream* upstream = session_.proxy().TakeUpstream(h2c_, source == UpstreamSource::kNew);
  if (upstream == nullptr) {
    SendError(ProxyError::kUpstreamConnect);
    return;
  }
  exchange_.Attach(*upstream, method_ == "HEAD", /*retry=*/source == UpstreamSource::kNew);
  if (exchange_.upstream_ready()) OnUpstreamReady(exchange_);  // a pooled one is ready at once
}

void Http2Stream::OnUpstreamReady(Exchange&) {
  http1::RequestRewrite rewrite;
  rewrite.method = method_;
  rewrite.client_ip = session_.client_ip();
  rewrite.default_host = session_.proxy().upstream_host();
  if (exchange_.SendHead(head_, rewrite) != 0) {
    Fail(ProxyError::kUpstreamClosed);
    return;
  }
  if (!ForwardQueued()) return;
  if (end_stream_ && !request_done_) FinishRequest();
  MaybeConsume();
}

bool Http2Stream::ForwardQueued() {
  while (!request_body_.empty()) {
    const SpanQueue::Span& span = request_body_.front();
    size_t length = span.length;
    if (!Forward(span.block, span.offset, length)) return false;
    request_body_.Consume(length);
  }
  return true;
}

bool Http2Stream::Forward(const BlockRef& block, size_t offset, size_t length) {
  int rc;
  if (chunked_) {
    scratch_.clear();
    http1::AppendChunkHead(scratch_, length, chunk_written_);
    chunk_written_ = true;
    uv_buf_t buf = uv_buf_init(block.data() + offset, static_cast<unsigned>(length));
    rc = exchange_.upstream->Write(&scratch_, &buf, 1, block.Share());
    if (rc == 0) exchange_.body_bytes_forwarded += length;
  } else {
    rc = exchange_.ForwardBody(block, offset, length);
  }
  if (rc != 0) {
    Fail(ProxyError::kUpstreamClosed);
    return false;
  }
  if (exchange_.body_replayable) {
    if (replay_.bytes() + length <= kReplayBytes) {
      replay_.Push(block, offset, length);
    } else {
      exchange_.body_replayable = false;
      replay_.Clear();
    }
  }
  return true;
}

// The last chunk (with the client's trailers, which HTTP/1 carries only there) and the end.
bool Http2Stream::FinishRequest() {
  request_done_ = true;
  if (chunked_) {
    scratch_.clear();
    http1::AppendLastChunk(scratch_, &trailers_, chunk_written_);
    if (exchange_.upstream->Write(&scratch_, nullptr, 0, BlockRef()) != 0) {
      Fail(ProxyError::kUpstreamClosed);
      return false;
    }
  }
  exchange_.EndRequest(h2c_ && trailers_.field_count() > 0 ? &trailers_ : nullptr);
  return true;
}

void Http2Stream::OnData(const BlockRef& block, const uint8_t* data, size_t length) {
  unconsumed_ += length;
  if (request_done_ || exchange_.response == Exchange::ResponseState::kComplete) {
    MaybeConsume();  // answered already: the rest of the body is dropped
    return;
  }
  auto offset = static_cast<size_t>(reinterpret_cast<const char*>(data) - block.data());
  if (exchange_.upstream_ready() && request_body_.empty()) {
    if (!Forward(block, offset, length)) return;
  } else {
    request_body_.Push(block, offset, length);
  }
  MaybeConsume();
}

void Http2Stream::OnRequestEnd() {
  end_stream_ = true;
  if (request_done_) return;
  if (exchange_.upstream_ready() && request_body_.empty()) FinishRequest();
}

// Window given back once the bytes are on their way to the app (or dropped): a slow app holds
// the client's window closed instead of its bytes piling up here.
void Http2Stream::MaybeConsume() {
  if (unconsumed_ == 0) return;
  bool dropping = exchange_.response == Exchange::ResponseState::kComplete ||
                  (request_done_ && exchange_.upstream == nullptr);
  if (!dropping) {
    if (!exchange_.upstream_ready() || !request_body_.empty()) return;
    if (exchange_.upstream->write_queue_bytes() > kHighWaterBytes) return;
  }
  session_.Consume(id_, unconsumed_);
  unconsumed_ = 0;
}

void Http2Stream::OnUpstreamWritable(Exchange&) {
  session_.NoteActivity();
  if (exchange_.upstream != nullptr && exchange_.upstream->write_queue_bytes() < kLowWaterBytes) {
    MaybeConsume();
  }
}

Exchange::Owner::HeadVerdict Http2Stream::OnHead(Exchange&, const ResponseHead& head) {
  session_.NoteActivity();
  if (head.status == 101) return HeadVerdict::kRefuse;  // never asked for
  if (!head.interim()) replay_.Clear();  // the app took the request: no retry from here on
  http2::FieldList& fields = session_.proxy().h2_fields();
  http2::ResponseFields(*head.fields, head.status, fields);
  if (head.interim()) {
    nghttp2_submit_headers(session_.nghttp2(), NGHTTP2_FLAG_NONE, id_, nullptr, fields.data(),
                           fields.size(), nullptr);
    session_.ScheduleFlush();
    return HeadVerdict::kForward;
  }
  exchange_.status = head.status;
  bool has_body = method_ != "HEAD" && head.status != 204 && head.status != 304 && !head.end_stream;
  SubmitResponse(fields.data(), fields.size(), has_body);
  if (has_body && head.status >= 200 && head.status < 300 && head.fields != nullptr) {
    if (grpc_) {
      follow_ = Follow::kGrpc;  // long-lived once a second message shows it is a stream
    } else if (IsEventStream(head.fields->Find("content-type")) &&
               session_.proxy().options().drain_sse == LongLivedDrain::kClose) {
      follow_ = Follow::kSse;
      StartLongLived(LongLivedKind::kSse);
    }
  }
  return HeadVerdict::kDataOnly;  // HTTP/2 frames the body itself
}

void Http2Stream::SubmitResponse(const nghttp2_nv* fields, size_t count, bool with_body) {
  nghttp2_data_provider provider;
  provider.source.ptr = this;
  provider.read_callback = [](nghttp2_session*, int32_t, uint8_t*, size_t length, uint32_t* flags,
                              nghttp2_data_source* source, void*) -> ssize_t {
    return static_cast<Http2Stream*>(source->ptr)->ReadResponse(length, flags);
  };
  nghttp2_submit_response(session_.nghttp2(), id_, fields, count, with_body ? &provider : nullptr);
  head_submitted_ = true;
  exchange_.response = Exchange::ResponseState::kStreaming;
  session_.ScheduleFlush();
}

Exchange::Owner::Verdict Http2Stream::OnBody(Exchange&, const uv_buf_t* bufs, size_t count,
                                             const BlockRef& block) {
  session_.NoteActivity();
  for (size_t i = 0; i < count; ++i) {
    size_t length = bufs[i].len;
    bool at_end = false;
    if (follow_ != Follow::kNone) {
      auto mode = ending_ ? SseEvents::Mode::kStopAtBoundary : SseEvents::Mode::kAll;
      if (follow_ == Follow::kSse) {
        length = events_.Follow(bufs[i].base, length, mode);
        at_end = ending_ && events_.at_boundary();
      } else {
        length = messages_.Follow(bufs[i].base, length, mode);
        if (!long_lived_ && messages_.messages() >= 2) StartLongLived(LongLivedKind::kGrpcStream);
        at_end = ending_ && messages_.at_boundary();
      }
    }
    if (length > 0) {
      response_body_.Push(block, static_cast<size_t>(bufs[i].base - block.data()), length);
    }
    if (at_end) {
      EndAtBoundary();
      return Verdict::kStop;
    }
  }
  if (response_body_.bytes() > kHighWaterBytes && !upstream_paused_) {
    upstream_paused_ = true;
    exchange_.upstream->PauseReading();  // a slow client: the app waits, not our memory
  }
  ResumeData();
  return Verdict::kContinue;
}

void Http2Stream::ResumeData() {
  if (deferred_) {
    deferred_ = false;
    nghttp2_session_resume_data(session_.nghttp2(), id_);
  }
  session_.ScheduleFlush();
}

void Http2Stream::OnReadDone(Exchange&) {
  // Marked to end before any event came (StartLongLived): the app's read is over, so now.
  if (ending_ && AtBoundary()) EndAtBoundary();
}

void Http2Stream::OnEnd(Exchange&) {
  FinishLongLived(LongLivedEnd::kByPeer);  // the app ended it
  response_eof_ = true;
  ResumeData();
}

ssize_t Http2Stream::ReadResponse(size_t max_length, uint32_t* flags) {
  if (response_body_.empty()) {
    if (!response_eof_) {
      deferred_ = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (response_trailers_.size() > 0) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      nghttp2_submit_trailer(session_.nghttp2(), id_, response_trailers_.data(),
                             response_trailers_.size());
    }
    return 0;
  }
  size_t length = std::min(max_length, response_body_.front().length);
  *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  if (response_eof_ && length == response_body_.bytes() && response_trailers_.size() == 0) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
  }
  return static_cast<ssize_t>(length);
}

int Http2Stream::SendData(const uint8_t* frame_head, size_t length) {
  if (int rc = session_.WriteData(frame_head, response_body_.front(), length); rc != 0) return rc;
  response_body_.Consume(length);
  if (upstream_paused_ && response_body_.bytes() < kLowWaterBytes) {
    upstream_paused_ = false;
    if (exchange_.upstream != nullptr) exchange_.upstream->ResumeReading();
  }
  return 0;
}

void Http2Stream::OnResponseSent() {
  response_sent_ = true;
  exchange_.response = Exchange::ResponseState::kComplete;
  session_.proxy().events().OnResponseComplete(exchange_.status, Protocol::kHttp2);
  if (!end_stream_) {
    // Answered before the request ended (RFC 9113 8.1): the client may stop sending.
    nghttp2_submit_rst_stream(session_.nghttp2(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_NO_ERROR);
  }
}

void Http2Stream::OnClosed(uint32_t) {
  FinishLongLived(LongLivedEnd::kByPeer);  // the client reset it
  // A reset from the client, or the end: an upstream still attached is out of step (it would
  // go on reporting into a recycled stream), so it goes.
  exchange_.DropUpstream();
  session_.Consume(0, unconsumed_);  // the stream's bytes still count in the connection window
  unconsumed_ = 0;
  request_body_.Clear();
  response_body_.Clear();
  head_.Release();  // a stream on the free list holds no head storage
  trailers_.Release();
}

bool Http2Stream::Reset() {
  if (response_sent_) return false;
  FinishLongLived(LongLivedEnd::kForced);
  exchange_.DropUpstream();
  nghttp2_submit_rst_stream(session_.nghttp2(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_INTERNAL_ERROR);
  return true;
}

void Http2Stream::OnUpstreamError(Exchange&, ProxyError error, bool response_started) {
  if (exchange_.MayRetry(error, Idempotent(), response_started)) {
    // A pooled connection the app had closed, or a stream it refused: once more, on a new
    // connection, with the body sent so far.
    SpanQueue again;
    replay_.ForEach([&](const SpanQueue::Span& s) { again.Push(s.block, s.offset, s.length); });
    request_body_.ForEach(
        [&](const SpanQueue::Span& s) { again.Push(s.block, s.offset, s.length); });
    std::swap(request_body_, again);
    replay_.Clear();
    exchange_.body_bytes_forwarded = 0;
    if (!request_body_.empty()) {
      // The body goes again before the request's end does.
      exchange_.request = Exchange::RequestState::kBody;
      request_done_ = false;
    }
    chunk_written_ = false;
    AttachUpstream(UpstreamSource::kNew);
    return;
  }
  SendError(error);
}

void Http2Stream::StartLongLived(LongLivedKind kind) {
  long_lived_ = true;
  kind_ = kind;
  session_.proxy().NoteLongLived(kind, +1);
  // Begun after the drain's spread acted on every one: it ends at its first boundary. Only
  // marked here (this runs inside the upstream's report, which must not lose its upstream):
  // OnBody or OnReadDone ends it.
  if (session_.proxy().end_long_lived_at_once() && Endable()) ending_ = true;
}

bool Http2Stream::Endable() const {
  if (!long_lived_ || ended_ || response_eof_) return false;
  if (kind_ == LongLivedKind::kSse) {
    return session_.proxy().options().drain_sse == LongLivedDrain::kClose;
  }
  return kind_ == LongLivedKind::kGrpcStream &&
         session_.proxy().options().drain_grpc == LongLivedDrain::kClose;
}

bool Http2Stream::AwaitsDrainClose() const { return Endable() && !ending_; }

void Http2Stream::EndLongLived() {
  if (!Endable() || ending_) return;
  ending_ = true;
  if (AtBoundary()) {
    EndAtBoundary();
    session_.ScheduleFlush();
  }
}

void Http2Stream::EndAtBoundary() {
  ended_ = true;
  ending_ = false;
  FinishLongLived(LongLivedEnd::kClean);
  exchange_.DropUpstream();  // an h2c app's stream is cancelled; an HTTP/1 app's connection goes
  if (follow_ == Follow::kGrpc) {
    response_trailers_.Clear();
    response_trailers_.Add("grpc-status", kGrpcUnavailable);
    response_trailers_.Add("grpc-message", kGrpcShuttingDown);
  }
  response_eof_ = true;  // after what is queued: END_STREAM, or the trailers with it
  ResumeData();
}

void Http2Stream::FinishLongLived(LongLivedEnd how) {
  if (!long_lived_) return;
  long_lived_ = false;
  session_.proxy().NoteLongLived(kind_, -1);
  session_.proxy().events().OnLongLivedEnded(kind_, how);
}

void Http2Stream::OnTrailers(Exchange&, const HeadCollector& trailers) {
  http2::TrailerFields(trailers, response_trailers_);
}

void Http2Stream::OnUpstreamReset(Exchange& exchange, uint32_t code, bool response_started) {
  if (head_submitted_) {
    // Mid-response: the client's stream is reset with the app's own code.
    request_done_ = true;
    nghttp2_submit_rst_stream(session_.nghttp2(), NGHTTP2_FLAG_NONE, id_, code);
    session_.ScheduleFlush();
    session_.proxy().events().OnProxyError(ProxyError::kUpstreamReset);
    return;
  }
  OnUpstreamError(exchange, ProxyError::kUpstreamReset, response_started);
}

void Http2Stream::Fail(ProxyError error) {
  bool started = exchange_.upstream != nullptr && exchange_.upstream->response_started();
  exchange_.DropUpstream();
  OnUpstreamError(exchange_, error, started);
}

bool Http2Stream::Idempotent() const {
  return method_ == "GET" || method_ == "HEAD" || method_ == "OPTIONS" || method_ == "TRACE" ||
         method_ == "PUT" || method_ == "DELETE";
}

void Http2Stream::SendError(ProxyError error) {
  Proxy& proxy = session_.proxy();
  proxy.events().OnProxyError(error);
  exchange_.DropUpstream();
  request_done_ = true;  // whatever else the client sends is dropped
  MaybeConsume();
  if (head_submitted_) {
    // Mid-response: the client must see it cut short, never a clean end.
    nghttp2_submit_rst_stream(session_.nghttp2(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_INTERNAL_ERROR);
    session_.ScheduleFlush();
    return;
  }
  http2::FieldList& fields = proxy.h2_fields();
  response_eof_ = true;
  if (grpc_) {
    exchange_.status = 200;
    http2::GrpcErrorFields(error, proxy.GrpcMessage(error), fields);
    SubmitResponse(fields.data(), fields.size(), /*with_body=*/false);
    return;
  }
  exchange_.status = StatusFor(error);
  std::string_view reason = ReasonPhrase(exchange_.status);
  BlockRef block = proxy.buffers().Acquire();
  std::memcpy(block.data(), reason.data(), reason.size());
  block.data()[reason.size()] = '\n';
  response_body_.Push(block, 0, reason.size() + 1);
  http2::ErrorFields(exchange_.status, reason.size() + 1, fields);
  SubmitResponse(fields.data(), fields.size(), /*with_body=*/true);
}

void Http2Stream::OnUpgraded(Exchange&, const BlockRef&, size_t, size_t) {
  SendError(ProxyError::kUpstreamBadResponse);  // refused in OnHead: cannot happen
}
void Http2Stream::OnTunnelData(Exchange&, const BlockRef&, size_t, size_t) {}
void Http2Stream::OnTunnelEof(Exchange&) {}
void Http2Stream::OnTunnelShutdown(Exchange&, int) {}

}  // namespace lameduck::proxy
