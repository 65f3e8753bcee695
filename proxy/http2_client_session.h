// Http2ClientSession: one client connection speaking HTTP/2 (h2c, prior knowledge), a sibling
// of ClientConnection. nghttp2 does the framing, HPACK, flow control and stream states; this is
// the glue to libuv and to the streams (Http2Stream), each of which carries one request through
// its own exchange to the app.
//
// It begins life as a ClientConnection that saw the connection preface: that one hands over a
// dup of its socket and the bytes it read, and closes its own handle without a FIN.
//
// No re-entrancy: nghttp2 calls back only from inside Receive (a read) and Flush; what the
// upstreams report is queued or submitted, and a TurnEndTask runs Flush once per loop turn, so
// the streams of many upstreams leave in one write.
//
// The drain, the HTTP/2 way (RFC 9113 6.8): GOAWAY with the last stream id 2^31-1 and a PING;
// when the PING comes back (or after kFinalGoawayMs) a final GOAWAY names the last stream
// accepted. Streams the client opens after it are refused with REFUSED_STREAM, never forwarded
// (the client may retry them elsewhere); open ones finish, and the connection closes after the
// last, lingering as an HTTP/1 one does.
#pragma once

#include <nghttp2/nghttp2.h>
#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/buffer_pool.h"
#include "proxy/drain_target.h"
#include "proxy/socket.h"
#include "proxy/span_queue.h"
#include "proxy/turn_end_task.h"
#include "proxy/uv_handle.h"

namespace lameduck::proxy {

class Proxy;
class Http2Stream;

class Http2ClientSession final : public Socket::Owner {
 public:
  enum class State {
    kActive,      // serving streams
    kNoticeSent,  // GOAWAY(2^31-1) and a PING are out; waiting for the PING's ACK (timer armed)
    kGoawaySent,  // the final GOAWAY is out: streams above its last id are refused
    kLingering,   // nothing left to serve: write side shut after what is queued; reading to FIN
    kClosing,     // uv_close called; the Proxy erases it from OnSocketClosed
  };

  explicit Http2ClientSession(Proxy& proxy);
  ~Http2ClientSession();
  Http2ClientSession(const Http2ClientSession&) = delete;
  Http2ClientSession& operator=(const Http2ClientSession&) = delete;

  // Adopts `fd` (a dup of the accepted socket) and queues the server's SETTINGS. Returns an
  // error only if the socket could not even be created (then `fd` is still the caller's).
  int Open(int fd, Address::Kind kind, std::string_view client_ip);
  // Bytes the connection already read: the preface (and whatever followed it).
  void Receive(std::string_view bytes);
  void Receive(const BlockRef& block, size_t offset, size_t length);

  // The drain (see DrainTarget).
  void StartShutdown();
  // Idle for the drain: no open stream, not shutting down or deferred. CloseIfIdle then sends
  // the final GOAWAY and closes (true).
  bool idle() const;
  bool CloseIfIdle();
  // The drain's spread: long-lived streams (SSE, gRPC streams) not yet asked to end, and asking
  // up to `max` of them (each ends at its next boundary); returns how many it asked.
  size_t long_lived_awaiting();
  size_t EndLongLived(size_t max, SpreadStep& done);
  size_t ForceClose();  // streams cut short
  void Close(CloseMode mode = CloseMode::kFin);

  State state() const { return state_; }
  // What this session adds to the Proxy's counts.
  const ProxyCounts& counted() const { return counted_; }
  ConnectionEnd end() const { return end_; }  // once closing: how (ProxyTally)

  // For its streams.
  Proxy& proxy() { return proxy_; }
  nghttp2_session* nghttp2() { return session_.get(); }
  std::string_view client_ip() const { return client_ip_; }
  void ScheduleFlush();
  void NoteActivity();
  void Consume(int32_t stream_id, size_t length);  // give bytes back to the client's windows
  int WriteData(const uint8_t* frame_head, const SpanQueue::Span& span, size_t length);
  void Recount();

  // nghttp2's callbacks (C functions that land here).
  Http2Stream* OnBeginRequest(int32_t stream_id);
  void OnBeginFrame(const nghttp2_frame_hd& hd);
  void OnFrame(const nghttp2_frame& frame);
  void OnFrameSent(const nghttp2_frame& frame);
  void OnClientReset();  // the client cancelled a stream whose response was not complete
  void OnData(int32_t stream_id, const uint8_t* data, size_t length);
  void OnStreamClose(int32_t stream_id, uint32_t error_code);
  void Append(const uint8_t* data, size_t length) { out_.append(data, data + length); }

 private:
  ConnectionEnd EndNow() const;                    // how it ends, if it ends now
  void TallyStreamEnd(const Http2Stream& stream);  // a stream that was open ended
  struct SessionDeleter {
    void operator()(nghttp2_session* session) const { nghttp2_session_del(session); }
  };

  // Socket::Owner
  void OnSocketRead(ssize_t nread, BlockRef block) override;
  void OnSocketWritten(int status) override;
  void OnSocketShutdown(int status) override;
  void OnSocketClosed() override;

  void Flush();
  void SendFinalGoaway();
  void RefuseLateStreams();
  void MaybeFinish();
  void Linger();
  void DropStreams();
  void ArmTimer(uint64_t timeout_ms);
  bool HeaderBlockTimedOut();  // true: it did, and the connection is closed
  size_t open_streams() const { return open_streams_; }
  static void OnTimer(uv_timer_t* timer);

  Proxy& proxy_;
  Socket socket_;
  UvHandle<uv_timer_t> timer_;
  TurnEndTask flush_;  // runs Flush once per loop turn, when scheduled
  std::unique_ptr<nghttp2_session, SessionDeleter> session_;
  State state_ = State::kActive;
  ProxyCounts counted_;
  std::string out_;                  // frames nghttp2 serialized, not yet handed to the socket
  const BlockRef* input_ = nullptr;  // during Receive: the block nghttp2 reads from
  std::vector<std::unique_ptr<Http2Stream>> streams_;  // every stream object, open or free
  Http2Stream* free_ = nullptr;
  size_t open_streams_ = 0;
  int32_t final_last_stream_id_ = 0;  // in the final GOAWAY
  std::vector<int32_t> refused_;      // streams opened after it, to refuse after the read
  double reset_tokens_ = 0;           // the rapid-reset bucket
  uint64_t reset_refilled_ms_ = 0;
  bool abusive_ = false;     // ENHANCE_YOUR_CALM sent: nothing more is served
  bool forced_ = false;      // closed at --drain-timeout
  bool idle_close_ = false;  // lameduck ended it idle (the drain, --idle-timeout)
  ConnectionEnd end_ = ConnectionEnd::kByClient;  // set as it closes
  bool shutdown_deferred_ = false;  // accepted during the drain: the GOAWAY waits for a stream
  bool client_eof_ = false;
  bool shutdown_done_ = false;  // our FIN went out
  bool write_blocked_ = false;  // the socket's queue is over the high-water mark
  uint64_t last_activity_ms_ = 0;
  uint64_t header_block_since_ms_ = 0;  // a header block began and has not ended (0: none)
  std::string client_ip_;
};

}  // namespace lameduck::proxy
