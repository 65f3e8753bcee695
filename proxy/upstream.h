// Upstream: the app's side of one exchange, whatever protocol carries it: an HTTP/1.1
// connection lent by the pool for the exchange (UpstreamConnection), or one stream on a shared
// h2c connection (Http2UpstreamStream). The exchange hands it the request and hears back through
// ResponseReceiver; the client side reads its back-pressure figures. No socket is assumed.
#pragma once

#include <uv.h>

#include <cstddef>
#include <string>

#include "proxy/buffer_pool.h"
#include "proxy/http1/head_writer.h"
#include "proxy/message_head.h"
#include "proxy/response_receiver.h"

namespace lameduck::proxy {

class Upstream {
 public:
  // The exchange attaches before writing a request, and says whether the response can have a
  // body (a HEAD request's cannot). It detaches when it lets the upstream go, then closes it.
  virtual void Attach(ResponseReceiver& receiver, bool head_request) = 0;
  virtual void Detach() = 0;
  // Lets go early: an HTTP/1 connection closes (it is out of step); an HTTP/2 stream is reset
  // (CANCEL) and its connection goes on carrying the others.
  virtual void Close() = 0;
  virtual bool ready() const = 0;  // connected: the request can be written

  // The request head (hop-by-hop fields out, forwarding fields in); `complete`: no body
  // follows. Body bytes as they come: an HTTP/1 upstream writes them as they are (their framing
  // is the client's, or chunk heads in `head`), an HTTP/2 one frames them (`head` must be empty).
  // Returns 0 or a libuv error.
  virtual int WriteRequestHead(const HeadCollector& head, const http1::RequestRewrite& rewrite,
                               bool complete) = 0;
  virtual int Write(std::string* head, const uv_buf_t* bufs, unsigned count, BlockRef block) = 0;
  // The whole request was handed over (HTTP/2: with these trailers, if not null); its response
  // head must come within --upstream-timeout.
  virtual void EndRequest(const HeadCollector* trailers) = 0;

  // Back-pressure from the client side, which writes what this upstream reads.
  virtual void PauseReading() = 0;
  virtual void ResumeReading() = 0;
  // Request bytes handed over and not yet taken by the app's side of the transport.
  virtual size_t write_queue_bytes() const = 0;
  virtual bool reused() const = 0;            // it carried an exchange before: it may be stale
  virtual bool response_started() const = 0;  // response bytes arrived for this exchange

  // HTTP/1 tunnels (after a 101) only.
  virtual void ShutdownWrite() {}
  virtual int fd() const { return -1; }  // for the kernel's queue sizes; -1 if not its own

 protected:
  ~Upstream() = default;
};

}  // namespace lameduck::proxy
