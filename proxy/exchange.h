// Exchange: one request and its response: the state of each side (an enum per side, with the
// invariant of each value beside it), the request's facts, the upstream connection serving it
// and the try it is on. It hands the upstream the request (head, body, end) and is the
// ResponseReceiver the upstream reports to, passing each report on to its Owner, the client
// side that carries it (an HTTP/1 connection, one exchange at a time; an HTTP/2 session will
// own many), with itself named. Embedded in its owner and begun afresh per request, so a request
// allocates nothing. It holds no socket and speaks no wire protocol.
#pragma once

#include <cstddef>
#include <string_view>

#include "proxy/buffer_pool.h"
#include "proxy/http1/head_writer.h"
#include "proxy/message_head.h"
#include "proxy/proxy_events.h"
#include "proxy/response_receiver.h"

namespace lameduck::proxy {

class Upstream;

class Exchange final : public ResponseReceiver {
 public:
  // The client side of an exchange hears here what the upstream reported, with the same rules
  // (see response_receiver.h). OnEnd and OnUpstreamError come with the upstream already let go.
  class Owner {
   public:
    using Verdict = ResponseReceiver::Verdict;
    using HeadVerdict = ResponseReceiver::HeadVerdict;
    virtual void OnUpstreamReady(Exchange& exchange) = 0;
    virtual void OnUpstreamWritable(Exchange& exchange) = 0;
    virtual HeadVerdict OnHead(Exchange& exchange, const ResponseHead& head) = 0;
    virtual Verdict OnBody(Exchange& exchange, const uv_buf_t* bufs, size_t count,
                           const BlockRef& block) = 0;
    virtual void OnReadDone(Exchange& exchange) = 0;
    virtual void OnEnd(Exchange& exchange) = 0;
    virtual void OnUpgraded(Exchange& exchange, const BlockRef& block, size_t offset,
                            size_t length) = 0;
    virtual void OnUpstreamError(Exchange& exchange, ProxyError error, bool response_started) = 0;
    // HTTP/2 apps only; an HTTP/1 client has no trailers or resets to pass them on in.
    virtual void OnTrailers(Exchange& /*exchange*/, const HeadCollector& /*trailers*/) {}
    virtual void OnUpstreamReset(Exchange& exchange, uint32_t /*code*/, bool response_started) {
      OnUpstreamError(exchange, ProxyError::kUpstreamReset, response_started);
    }
    virtual void OnTunnelData(Exchange& exchange, const BlockRef& block, size_t offset,
                              size_t length) = 0;
    virtual void OnTunnelEof(Exchange& exchange) = 0;
    virtual void OnTunnelShutdown(Exchange& exchange, int status) = 0;

   protected:
    ~Owner() = default;
  };

  enum class RequestState {
    kBody,      // head accepted; body bytes go upstream as they arrive (or wait in `unsent`)
    kComplete,  // the whole request arrived; the parser is paused; later bytes are the next
                // request's and wait in the connection until this exchange ends
  };
  enum class ResponseState {
    kAwaitingHead,  // nothing sent to the client yet: an error can still be a clean 5xx
    kHeadHeld,      // the head is built, not sent: it leaves with the first body bytes, or when
                    // the upstream's read ends without any
    kStreaming,     // head sent; body bytes flow
    kComplete,      // all of it queued to the client
  };
  enum class Attempt {
    kNone,    // no upstream yet: one is taken once the read that brought the head is checked
    kReused,  // on a pooled connection, which the app may have closed: retried once if so
    kFresh,   // on a new connection: a failure is final
    kRetry,   // the second try, on a new connection: a failure is final
  };

  explicit Exchange(Owner& owner) : owner_(owner) {}
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  // A new request's head was accepted.
  void Begin(bool http10, bool upgrade, bool close_after);

  // The upstream side: the exchange hands its upstream the request (head, body, end) and hears
  // back through `receiver`. Failed writes are returned (a libuv error), never acted on here:
  // the connection decides between a retry and an answer.
  void Attach(Upstream& upstream, bool head_request, bool retry);
  bool upstream_ready() const;  // attached and connected: bytes can go now
  // The request's head, once the upstream is ready; and its end, if the request is complete.
  int SendHead(const HeadCollector& head, const http1::RequestRewrite& rewrite);
  int ForwardBody(const BlockRef& block, size_t offset, size_t length);
  // Parsed body bytes that wait for the connection; kept until written, so a retry resends them.
  void HoldBody(const BlockRef& block, size_t offset, size_t length);
  int ForwardHeldBody();
  // The whole request arrived (with trailers, from an HTTP/2 client); the upstream hears of it
  // when attached.
  void EndRequest(const HeadCollector* trailers = nullptr);
  void DropUpstream();  // let the upstream go early: out of step for good, it closes
  // Only a reused connection that the app closed under us, only for idempotent requests whose
  // body (if any) has not started to flow and whose response has not begun: then the app cannot
  // have acted on the request twice in a way that matters (RFC 9110 9.2.2), and the bytes to
  // resend are all still here. Or a stream the app refused (it never processed it, RFC 9113 8.7),
  // for any method, once, if the body sent so far can be sent again (body_replayable).
  bool MayRetry(ProxyError error, bool idempotent, bool response_started) const;

  RequestState request = RequestState::kBody;
  ResponseState response = ResponseState::kAwaitingHead;
  Attempt attempt = Attempt::kNone;
  Upstream* upstream = nullptr;  // attached to this exchange while not null
  // Body bytes already parsed (so known to be valid) that wait for the upstream connection:
  // a request whose body is broken is refused before any of it reaches the app.
  BlockRef unsent;
  size_t unsent_offset = 0;
  size_t unsent_length = 0;
  size_t body_bytes_forwarded = 0;
  bool body_replayable = false;  // the owner kept every body byte forwarded: it can resend them
  int status = 0;                // the final response's, once its head came (or the error's)
  bool http10 = false;           // the client speaks HTTP/1.0: no 1xx, no chunked coding
  bool upgrade = false;          // the request asked for a protocol upgrade: a 101 may come
  bool close_after = false;      // the connection ends after this exchange

 private:
  // ResponseReceiver: passed on to the owner.
  void OnUpstreamReady() override { owner_.OnUpstreamReady(*this); }
  void OnUpstreamWritable() override { owner_.OnUpstreamWritable(*this); }
  HeadVerdict OnHead(const ResponseHead& head) override { return owner_.OnHead(*this, head); }
  Verdict OnBody(const uv_buf_t* bufs, size_t count, const BlockRef& block) override {
    return owner_.OnBody(*this, bufs, count, block);
  }
  void OnReadDone() override { owner_.OnReadDone(*this); }
  void OnEnd() override;
  void OnUpgraded(const BlockRef& block, size_t offset, size_t length) override {
    owner_.OnUpgraded(*this, block, offset, length);
  }
  void OnUpstreamError(ProxyError error, bool response_started) override;
  void OnTrailers(const HeadCollector& trailers) override { owner_.OnTrailers(*this, trailers); }
  void OnUpstreamReset(uint32_t code, bool response_started) override;
  void OnTunnelData(const BlockRef& block, size_t offset, size_t length) override {
    owner_.OnTunnelData(*this, block, offset, length);
  }
  void OnTunnelEof() override { owner_.OnTunnelEof(*this); }
  void OnTunnelShutdown(int status) override { owner_.OnTunnelShutdown(*this, status); }

  Owner& owner_;
};

std::string_view ToString(Exchange::RequestState state);
std::string_view ToString(Exchange::ResponseState state);

}  // namespace lameduck::proxy
