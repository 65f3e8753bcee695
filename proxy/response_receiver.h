// ResponseReceiver: what the upstream side of an exchange reports to the exchange it serves,
// whatever protocol it speaks to the app (h2o's on_head/on_body shape). The exchange hands the
// upstream a request (UpstreamConnection::Attach, Write, EndRequest) and hears back here.
//
// No re-entrancy: OnHead and OnBody return a verdict, and on kStop the upstream side does
// nothing more for this exchange (the exchange has let it go). Every other call is the
// upstream side's last action for the event that caused it, made after it settled its own
// state (back in the pool, closing, or a tunnel end): whatever the exchange then does, even
// taking the same connection from the pool for its next request, cannot pull the rug.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>

#include "proxy/buffer_pool.h"
#include "proxy/message_head.h"
#include "proxy/proxy_events.h"

namespace lameduck::proxy {

class ResponseReceiver {
 public:
  enum class [[nodiscard]] Verdict{
      kContinue,  // go on parsing and delivering
      kStop,      // the exchange let this upstream go (detached and closing it): return at once
  };
  enum class [[nodiscard]] HeadVerdict{
      kForward,   // deliver the body as it comes
      kDataOnly,  // deliver only the body's data, without its transfer coding (dechunked)
      kRefuse,    // a head the request did not allow (a 101 nobody asked for): fail the exchange
      kStop,      // as Verdict::kStop
  };

  virtual void OnUpstreamReady() = 0;     // connected: the request can be written
  virtual void OnUpstreamWritable() = 0;  // a write completed: more request body may follow
  virtual HeadVerdict OnHead(const ResponseHead& head) = 0;  // interim (1xx) or final
  virtual Verdict OnBody(const uv_buf_t* bufs, size_t count, const BlockRef& block) = 0;
  virtual void OnReadDone() = 0;  // a read was parsed and the response goes on
  // The final response is whole. The upstream has already gone back to the pool or is closing.
  virtual void OnEnd() = 0;
  // A 101 is whole: the upstream is one end of a tunnel from now on; [offset, offset + length)
  // of block are the first tunnel bytes (possibly none).
  virtual void OnUpgraded(const BlockRef& block, size_t offset, size_t length) = 0;
  // The response's trailers (HTTP/2), just before OnEnd.
  virtual void OnTrailers(const HeadCollector& trailers) = 0;
  // The exchange failed on the upstream side; the upstream is detached and closing.
  virtual void OnUpstreamError(ProxyError error, bool response_started) = 0;
  // The app reset its HTTP/2 stream with `code` (detached, as OnUpstreamError).
  virtual void OnUpstreamReset(uint32_t code, bool response_started) = 0;
  virtual void OnTunnelData(const BlockRef& block, size_t offset, size_t length) = 0;
  virtual void OnTunnelEof() = 0;                 // the app half-closed the tunnel
  virtual void OnTunnelShutdown(int status) = 0;  // our FIN towards the app went out (or failed)

 protected:
  ~ResponseReceiver() = default;
};

}  // namespace lameduck::proxy
