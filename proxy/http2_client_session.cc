#include "proxy/http2_client_session.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>

#include "proxy/http2_stream.h"
#include "proxy/proxy.h"

namespace lameduck::proxy {
namespace {

// What the client may open at once (SETTINGS_MAX_CONCURRENT_STREAMS), and the windows it gets:
// a stream's 64 KiB and the connection's 1 MiB bound what one connection's uploads hold here.
constexpr uint32_t kMaxConcurrentStreams = 100;
constexpr int32_t kConnectionWindow = 1 << 20;
// Writes stop being framed while the socket holds more than this, and resume below it.
constexpr size_t kHighWaterBytes = 256 * 1024;
// The drain's PING: its ACK, or this long, ends the first phase.
constexpr uint64_t kFinalGoawayMs = 1000;
constexpr uint64_t kLingerMs = 5000;
// As ClientConnection's: how long a connection accepted during the drain has to send its first
// request before it is told to go.
constexpr uint64_t kFirstRequestGraceMs = 1000;
// Rapid reset (CVE-2023-44487): a client may cancel this many streams it opened at once, and
// this many more per second; beyond, it is an attack on the app (each stream reached it) and the
// connection ends with GOAWAY ENHANCE_YOUR_CALM.
constexpr double kResetBurst = 200;
constexpr double kResetsPerSecond = 100;
constexpr uint8_t kDrainPing[8] = {'l', 'a', 'm', 'e', 'd', 'u', 'c', 'k'};

Http2ClientSession* Self(void* user_data) { return static_cast<Http2ClientSession*>(user_data); }

Http2Stream* StreamOf(nghttp2_session* session, int32_t stream_id) {
  return static_cast<Http2Stream*>(nghttp2_session_get_stream_user_data(session, stream_id));
}

ssize_t OnSend(nghttp2_session*, const uint8_t* data, size_t length, int, void* user_data) {
  Self(user_data)->Append(data, length);
  return static_cast<ssize_t>(length);
}

int OnSendData(nghttp2_session*, nghttp2_frame*, const uint8_t* frame_head, size_t length,
               nghttp2_data_source* source, void*) {
  return static_cast<Http2Stream*>(source->ptr)->SendData(frame_head, length);
}

int OnBeginFrame(nghttp2_session*, const nghttp2_frame_hd* hd, void* user_data) {
  Self(user_data)->OnBeginFrame(*hd);
  return 0;
}

int OnBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  Http2Stream* stream = Self(user_data)->OnBeginRequest(frame->hd.stream_id);
  nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, stream);
  return 0;
}

int OnHeader(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name,
             size_t name_length, const uint8_t* value, size_t value_length, uint8_t, void*) {
  Http2Stream* stream = StreamOf(session, frame->hd.stream_id);
  if (stream == nullptr || frame->hd.type != NGHTTP2_HEADERS) return 0;
  std::string_view n(reinterpret_cast<const char*>(name), name_length);
  std::string_view v(reinterpret_cast<const char*>(value), value_length);
  if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    stream->OnField(n, v);
  } else {
    stream->OnTrailer(n, v);
  }
  return 0;
}

// A field nghttp2 finds invalid but would pass over in silence (a bad character in a name or a
// value): RFC 9113 8.2.1 makes the request malformed, a stream error.
int OnInvalidHeader(nghttp2_session*, const nghttp2_frame*, const uint8_t*, size_t, const uint8_t*,
                    size_t, uint8_t, void*) {
  return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

int OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  Self(user_data)->OnFrame(*frame);
  return 0;
}

int OnFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
  Self(user_data)->OnFrameSent(*frame);
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

// Built once: every session shares the callbacks and the options.
struct Setup {
  nghttp2_session_callbacks* callbacks = nullptr;
  nghttp2_option* option = nullptr;
  Setup() {
    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_send_callback(callbacks, OnSend);
    nghttp2_session_callbacks_set_send_data_callback(callbacks, OnSendData);
    nghttp2_session_callbacks_set_on_begin_frame_callback(callbacks, OnBeginFrame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, OnBeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, OnHeader);
    nghttp2_session_callbacks_set_on_invalid_header_callback(callbacks, OnInvalidHeader);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, OnFrameRecv);
    nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, OnFrameSend);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, OnDataChunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, OnStreamClosed);
    nghttp2_option_new(&option);
    // Windows are given back as the app takes the bytes (Http2Stream), not as they arrive.
    nghttp2_option_set_no_auto_window_update(option, 1);
    // Floods (RFC 9113 10.5): PINGs and SETTINGS whose ACKs pile up unread, SETTINGS frames
    // with many entries, a HEADERS with endless CONTINUATIONs: nghttp2 ends the connection.
    nghttp2_option_set_max_outbound_ack(option, 1000);
    nghttp2_option_set_max_settings(option, 32);
    nghttp2_option_set_max_continuations(option, 8);
    // Rapid reset: our own limit (Http2ClientSession::kResetBurst) answers ENHANCE_YOUR_CALM
    // first; nghttp2's, looser, stays as a backstop.
    nghttp2_option_set_stream_reset_rate_limit(option, 1000, 100);
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

Http2ClientSession::Http2ClientSession(Proxy& proxy)
    : proxy_(proxy), socket_(*this, proxy.buffers(), proxy.write_reqs()) {}

Http2ClientSession::~Http2ClientSession() = default;

int Http2ClientSession::Open(int fd, Address::Kind kind, std::string_view client_ip) {
  if (int rc = socket_.Init(proxy_.loop(), kind); rc != 0) return rc;
  client_ip_ = client_ip;
  Recount();  // from here on the Proxy erases it only in Remove, which uncounts it
  int rc = socket_.Open(fd);
  if (rc != 0) close(fd);  // not adopted: closed here, as the socket will not
  if (rc == 0) rc = timer_.Init(proxy_.loop(), uv_timer_init, this);
  if (rc == 0)
    rc = flush_.Init(
        proxy_.loop(), [](void* self) { static_cast<Http2ClientSession*>(self)->Flush(); }, this);
  nghttp2_session* session = nullptr;
  if (rc == 0) {
    const Setup& setup = SharedSetup();
    rc = nghttp2_session_server_new2(&session, setup.callbacks, this, setup.option) == 0
             ? 0
             : UV_ENOMEM;
  }
  if (rc != 0) {
    Close();
    return 0;
  }
  session_.reset(session);
  if (kind == Address::Kind::kTcp) uv_tcp_nodelay(reinterpret_cast<uv_tcp_t*>(socket_.stream()), 1);
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, kMaxConcurrentStreams},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
       static_cast<uint32_t>(proxy_.options().max_header_bytes)},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
  };
  nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
  NoteActivity();
  reset_tokens_ = kResetBurst;
  reset_refilled_ms_ = last_activity_ms_;
  ArmTimer(proxy_.options().idle_timeout.count());
  socket_.StartReading();
  if (proxy_.close_after_each_response()) {
    // Accepted during the drain's accept grace: the client connected to send something, and a
    // GOAWAY before it could would fail calls a gRPC client had queued for this connection. Its
    // first stream is served, and the GOAWAY follows it (or kFirstRequestGraceMs of silence).
    shutdown_deferred_ = true;
    ArmTimer(kFirstRequestGraceMs);
  }
  ScheduleFlush();
  return 0;
}

void Http2ClientSession::Recount() {
  ProxyCounts now;
  if (state_ == State::kClosing && counted_.finishing > 0) {
    now.finishing = 1;  // served in full before: closing does not make it owe anything
  } else if (state_ == State::kClosing) {
    now.connections = 1;  // until the Proxy removes it, as a closing HTTP/1 connection
  } else {
    bool finishing = state_ == State::kLingering && shutdown_done_;
    (finishing ? now.finishing : now.connections) = 1;
    if (!finishing) now.http2_connections = 1;
    now.in_flight = open_streams_;
    now.http2_streams = open_streams_;
    if (open_streams_ == 0 && (state_ == State::kActive || state_ == State::kNoticeSent)) {
      now.idle = 1;
    }
  }
  // Its last stream served and its FIN out: it owes nothing from here on.
  if (counted_.connections > 0 && now.finishing > 0) ++proxy_.tally().ended_by(EndNow());
  proxy_.MoveCounts(counted_, now);
  counted_ = now;
}

ConnectionEnd Http2ClientSession::EndNow() const {
  if (forced_) return ConnectionEnd::kForced;
  if (idle_close_) return ConnectionEnd::kIdle;
  if (state_ == State::kLingering) return ConnectionEnd::kAfterResponse;
  return ConnectionEnd::kByClient;
}

void Http2ClientSession::TallyStreamEnd(const Http2Stream& stream) {
  ProxyTally& tally = proxy_.tally();
  if (stream.response_done()) {
    ++(state_ == State::kActive ? tally.completed : tally.completed_close);
  } else if (forced_) {
    ++tally.requests_forced;
  } else {
    ++tally.aborted;
  }
}

void Http2ClientSession::NoteActivity() { last_activity_ms_ = uv_now(proxy_.loop()); }

void Http2ClientSession::ArmTimer(uint64_t timeout_ms) {
  if (header_block_since_ms_ != 0) {
    // A header block is open: its deadline comes first if it is sooner.
    uint64_t open_ms = uv_now(proxy_.loop()) - header_block_since_ms_;
    uint64_t limit = proxy_.options().header_timeout.count();
    timeout_ms = std::min(timeout_ms, open_ms < limit ? limit - open_ms : 0);
  }
  if (timer_) uv_timer_start(timer_.get(), &Http2ClientSession::OnTimer, timeout_ms, 0);
}

bool Http2ClientSession::HeaderBlockTimedOut() {
  if (header_block_since_ms_ == 0 || !session_ ||
      (state_ != State::kActive && state_ != State::kNoticeSent && state_ != State::kGoawaySent)) {
    return false;
  }
  uint64_t open_ms = uv_now(proxy_.loop()) - header_block_since_ms_;
  if (open_ms < static_cast<uint64_t>(proxy_.options().header_timeout.count())) return false;
  // As an HTTP/1 head that does not end in time (408 there): the connection ends with a GOAWAY
  // (the unfinished stream is above its last stream id: the client knows it was not processed);
  // streams it had open are cut with it.
  header_block_since_ms_ = 0;
  proxy_.events().OnProxyError(ProxyError::kHeaderTimeout);
  nghttp2_session_terminate_session(session_.get(), NGHTTP2_NO_ERROR);
  Flush();
  return true;
}

void Http2ClientSession::OnTimer(uv_timer_t* timer) {
  auto* self = static_cast<Http2ClientSession*>(timer->data);
  if (self == nullptr || self->HeaderBlockTimedOut()) return;
  uint64_t idle_limit = self->proxy_.options().idle_timeout.count();
  switch (self->state_) {
    case State::kNoticeSent:
      self->SendFinalGoaway();  // no ACK in time: a client that does not answer PINGs
      return;
    case State::kActive:
      if (self->shutdown_deferred_) {
        self->StartShutdown();  // silent since it was accepted during the drain
        return;
      }
      [[fallthrough]];
    case State::kGoawaySent: {
      uint64_t idle = uv_now(self->proxy_.loop()) - self->last_activity_ms_;
      if (idle < idle_limit) {
        self->ArmTimer(idle_limit - idle);
        return;
      }
      if (self->open_streams_ > 0) {
        self->proxy_.events().OnProxyError(ProxyError::kStalled);
        self->Close(CloseMode::kReset);
        return;
      }
      // Idle for --idle-timeout: say goodbye properly, then close.
      self->idle_close_ = true;
      self->SendFinalGoaway();
      return;
    }
    case State::kLingering:
    case State::kClosing:
      self->Close();
      return;
  }
}

void Http2ClientSession::ScheduleFlush() {
  if (state_ != State::kClosing) flush_.Schedule();
}

void Http2ClientSession::Flush() {
  if (state_ == State::kClosing || !session_) return;
  if (socket_.write_queue_bytes() > kHighWaterBytes) {
    write_blocked_ = true;  // OnSocketWritten flushes again when the client has read some
    return;
  }
  write_blocked_ = false;
  int rc = nghttp2_session_send(session_.get());
  if (state_ == State::kClosing) return;  // a write failed inside
  if (!out_.empty() && socket_.Write(&out_, nullptr, 0, BlockRef()) != 0) {
    Close(CloseMode::kReset);
    return;
  }
  if (rc != 0) {
    Close(CloseMode::kReset);
    return;
  }
  MaybeFinish();
}

int Http2ClientSession::WriteData(const uint8_t* frame_head, const SpanQueue::Span& span,
                                  size_t length) {
  if (WriteDataFrame(socket_, out_, frame_head, span, length) != 0) {
    Close(CloseMode::kReset);
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  NoteActivity();
  return 0;
}

// Nothing left to serve: no stream open, nothing nghttp2 wants to send or to read (after a
// GOAWAY either way, or a fatal error it answered with one).
void Http2ClientSession::MaybeFinish() {
  if (state_ == State::kLingering || state_ == State::kClosing) return;
  bool done = nghttp2_session_want_read(session_.get()) == 0 &&
              nghttp2_session_want_write(session_.get()) == 0;
  if (state_ == State::kGoawaySent && open_streams_ == 0) done = true;
  if (done) Linger();
}

// Every stream still open lets its upstream go (nghttp2 will not move them any more: it is
// deleted with the session, later).
void Http2ClientSession::DropStreams() {
  if (session_) {
    for (auto& stream : streams_) {
      if (StreamOf(session_.get(), stream->id()) == stream.get()) {
        nghttp2_session_set_stream_user_data(session_.get(), stream->id(), nullptr);
        TallyStreamEnd(*stream);
        stream->OnClosed(NGHTTP2_CANCEL);
        stream->next_free = free_;
        free_ = stream.get();
      }
    }
  }
  open_streams_ = 0;
  Recount();
}

void Http2ClientSession::Linger() {
  state_ = State::kLingering;
  header_block_since_ms_ = 0;  // nothing more is read as HTTP/2
  DropStreams();               // none, unless nghttp2 ended the connection (an error, a flood)
  // As ClientConnection::Linger: FIN after what is queued, then read until the client's FIN,
  // so that unread input does not turn the close into a reset that loses the last frames.
  ArmTimer(proxy_.options().idle_timeout.count());
  socket_.Shutdown();  // last: done at once if nothing is queued, and that may close
}

void Http2ClientSession::OnSocketShutdown(int status) {
  if (state_ == State::kClosing) return;
  if (status != 0 || client_eof_) {
    Close();
    return;
  }
  shutdown_done_ = true;
  Recount();
  ArmTimer(std::min<uint64_t>(kLingerMs, proxy_.options().idle_timeout.count()));
  proxy_.events().OnConnectionFinished();
}

void Http2ClientSession::Receive(std::string_view bytes) {
  if (state_ == State::kClosing || bytes.empty()) return;
  ssize_t rc = nghttp2_session_mem_recv(
      session_.get(), reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  if (state_ == State::kClosing) return;
  if (rc < 0) {
    // Not HTTP/2 after all, or a connection error: nghttp2 queued its GOAWAY (a flood's is
    // ENHANCE_YOUR_CALM); send it, and close once it is out.
    if (rc == NGHTTP2_ERR_FLOODED && !abusive_) {
      abusive_ = true;
      proxy_.events().OnProxyError(ProxyError::kProtocolAbuse);
    }
    nghttp2_session_terminate_session(session_.get(), rc == NGHTTP2_ERR_FLOODED
                                                          ? NGHTTP2_ENHANCE_YOUR_CALM
                                                          : NGHTTP2_PROTOCOL_ERROR);
  }
  RefuseLateStreams();
  ScheduleFlush();
}

void Http2ClientSession::Receive(const BlockRef& block, size_t offset, size_t length) {
  input_ = &block;
  Receive(std::string_view(block.data() + offset, length));
  input_ = nullptr;
}

void Http2ClientSession::OnSocketRead(ssize_t nread, BlockRef block) {
  if (nread < 0) {
    client_eof_ = true;
    if (state_ == State::kLingering) {
      if (shutdown_done_) Close();
      socket_.StopReading();
      return;
    }
    // Gone: every stream it had open goes with it (Close lets their upstreams go).
    Close(nread == UV_EOF ? CloseMode::kFin : CloseMode::kReset);
    return;
  }
  NoteActivity();
  if (state_ == State::kLingering) return;  // discarded: only the FIN is awaited
  Receive(block, 0, static_cast<size_t>(nread));
}

void Http2ClientSession::OnSocketWritten(int status) {
  if (state_ == State::kClosing) return;
  if (status != 0) {
    Close(CloseMode::kReset);
    return;
  }
  NoteActivity();
  if (write_blocked_ && socket_.write_queue_bytes() <= kHighWaterBytes) ScheduleFlush();
}

Http2Stream* Http2ClientSession::OnBeginRequest(int32_t stream_id) {
  Http2Stream* stream = free_;
  if (stream != nullptr) {
    free_ = stream->next_free;
  } else {
    streams_.push_back(std::make_unique<Http2Stream>(*this));
    stream = streams_.back().get();
  }
  stream->Begin(stream_id);
  ++open_streams_;
  ++proxy_.tally().requests;
  Recount();
  if (shutdown_deferred_) StartShutdown();  // this stream is served: the GOAWAY names it
  return stream;
}

void Http2ClientSession::OnBeginFrame(const nghttp2_frame_hd& hd) {
  // A header block in pieces (HEADERS, then CONTINUATION until END_HEADERS) has
  // --header-timeout to end, as an HTTP/1 head has: a client that trickles one is cut. Any
  // other frame, or one that ends the block, means it ended.
  bool block_open = (hd.type == NGHTTP2_HEADERS || hd.type == NGHTTP2_CONTINUATION) &&
                    (hd.flags & NGHTTP2_FLAG_END_HEADERS) == 0;
  if (!block_open) {
    header_block_since_ms_ = 0;
  } else if (header_block_since_ms_ == 0 &&
             (state_ == State::kActive || state_ == State::kNoticeSent)) {
    header_block_since_ms_ = uv_now(proxy_.loop());
    uint64_t limit = proxy_.options().header_timeout.count();
    uv_timer_t* timer = timer_.get();
    if (timer != nullptr && (!uv_is_active(reinterpret_cast<uv_handle_t*>(timer)) ||
                             uv_timer_get_due_in(timer) > limit)) {
      ArmTimer(limit);  // sooner than what the timer waits for now
    }
  }
  if (hd.type != NGHTTP2_HEADERS) return;
  int32_t stream_id = hd.stream_id;
  // After the final GOAWAY nghttp2 ignores a new stream without a word; RFC 9113 6.8 wants it
  // refused, so that the client knows it was never processed and retries it elsewhere.
  if (state_ == State::kGoawaySent || state_ == State::kLingering) {
    if (stream_id > final_last_stream_id_ && (stream_id & 1) == 1 &&
        StreamOf(session_.get(), stream_id) == nullptr) {
      refused_.push_back(stream_id);
    }
  }
}

void Http2ClientSession::RefuseLateStreams() {
  for (int32_t id : refused_) {
    nghttp2_submit_rst_stream(session_.get(), NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
  }
  proxy_.tally().requests += refused_.size();  // arrived, and never forwarded
  proxy_.tally().refused += refused_.size();
  refused_.clear();
}

void Http2ClientSession::OnFrame(const nghttp2_frame& frame) {
  Http2Stream* stream = StreamOf(session_.get(), frame.hd.stream_id);
  switch (frame.hd.type) {
    case NGHTTP2_HEADERS:
      if (stream == nullptr) return;
      if (frame.headers.cat == NGHTTP2_HCAT_REQUEST) {
        stream->OnHeadEnd((frame.hd.flags & NGHTTP2_FLAG_END_STREAM) != 0);
      } else if ((frame.hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
        stream->OnRequestEnd();  // trailers
      }
      return;
    case NGHTTP2_DATA:
      if (stream != nullptr && (frame.hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
        stream->OnRequestEnd();
      }
      return;
    case NGHTTP2_RST_STREAM:
      if (stream != nullptr && !stream->response_done()) OnClientReset();
      return;
    case NGHTTP2_PING:
      if ((frame.hd.flags & NGHTTP2_FLAG_ACK) != 0 && state_ == State::kNoticeSent &&
          std::equal(std::begin(kDrainPing), std::end(kDrainPing), frame.ping.opaque_data)) {
        SendFinalGoaway();
      }
      return;
    default:
      return;
  }
}

void Http2ClientSession::OnClientReset() {
  uint64_t now = uv_now(proxy_.loop());
  reset_tokens_ =
      std::min(kResetBurst, reset_tokens_ + (now - reset_refilled_ms_) * kResetsPerSecond / 1000.0);
  reset_refilled_ms_ = now;
  if (reset_tokens_ >= 1) {
    reset_tokens_ -= 1;
    return;
  }
  if (abusive_) return;
  abusive_ = true;
  proxy_.events().OnProxyError(ProxyError::kProtocolAbuse);
  nghttp2_session_terminate_session(session_.get(), NGHTTP2_ENHANCE_YOUR_CALM);
}

void Http2ClientSession::OnFrameSent(const nghttp2_frame& frame) {
  if ((frame.hd.type != NGHTTP2_HEADERS && frame.hd.type != NGHTTP2_DATA) ||
      (frame.hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) {
    return;
  }
  if (Http2Stream* stream = StreamOf(session_.get(), frame.hd.stream_id)) stream->OnResponseSent();
}

void Http2ClientSession::OnData(int32_t stream_id, const uint8_t* data, size_t length) {
  Http2Stream* stream = StreamOf(session_.get(), stream_id);
  if (stream == nullptr || input_ == nullptr) {
    Consume(0, length);
    return;
  }
  NoteActivity();
  stream->OnData(*input_, data, length);
}

void Http2ClientSession::OnStreamClose(int32_t stream_id, uint32_t error_code) {
  Http2Stream* stream = StreamOf(session_.get(), stream_id);
  if (stream == nullptr) return;
  nghttp2_session_set_stream_user_data(session_.get(), stream_id, nullptr);
  TallyStreamEnd(*stream);
  stream->OnClosed(error_code);
  stream->next_free = free_;
  free_ = stream;
  --open_streams_;
  Recount();
  if (open_streams_ == 0 && state_ == State::kActive) {
    ArmTimer(proxy_.options().idle_timeout.count());
  }
}

void Http2ClientSession::Consume(int32_t stream_id, size_t length) {
  if (!session_ || length == 0) return;
  if (stream_id == 0) {
    nghttp2_session_consume_connection(session_.get(), length);
  } else {
    nghttp2_session_consume(session_.get(), stream_id, length);
  }
  ScheduleFlush();  // a WINDOW_UPDATE may be due
}

void Http2ClientSession::StartShutdown() {
  if (state_ != State::kActive || !session_) return;
  shutdown_deferred_ = false;
  nghttp2_submit_shutdown_notice(session_.get());
  nghttp2_submit_ping(session_.get(), NGHTTP2_FLAG_NONE, kDrainPing);
  state_ = State::kNoticeSent;
  ArmTimer(kFinalGoawayMs);
  ScheduleFlush();
}

void Http2ClientSession::SendFinalGoaway() {
  if ((state_ != State::kActive && state_ != State::kNoticeSent) || !session_) return;
  final_last_stream_id_ = nghttp2_session_get_last_proc_stream_id(session_.get());
  nghttp2_submit_goaway(session_.get(), NGHTTP2_FLAG_NONE, final_last_stream_id_, NGHTTP2_NO_ERROR,
                        nullptr, 0);
  state_ = State::kGoawaySent;
  Recount();
  ArmTimer(proxy_.options().idle_timeout.count());
  ScheduleFlush();
}

bool Http2ClientSession::idle() const {
  if (state_ == State::kLingering || state_ == State::kClosing || open_streams_ > 0) return false;
  // Accepted during the accept grace and no stream yet: the client connected to send one, and a
  // GOAWAY before it could fails the connection in a gRPC client's eyes (it backs off, failing
  // every call for a second). Its own shutdown follows its first stream, or a second of silence.
  if (shutdown_deferred_) return false;
  // The double GOAWAY is under way: the final one follows the PING's answer, as it must, or
  // streams the client opened before it saw the first would be refused.
  return state_ != State::kNoticeSent;
}

size_t Http2ClientSession::long_lived_awaiting() {
  if (!session_) return 0;
  size_t count = 0;
  for (auto& stream : streams_) {
    if (StreamOf(session_.get(), stream->id()) == stream.get() && stream->AwaitsDrainClose()) {
      ++count;
    }
  }
  return count;
}

size_t Http2ClientSession::EndLongLived(size_t max, SpreadStep& done) {
  if (!session_) return 0;
  size_t asked = 0;
  for (auto& stream : streams_) {
    if (asked >= max) break;
    if (StreamOf(session_.get(), stream->id()) != stream.get() || !stream->AwaitsDrainClose()) {
      continue;
    }
    ++done.long_lived_ending[static_cast<size_t>(stream->long_lived_kind())];
    stream->EndLongLived();
    ++asked;
  }
  return asked;
}

bool Http2ClientSession::CloseIfIdle() {
  if (!idle()) return false;
  idle_close_ = true;
  SendFinalGoaway();
  return true;
}

size_t Http2ClientSession::ForceClose() {
  if (state_ == State::kClosing) return 0;
  forced_ = true;
  size_t cut = 0;
  if (session_) {
    for (auto& stream : streams_) {
      if (StreamOf(session_.get(), stream->id()) == stream.get() && stream->Reset()) ++cut;
    }
    nghttp2_session_terminate_session(session_.get(), NGHTTP2_NO_ERROR);
    nghttp2_session_send(session_.get());  // best effort: the resets and the GOAWAY
    if (state_ != State::kClosing && !out_.empty()) socket_.Write(&out_, nullptr, 0, BlockRef());
  }
  Close();
  return cut;
}

void Http2ClientSession::Close(CloseMode mode) {
  if (state_ == State::kClosing) return;
  end_ = EndNow();
  state_ = State::kClosing;
  timer_.Close();
  flush_.Close();
  DropStreams();
  socket_.Close(mode);
}

void Http2ClientSession::OnSocketClosed() { proxy_.Remove(*this); }

}  // namespace lameduck::proxy
