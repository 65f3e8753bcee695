// Everything a drain may ask of the data plane. The coordinator drives the proxy only through
// this interface; a fake of it tests the drain without sockets.
#pragma once

#include <cstddef>

namespace lameduck::proxy {

struct ProxyCounts {
  // Open client connections that still owe something (idle and upgraded ones included); not
  // those whose last response is written and that only wait for the client's FIN.
  size_t connections = 0;
  size_t finishing = 0;  // those: closed at once by ForceCloseAll, not counted as forced
  size_t in_flight = 0;  // requests whose head arrived and whose response is not yet complete
  size_t idle = 0;       // keep-alive client connections waiting for a next request
  size_t upgraded = 0;   // tunnels (WebSocket) after a 101
  // Of the above, HTTP/2: sessions counted in `connections` (idle ones in `idle` too), and their
  // open streams, each also a request in `in_flight`.
  size_t http2_connections = 0;
  size_t http2_streams = 0;
};

class DrainTarget {
 public:
  virtual ~DrainTarget() = default;
  virtual void StopAccepting() = 0;              // close the listeners
  virtual void CloseAfterCurrentResponse() = 0;  // every connection, from now on
  // Closes idle keep-alive connections (lingering: FIN, then read until the client's); one that
  // turns out to hold request bytes serves them first and is not counted. Returns how many.
  virtual size_t CloseIdleConnections() = 0;
  virtual size_t ForceCloseAll() = 0;  // how many client connections it cut short
  virtual ProxyCounts counts() const = 0;
};

}  // namespace lameduck::proxy
