// UpstreamConnection: one HTTP/1.1 connection to the app. It connects, carries the requests of
// one exchange at a time, parses the responses (http1::ResponseParser) and reports them to the
// exchange through the narrow ResponseReceiver interface, decides alone whether it may carry
// another request (Reusable), and waits in the UpstreamPool between exchanges. After a 101 it is
// one end of a tunnel. It never writes to the client and never decides what the client sees.
#pragma once

#include <uv.h>

#include <chrono>
#include <string>

#include "proxy/http1/head_writer.h"
#include "proxy/http1/response_parser.h"
#include "proxy/proxy_events.h"
#include "proxy/response_receiver.h"
#include "proxy/socket.h"
#include "proxy/upstream.h"
#include "proxy/uv_handle.h"

namespace lameduck::proxy {

class Proxy;

class UpstreamConnection final : public Socket::Owner, public Upstream {
 public:
  enum class State {
    kConnecting,  // connect timer armed; an exchange is attached and waits
    kActive,      // attached to an exchange; response parser live
    kIdle,        // in the pool: no exchange; reading only to notice a close; pool timer armed
    kTunnel,      // after a 101: raw bytes to the attached exchange
    kClosing,     // uv_close called; the Proxy erases it from OnSocketClosed
  };

  explicit UpstreamConnection(Proxy& proxy);
  int Connect();  // kConnecting; the receiver hears OnUpstreamReady or OnUpstreamError

  // The exchange attaches before writing a request, and says whether the response can have a
  // body (a HEAD request's cannot). It detaches when it lets the connection go (then closes it).
  void Attach(ResponseReceiver& receiver, bool head_request) override;
  void Detach() override { receiver_ = nullptr; }
  bool ready() const override { return state_ == State::kActive; }
  // The whole request was handed over: its response head must come within --upstream-timeout.
  void EndRequest(const HeadCollector* trailers) override;  // trailers: HTTP/1 sends its own
  // Back-pressure from the client side, which writes what this connection reads.
  void PauseReading() override;
  void ResumeReading() override;

  // The request's head, written as HTTP/1.1 for the app (hop-by-hop fields out, forwarding
  // fields in). Returns 0 or a libuv error, as Write.
  int WriteRequestHead(const HeadCollector& head, const http1::RequestRewrite& rewrite,
                       bool complete) override;
  // Writes to the app. Returns 0 or a libuv error. During an exchange a failed write is not
  // an error yet: the app may have answered early and closed without reading the rest (a 413),
  // so the bytes still to come are dropped, and the read side decides: the answer, or the
  // close without one that fails the exchange.
  int Write(std::string* head, const uv_buf_t* bufs, unsigned count, BlockRef block) override;
  void ShutdownWrite() override { socket_.Shutdown(); }
  size_t write_queue_bytes() const override { return socket_.write_queue_bytes(); }
  size_t writes_pending() const { return socket_.writes_pending(); }
  int fd() const override { return socket_.fd(); }

  // The pool's side.
  void EnterPool(std::chrono::milliseconds idle_limit);
  void LeavePool();
  void Close() override;

  State state() const { return state_; }
  bool reused() const override { return exchanges_ > 1; }
  bool response_started() const override { return response_bytes_ > 0; }

  // Intrusive links for the UpstreamPool: being pooled allocates nothing.
  UpstreamConnection* pool_prev = nullptr;
  UpstreamConnection* pool_next = nullptr;

 private:
  // Socket::Owner
  void OnSocketRead(ssize_t nread, BlockRef block) override;
  void OnSocketWritten(int status) override;
  void OnSocketConnected(int status) override;
  void OnSocketShutdown(int status) override;
  void OnSocketClosed() override;

  void ParseResponse(const BlockRef& block, size_t length);
  void OnEof(ssize_t nread);
  void ArmResponseTimer();
  ResponseReceiver::Verdict DeliverBody(const BlockRef& block, size_t begin, size_t end);
  void Fail(ProxyError error);
  static void OnTimer(uv_timer_t* timer);

  Proxy& proxy_;
  Socket socket_;
  UvHandle<uv_timer_t> timer_;
  http1::ResponseParser parser_;
  // The one answer to "may this connection carry another request?", asked when a final
  // response ends with `unparsed` bytes of the read after it.
  bool Reusable(size_t unparsed) const;
  void EndResponse(const BlockRef& block, size_t offset, size_t length);

  ResponseReceiver* receiver_ = nullptr;
  std::string request_head_;  // built per request; swapped into its write, capacity kept
  State state_ = State::kConnecting;
  bool request_ended_ = false;    // EndRequest came: the exchange sends nothing more
  bool final_head_seen_ = false;  // a final (not 1xx) head arrived: the head clock is stopped
  bool wrote_ = false;            // a write of this exchange went out
  bool write_failed_ = false;     // the app stopped taking the request: the rest is dropped
  size_t response_bytes_ = 0;
  unsigned exchanges_ = 0;
};

}  // namespace lameduck::proxy
