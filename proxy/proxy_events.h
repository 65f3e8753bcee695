// What the data plane reports. The proxy never logs; the coordinator turns these into metrics
// and log events. Called on the loop thread, synchronously; implementations must not re-enter
// the proxy from a callback other than through a deferred call.
#pragma once

#include <string_view>

#include "proxy/long_lived.h"

namespace lameduck::proxy {

enum class ProxyError {
  kNone,
  kBadRequest,           // malformed or smuggling-prone request: 400
  kHeadTooLarge,         // request head over --max-header-bytes: 431
  kHeaderTimeout,        // request head not complete within --header-timeout: 408
  kUpstreamConnect,      // refused, unreachable or connect timeout: 502
  kUpstreamTimeout,      // no response head within --upstream-timeout: 504
  kUpstreamBadResponse,  // malformed upstream response: 502
  kUpstreamClosed,       // upstream closed before or during the response: 502 or close
  kMethodNotAllowed,     // CONNECT: 405
  kVersionNotSupported,  // not HTTP/1.x: 505
  kUpstreamRefused,      // the app refused a stream it never processed (REFUSED_STREAM, or above
                         // its GOAWAY's last stream): retried once, for any method; then 502
  kUpstreamReset,        // the app reset an HTTP/2 stream (RST_STREAM): 502, or the same reset
  kProtocolAbuse,        // HTTP/2 rapid reset (CVE-2023-44487) or a frame flood: GOAWAY
                         // ENHANCE_YOUR_CALM, the connection closes
  kStalled,              // no progress either way for --idle-timeout: the connection closes
};

std::string_view ToString(ProxyError error);

// The protocol a client spoke: what /metrics breaks requests down by.
enum class Protocol { kHttp1, kHttp2 };
int StatusFor(ProxyError error);  // the status the client gets while no response head was sent

class ProxyEvents {
 public:
  virtual ~ProxyEvents() = default;
  virtual void OnConnectionOpened() {}
  virtual void OnConnectionClosed() {}
  // A connection has nothing left to do: its last response is written and it only waits for
  // the client's FIN (see DrainTarget's counts).
  virtual void OnConnectionFinished() {}
  // Every final response sent in full (an HTTP/2 stream's: its END_STREAM went out).
  virtual void OnResponseComplete(int /*status*/, Protocol /*protocol*/) {}
  virtual void OnProxyError(ProxyError /*error*/) {}
  // A long-lived exchange (WebSocket, SSE, gRPC stream, other tunnel) ended, and how.
  virtual void OnLongLivedEnded(LongLivedKind /*kind*/, LongLivedEnd /*how*/) {}
};

}  // namespace lameduck::proxy
