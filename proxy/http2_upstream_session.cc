#include "proxy/http2_upstream_session.h"

#include <algorithm>
#include <charconv>

#include "proxy/proxy.h"

namespace lameduck::proxy {
namespace {

// Until the app's SETTINGS say otherwise (RFC 9113 leaves it unlimited; nghttp2's default is
// 100, as most servers').
constexpr uint32_t kAssumedMaxConcurrentStreams = 100;
constexpr int32_t kStreamWindow = 1 << 20;
constexpr int32_t kConnectionWindow = 16 << 20;
constexpr size_t kHighWaterBytes = 256 * 1024;

Http2UpstreamSession* Self(void* user_data) {
  return static_cast<Http2UpstreamSession*>(user_data);
}

ssize_t OnSend(nghttp2_session*, const uint8_t* data, size_t length, int, void* user_data) {
  Self(user_data)->Append(data, length);
  return static_cast<ssize_t>(length);
}

int OnSendData(nghttp2_session*, nghttp2_frame*, const uint8_t* frame_head, size_t length,
               nghttp2_data_source* source, void*) {
  return static_cast<Http2UpstreamStream*>(source->ptr)->SendData(frame_head, length);
}

int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t name_length,
             const uint8_t* value, size_t value_length, uint8_t, void* user_data) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  Http2UpstreamStream* stream = Self(user_data)->Find(frame->hd.stream_id);
  if (stream == nullptr) return 0;
  stream->OnResponseField({reinterpret_cast<const char*>(name), name_length},
                          {reinterpret_cast<const char*>(value), value_length},
                          frame->headers.cat == NGHTTP2_HCAT_HEADERS);
  return 0;
}

int OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  Self(user_data)->OnFrame(*frame);
  return 0;
}

int OnDataChunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data, size_t length,
                void* user_data) {
  Self(user_data)->OnData(stream_id, data, length);
  return 0;
}

int OnStreamClosed(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user_data) {
  Self(user_data)->OnStreamClose(stream_id, error_code);
  return 0;
}

int OnFrameNotSend(nghttp2_session*, const nghttp2_frame* frame, int, void* user_data) {
  Self(user_data)->OnFrameNotSent(*frame);
  return 0;
}

struct Setup {
  nghttp2_session_callbacks* callbacks = nullptr;
  nghttp2_option* option = nullptr;
  Setup() {
    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_send_callback(callbacks, OnSend);
    nghttp2_session_callbacks_set_send_data_callback(callbacks, OnSendData);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, OnHeader);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, OnFrameRecv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, OnDataChunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, OnStreamClosed);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(callbacks, OnFrameNotSend);
    nghttp2_option_new(&option);
    nghttp2_option_set_no_auto_window_update(option, 1);
    nghttp2_option_set_peer_max_concurrent_streams(option, kAssumedMaxConcurrentStreams);
    nghttp2_option_set_max_outbound_ack(option, 1000);
    nghttp2_option_set_max_settings(option, 32);
  }
  ~Setup() {
    nghttp2_session_callbacks_del(callbacks);
    nghttp2_option_del(option);
  }
};

const Setup& SharedSetup() {
  static const Setup setup;
  return setup;
}

}  // namespace

// ---- the stream ----

Http2UpstreamStream::Http2UpstreamStream(Http2UpstreamSession& session) : session_(session) {
  timer_.Init(session.proxy().loop(), uv_timer_init, this);
  head_.fields = &fields_;
}

void Http2UpstreamStream::Begin() {
  receiver_ = nullptr;
  id_ = -1;
  open_ = false;
  head_request_ = false;
  head_seen_ = false;
  ended_ = false;
  status_ = 0;
  fields_.Reset();
  request_.Clear();
  request_eof_ = false;
  deferred_ = false;
  trailers_.Clear();
  paused_ = false;
  unconsumed_ = 0;
  response_bytes_ = 0;
}

void Http2UpstreamStream::Attach(ResponseReceiver& receiver, bool head_request) {
  receiver_ = &receiver;
  head_request_ = head_request;
}

bool Http2UpstreamStream::ready() const {
  return session_.state() == Http2UpstreamSession::State::kReady ||
         session_.state() == Http2UpstreamSession::State::kRetiring;
}

void Http2UpstreamStream::OnSessionReady() {
  if (receiver_ != nullptr && id_ < 0) receiver_->OnUpstreamReady();
}

int Http2UpstreamStream::WriteRequestHead(const HeadCollector& head,
                                          const http1::RequestRewrite& rewrite, bool complete) {
  http2::FieldList& fields = session_.fields();
  http2::RequestFields(head, rewrite.method, rewrite.client_ip, rewrite.default_host, fields);
  nghttp2_data_provider provider;
  provider.source.ptr = this;
  provider.read_callback = [](nghttp2_session*, int32_t, uint8_t*, size_t length, uint32_t* flags,
                              nghttp2_data_source* source, void*) -> ssize_t {
    return static_cast<Http2UpstreamStream*>(source->ptr)->ReadRequest(length, flags);
  };
  int32_t id = nghttp2_submit_request(session_.nghttp2(), nullptr, fields.data(), fields.size(),
                                      complete ? nullptr : &provider, this);
  if (id < 0) return UV_ECONNRESET;  // no stream ids left on this connection
  id_ = id;
  open_ = true;
  request_eof_ = complete;
  session_.ScheduleFlush();
  return 0;
}

int Http2UpstreamStream::Write(std::string* head, const uv_buf_t* bufs, unsigned count,
                               BlockRef block) {
  if (head != nullptr) head->clear();  // HTTP/2 frames the body itself
  for (unsigned i = 0; i < count; ++i) {
    request_.Push(block, static_cast<size_t>(bufs[i].base - block.data()), bufs[i].len);
  }
  Resume();
  return 0;
}

void Http2UpstreamStream::EndRequest(const HeadCollector* trailers) {
  if (trailers != nullptr) http2::TrailerFields(*trailers, trailers_);
  if (!request_eof_) {
    request_eof_ = true;
    Resume();
  }
  if (!head_seen_) {
    uv_timer_start(timer_.get(), &Http2UpstreamStream::OnTimer,
                   session_.proxy().options().upstream_timeout.count(), 0);
  }
}

void Http2UpstreamStream::Resume() {
  if (deferred_ && open_) {
    deferred_ = false;
    nghttp2_session_resume_data(session_.nghttp2(), id_);
  }
  session_.ScheduleFlush();
}

ssize_t Http2UpstreamStream::ReadRequest(size_t max_length, uint32_t* flags) {
  if (request_.empty()) {
    if (!request_eof_) {
      deferred_ = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (trailers_.size() > 0) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      nghttp2_submit_trailer(session_.nghttp2(), id_, trailers_.data(), trailers_.size());
    }
    return 0;
  }
  size_t length = std::min(max_length, request_.front().length);
  *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  if (request_eof_ && length == request_.bytes() && trailers_.size() == 0) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
  }
  return static_cast<ssize_t>(length);
}

int Http2UpstreamStream::SendData(const uint8_t* frame_head, size_t length) {
  if (int rc = session_.WriteData(frame_head, request_.front(), length); rc != 0) return rc;
  request_.Consume(length);
  if (receiver_ != nullptr) receiver_->OnUpstreamWritable();
  return 0;
}

void Http2UpstreamStream::PauseReading() { paused_ = true; }

void Http2UpstreamStream::ResumeReading() {
  paused_ = false;
  if (unconsumed_ > 0 && open_) session_.ConsumeStream(id_, unconsumed_);
  unconsumed_ = 0;
}

void Http2UpstreamStream::OnResponseField(std::string_view name, std::string_view value,
                                          bool trailer) {
  if (name == ":status") {
    std::from_chars(value.data(), value.data() + value.size(), status_);
    return;
  }
  if (!trailer && fields_.field_count() == 0 && fields_.bytes() == 0) {
    // A new head: the reason phrase (target) stays empty; the HTTP/1 writer supplies one.
  }
  fields_.AppendField(name.data(), name.size());
  fields_.AppendValue(value.data(), value.size());
}

void Http2UpstreamStream::OnResponseHeaders(bool trailer, bool end_stream) {
  if (ended_ || receiver_ == nullptr) {
    fields_.Reset();
    return;
  }
  if (trailer) {
    receiver_->OnTrailers(fields_);
    fields_.Reset();
    if (receiver_ != nullptr && end_stream) OnResponseEnd();
    return;
  }
  head_.status = status_;
  head_.chunked = false;
  head_.content_length = !fields_.Find("content-length").empty();
  head_.end_stream = end_stream;
  bool interim = head_.interim();
  if (!interim) {
    head_seen_ = true;
    uv_timer_stop(timer_.get());
  }
  ResponseReceiver::HeadVerdict verdict = receiver_->OnHead(head_);
  fields_.Reset();
  status_ = 0;
  if (verdict == ResponseReceiver::HeadVerdict::kStop) return;
  if (verdict == ResponseReceiver::HeadVerdict::kRefuse) {
    Report(ProxyError::kUpstreamBadResponse, 0);
    Close();
    return;
  }
  if (end_stream && !interim) OnResponseEnd();
}

void Http2UpstreamStream::OnResponseData(const BlockRef& block, const uint8_t* data,
                                         size_t length) {
  response_bytes_ += length;
  if (paused_) {
    unconsumed_ += length;
  } else {
    session_.ConsumeStream(id_, length);
  }
  if (receiver_ == nullptr || ended_) return;
  uv_buf_t buf = uv_buf_init(const_cast<char*>(reinterpret_cast<const char*>(data)),
                             static_cast<unsigned>(length));
  (void)receiver_->OnBody(&buf, 1, block);
}

void Http2UpstreamStream::OnResponseEnd() {
  if (ended_) return;
  ended_ = true;
  uv_timer_stop(timer_.get());
  ResponseReceiver* receiver = receiver_;
  receiver_ = nullptr;
  if (!request_eof_ && open_) {
    // The app answered before the request ended: it wants no more of it.
    nghttp2_submit_rst_stream(session_.nghttp2(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_NO_ERROR);
    session_.ScheduleFlush();
  }
  if (receiver != nullptr) receiver->OnEnd();
  MaybeRelease();
}

void Http2UpstreamStream::Report(ProxyError error, uint32_t code) {
  if (ended_) return;
  ended_ = true;
  uv_timer_stop(timer_.get());
  ResponseReceiver* receiver = receiver_;
  receiver_ = nullptr;
  if (receiver == nullptr) return;
  if (error == ProxyError::kUpstreamReset) {
    receiver->OnUpstreamReset(code, response_started());
  } else {
    receiver->OnUpstreamError(error, response_started());
  }
}

void Http2UpstreamStream::OnClosed(uint32_t error_code) {
  open_ = false;
  if (!ended_) {
    if (error_code == NGHTTP2_REFUSED_STREAM) {
      Report(ProxyError::kUpstreamRefused, error_code);
    } else if (error_code != NGHTTP2_NO_ERROR) {
      Report(ProxyError::kUpstreamReset, error_code);
    } else {
      Report(ProxyError::kUpstreamClosed, error_code);  // closed without a whole response
    }
  }
  MaybeRelease();
}

void Http2UpstreamStream::Fail(ProxyError error) {
  open_ = false;
  Report(error, 0);
  MaybeRelease();
}

void Http2UpstreamStream::Close() {
  receiver_ = nullptr;
  ended_ = true;
  uv_timer_stop(timer_.get());
  if (open_) {
    nghttp2_submit_rst_stream(session_.nghttp2(), NGHTTP2_FLAG_NONE, id_, NGHTTP2_CANCEL);
    session_.ScheduleFlush();
  }
  MaybeRelease();
}

void Http2UpstreamStream::MaybeRelease() {
  if (!in_use || open_ || receiver_ != nullptr || !ended_) return;
  request_.Clear();
  session_.Release(*this);
}

void Http2UpstreamStream::OnTimer(uv_timer_t* timer) {
  auto* self = static_cast<Http2UpstreamStream*>(timer->data);
  if (self == nullptr) return;
  ResponseReceiver* receiver = self->receiver_;
  self->receiver_ = nullptr;
  self->Close();  // reset: the app may still be working on it, and must stop
  if (receiver != nullptr) receiver->OnUpstreamError(ProxyError::kUpstreamTimeout, false);
}

// ---- the session ----

Http2UpstreamSession::Http2UpstreamSession(Proxy& proxy)
    : proxy_(proxy), socket_(*this, proxy.buffers(), proxy.write_reqs()) {}

Http2UpstreamSession::~Http2UpstreamSession() = default;

int Http2UpstreamSession::Connect() {
  uv_loop_t* loop = proxy_.loop();
  if (int rc = socket_.Init(loop, proxy_.options().upstream.kind); rc != 0) return rc;
  int rc = timer_.Init(loop, uv_timer_init, this);
  if (rc == 0)
    rc = flush_.Init(
        loop, [](void* self) { static_cast<Http2UpstreamSession*>(self)->Flush(); }, this);
  nghttp2_session* session = nullptr;
  if (rc == 0) {
    const Setup& setup = SharedSetup();
    rc = nghttp2_session_client_new2(&session, setup.callbacks, this, setup.option) == 0
             ? 0
             : UV_ENOMEM;
  }
  if (rc == 0) {
    session_.reset(session);
    rc = socket_.Connect(proxy_.options().upstream);
  }
  if (rc != 0) {
    Close();
    return rc;
  }
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kStreamWindow},
  };
  nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
  uv_timer_start(timer_.get(), &Http2UpstreamSession::OnTimer,
                 proxy_.options().connect_timeout.count(), 0);
  return 0;
}

void Http2UpstreamSession::OnSocketConnected(int status) {
  if (state_ != State::kConnecting) return;
  uv_timer_stop(timer_.get());
  if (status != 0) {
    FailAll(ProxyError::kUpstreamConnect);
    Close();
    return;
  }
  state_ = State::kReady;
  if (proxy_.options().upstream.kind == Address::Kind::kTcp) {
    uv_tcp_nodelay(reinterpret_cast<uv_tcp_t*>(socket_.stream()), 1);
  }
  socket_.StartReading();
  ScheduleFlush();  // the preface and SETTINGS
  for (auto& stream : streams_) {
    if (stream->in_use) stream->OnSessionReady();
  }
}

bool Http2UpstreamSession::HasRoom() const {
  if (state_ != State::kConnecting && state_ != State::kReady) return false;
  if (!session_ || nghttp2_session_check_request_allowed(session_.get()) == 0) return false;
  uint32_t limit =
      nghttp2_session_get_remote_settings(session_.get(), NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  return active_ < std::min(limit, kAssumedMaxConcurrentStreams * 10);
}

Http2UpstreamStream* Http2UpstreamSession::TakeStream() {
  Http2UpstreamStream* stream = free_;
  if (stream != nullptr) {
    free_ = stream->next_free;
  } else {
    streams_.push_back(std::make_unique<Http2UpstreamStream>(*this));
    stream = streams_.back().get();
  }
  stream->Begin();
  stream->in_use = true;
  ++active_;
  uv_timer_stop(timer_.get());  // the idle clock, if it ran
  return stream;
}

void Http2UpstreamSession::Release(Http2UpstreamStream& stream) {
  stream.in_use = false;
  stream.next_free = free_;
  free_ = &stream;
  --active_;
  if (active_ > 0 || state_ == State::kClosing) return;
  if (state_ == State::kRetiring) {
    MaybeClose();
  } else if (state_ == State::kReady) {
    uv_timer_start(timer_.get(), &Http2UpstreamSession::OnTimer,
                   proxy_.options().idle_timeout.count(), 0);
  }
}

Http2UpstreamStream* Http2UpstreamSession::Find(int32_t stream_id) {
  // Each stream was submitted with itself as nghttp2's stream data; stream objects live as long
  // as their session, and one recycled for a later request has another id.
  auto* stream = static_cast<Http2UpstreamStream*>(
      nghttp2_session_get_stream_user_data(session_.get(), stream_id));
  return stream != nullptr && stream->in_use && stream->id() == stream_id ? stream : nullptr;
}

void Http2UpstreamSession::ScheduleFlush() {
  if (state_ != State::kClosing) flush_.Schedule();
}

void Http2UpstreamSession::Flush() {
  if (state_ == State::kClosing || state_ == State::kConnecting || !session_) return;
  if (socket_.write_queue_bytes() > kHighWaterBytes) {
    write_blocked_ = true;
    return;
  }
  write_blocked_ = false;
  int rc = nghttp2_session_send(session_.get());
  if (state_ == State::kClosing) return;
  if (!out_.empty() && socket_.Write(&out_, nullptr, 0, BlockRef()) != 0) rc = -1;
  if (rc != 0) {
    FailAll(ProxyError::kUpstreamClosed);
    Close();
    return;
  }
  MaybeClose();
}

int Http2UpstreamSession::WriteData(const uint8_t* frame_head, const SpanQueue::Span& span,
                                    size_t length) {
  if (WriteDataFrame(socket_, out_, frame_head, span, length) != 0) {
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

void Http2UpstreamSession::ConsumeStream(int32_t id, size_t length) {
  if (!session_ || length == 0) return;
  nghttp2_session_consume_stream(session_.get(), id, length);
  ScheduleFlush();
}

void Http2UpstreamSession::OnSocketRead(ssize_t nread, BlockRef block) {
  if (state_ == State::kClosing) return;
  if (nread < 0) {
    // Streams the app never saw are refused (retried); the rest failed mid-way.
    FailAll(ProxyError::kUpstreamClosed);
    Close();
    return;
  }
  input_ = &block;
  ssize_t rc = nghttp2_session_mem_recv(session_.get(), reinterpret_cast<uint8_t*>(block.data()),
                                        static_cast<size_t>(nread));
  input_ = nullptr;
  if (state_ == State::kClosing) return;
  if (rc < 0) {
    FailAll(ProxyError::kUpstreamBadResponse);
    Close();
    return;
  }
  ScheduleFlush();
}

void Http2UpstreamSession::OnData(int32_t stream_id, const uint8_t* data, size_t length) {
  nghttp2_session_consume_connection(session_.get(), length);
  Http2UpstreamStream* stream = Find(stream_id);
  if (stream == nullptr || input_ == nullptr) return;
  stream->OnResponseData(*input_, data, length);
}

void Http2UpstreamSession::OnFrame(const nghttp2_frame& frame) {
  switch (frame.hd.type) {
    case NGHTTP2_HEADERS: {
      Http2UpstreamStream* stream = Find(frame.hd.stream_id);
      if (stream == nullptr) return;
      stream->OnResponseHeaders(frame.headers.cat == NGHTTP2_HCAT_HEADERS,
                                (frame.hd.flags & NGHTTP2_FLAG_END_STREAM) != 0);
      return;
    }
    case NGHTTP2_DATA:
      if ((frame.hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
        if (Http2UpstreamStream* stream = Find(frame.hd.stream_id)) stream->OnResponseEnd();
      }
      return;
    case NGHTTP2_GOAWAY:
      // Streams above its last id are closed by nghttp2 as refused: they are retried elsewhere.
      if (state_ == State::kReady) state_ = State::kRetiring;
      return;
    default:
      return;
  }
}

void Http2UpstreamSession::OnStreamClose(int32_t stream_id, uint32_t error_code) {
  if (Http2UpstreamStream* stream = Find(stream_id)) stream->OnClosed(error_code);
}

void Http2UpstreamSession::OnFrameNotSent(const nghttp2_frame& frame) {
  // A request that never left (the app's GOAWAY came first): the app never saw it.
  if (frame.hd.type != NGHTTP2_HEADERS) return;
  if (Http2UpstreamStream* stream = Find(frame.hd.stream_id)) {
    if (stream->open()) stream->OnClosed(NGHTTP2_REFUSED_STREAM);
  }
}

void Http2UpstreamSession::OnSocketWritten(int status) {
  if (state_ == State::kClosing) return;
  if (status != 0) {
    FailAll(ProxyError::kUpstreamClosed);
    Close();
    return;
  }
  if (write_blocked_ && socket_.write_queue_bytes() <= kHighWaterBytes) ScheduleFlush();
}

void Http2UpstreamSession::FailAll(ProxyError error) {
  for (auto& stream : streams_) {
    if (!stream->in_use) continue;
    // A stream whose HEADERS never went out cannot have been seen: refused, retried.
    stream->Fail(stream->open() || error == ProxyError::kUpstreamConnect
                     ? error
                     : ProxyError::kUpstreamRefused);
  }
}

void Http2UpstreamSession::Retire() {
  if (state_ == State::kReady || state_ == State::kConnecting) state_ = State::kRetiring;
  if (active_ == 0) MaybeClose();
}

void Http2UpstreamSession::MaybeClose() {
  if (state_ != State::kRetiring || active_ > 0) return;
  if (session_ && nghttp2_session_want_write(session_.get()) == 0) {
    nghttp2_submit_goaway(session_.get(), NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(session_.get()), NGHTTP2_NO_ERROR,
                          nullptr, 0);
    nghttp2_session_send(session_.get());
    if (!out_.empty()) socket_.Write(&out_, nullptr, 0, BlockRef());
    Close();
  } else {
    ScheduleFlush();
  }
}

void Http2UpstreamSession::OnTimer(uv_timer_t* timer) {
  auto* self = static_cast<Http2UpstreamSession*>(timer->data);
  if (self == nullptr) return;
  if (self->state_ == State::kConnecting) {
    self->FailAll(ProxyError::kUpstreamConnect);
    self->Close();
    return;
  }
  if (self->active_ == 0) self->Retire();  // idle for --idle-timeout
}

void Http2UpstreamSession::Close() {
  if (state_ == State::kClosing) return;
  state_ = State::kClosing;
  timer_.Close();
  flush_.Close();
  socket_.Close();
}

void Http2UpstreamSession::OnSocketClosed() {
  // Streams still in use belong to exchanges that hold them: failed already (FailAll), they
  // are detached by now or will be; the memory goes with the session, so tell them first.
  FailAll(ProxyError::kUpstreamClosed);
  proxy_.Remove(*this);
}

}  // namespace lameduck::proxy
