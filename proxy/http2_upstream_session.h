// Http2UpstreamSession: one h2c connection to the app, shared by the streams of many clients
// (nghttp2 in the client role), and Http2UpstreamStream, one exchange's stream on it (the
// Upstream the exchange is attached to). The Proxy keeps these sessions as its h2c pool: a stream
// goes on the first one with room under the app's SETTINGS_MAX_CONCURRENT_STREAMS, and a new
// connection is made when all are full, so the app never sees more streams than it allows.
//
// The app's GOAWAY retires a session: it takes no new stream; streams the app never processed
// (above the GOAWAY's last stream id, or refused) fail with kUpstreamRefused and are retried on
// another connection; the rest finish. A retired session closes after its last stream.
//
// Flow control: the connection window is given back at once (one slow client must not stall the
// others); a stream's window only as its client takes the bytes (PauseReading holds it shut).
// Re-entrancy as in Http2ClientSession: nghttp2 calls back only in a read and in Flush, which a
// TurnEndTask runs once per loop turn.
#pragma once

#include <nghttp2/nghttp2.h>
#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "proxy/http2/fields.h"
#include "proxy/message_head.h"
#include "proxy/socket.h"
#include "proxy/span_queue.h"
#include "proxy/turn_end_task.h"
#include "proxy/upstream.h"
#include "proxy/uv_handle.h"

namespace lameduck::proxy {

class Proxy;
class Http2UpstreamSession;

class Http2UpstreamStream final : public Upstream {
 public:
  explicit Http2UpstreamStream(Http2UpstreamSession& session);
  void Begin();  // taken from the session's free list

  // Upstream
  void Attach(ResponseReceiver& receiver, bool head_request) override;
  void Detach() override { receiver_ = nullptr; }
  void Close() override;
  bool ready() const override;
  int WriteRequestHead(const HeadCollector& head, const http1::RequestRewrite& rewrite,
                       bool complete) override;
  int Write(std::string* head, const uv_buf_t* bufs, unsigned count, BlockRef block) override;
  void EndRequest(const HeadCollector* trailers) override;
  void PauseReading() override;
  void ResumeReading() override;
  size_t write_queue_bytes() const override { return request_.bytes(); }
  bool reused() const override { return false; }  // a refused stream says so: no guessing
  bool response_started() const override { return response_bytes_ > 0 || head_seen_; }

  // From the session.
  void OnSessionReady();
  void OnResponseField(std::string_view name, std::string_view value, bool trailer);
  void OnResponseHeaders(bool trailer, bool end_stream);
  void OnResponseData(const BlockRef& block, const uint8_t* data, size_t length);
  void OnResponseEnd();
  void OnClosed(uint32_t error_code);
  void Fail(ProxyError error);  // the connection failed under it
  ssize_t ReadRequest(size_t max_length, uint32_t* flags);
  int SendData(const uint8_t* frame_head, size_t length);

  int32_t id() const { return id_; }
  bool open() const { return open_; }
  bool in_use = false;
  Http2UpstreamStream* next_free = nullptr;

 private:
  void MaybeRelease();
  void Resume();
  void Report(ProxyError error, uint32_t code);
  static void OnTimer(uv_timer_t* timer);

  Http2UpstreamSession& session_;
  UvHandle<uv_timer_t> timer_;  // the response head clock (--upstream-timeout)
  ResponseReceiver* receiver_ = nullptr;
  int32_t id_ = -1;    // nghttp2's, once submitted
  bool open_ = false;  // submitted, and nghttp2 has not closed it
  bool head_request_ = false;
  bool head_seen_ = false;  // the final response head arrived
  bool ended_ = false;      // the response ended (or failed): the receiver heard its last
  int status_ = 0;
  HeadCollector fields_;  // of the head being received (or the trailers)
  ResponseHead head_;
  SpanQueue request_;  // body bytes waiting for nghttp2 to frame them
  bool request_eof_ = false;
  bool deferred_ = false;
  http2::FieldList trailers_;
  bool paused_ = false;
  size_t unconsumed_ = 0;  // received while paused: the app's stream window stays shut
  size_t response_bytes_ = 0;
};

class Http2UpstreamSession final : public Socket::Owner {
 public:
  enum class State {
    kConnecting,  // connect timer armed; streams wait for OnSessionReady
    kReady,       // carrying streams
    kRetiring,    // the app's GOAWAY, or the drain: no new stream; closes after the last
    kClosing,     // uv_close called; the Proxy erases it from OnSocketClosed
  };

  explicit Http2UpstreamSession(Proxy& proxy);
  ~Http2UpstreamSession();
  int Connect();

  // Room for one more stream: not retiring, and under the app's concurrency limit.
  bool HasRoom() const;
  Http2UpstreamStream* TakeStream();
  size_t active_streams() const { return active_; }
  void Retire();  // no new streams; GOAWAY and close once none is left
  void Close();
  State state() const { return state_; }

  // For its streams.
  Proxy& proxy() { return proxy_; }
  nghttp2_session* nghttp2() { return session_.get(); }
  void ScheduleFlush();
  void Release(Http2UpstreamStream& stream);
  void ConsumeStream(int32_t id, size_t length);
  int WriteData(const uint8_t* frame_head, const SpanQueue::Span& span, size_t length);
  http2::FieldList& fields() { return fields_; }

  // nghttp2's callbacks.
  Http2UpstreamStream* Find(int32_t stream_id);
  void OnFrame(const nghttp2_frame& frame);
  void OnData(int32_t stream_id, const uint8_t* data, size_t length);
  void OnStreamClose(int32_t stream_id, uint32_t error_code);
  void OnFrameNotSent(const nghttp2_frame& frame);
  void Append(const uint8_t* data, size_t length) { out_.append(data, data + length); }

 private:
  struct SessionDeleter {
    void operator()(nghttp2_session* session) const { nghttp2_session_del(session); }
  };

  // Socket::Owner
  void OnSocketRead(ssize_t nread, BlockRef block) override;
  void OnSocketWritten(int status) override;
  void OnSocketConnected(int status) override;
  void OnSocketClosed() override;

  void Flush();
  void FailAll(ProxyError error);
  void MaybeClose();
  static void OnTimer(uv_timer_t* timer);

  Proxy& proxy_;
  Socket socket_;
  UvHandle<uv_timer_t> timer_;  // connect timeout, then the idle limit
  TurnEndTask flush_;           // runs Flush once per loop turn, when scheduled
  std::unique_ptr<nghttp2_session, SessionDeleter> session_;
  State state_ = State::kConnecting;
  std::string out_;
  const BlockRef* input_ = nullptr;
  std::vector<std::unique_ptr<Http2UpstreamStream>> streams_;
  Http2UpstreamStream* free_ = nullptr;
  size_t active_ = 0;  // streams taken and not yet released
  bool write_blocked_ = false;
  http2::FieldList fields_;  // request fields scratch: nghttp2 copies them
};

}  // namespace lameduck::proxy
