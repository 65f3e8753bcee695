// Everything a drain may ask of the data plane. The coordinator drives the proxy only through
// this interface; a fake of it tests the drain without sockets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>

#include "proxy/long_lived.h"

namespace lameduck::proxy {

// How a client connection stopped owing anything (ProxyTally).
enum class ConnectionEnd : uint8_t {
  kAfterResponse,  // lameduck closed it (or shut its write side) after its last response
  kIdle,           // lameduck closed it idle: the drain, --idle-timeout, no first request
  kLongLived,      // its long-lived exchange ended cleanly (WebSocket Close 1001, SSE end)
  kByClient,       // the client closed or reset it, or it failed
  kForced,         // cut at --drain-timeout
};

// What became of every request and client connection since start, cumulative. Every request
// that arrived is in exactly one ending or still in flight; every accepted connection in
// exactly one ending or still open (ProxyCounts::connections). A drain's accounting is the
// difference between its end and its start; the tests assert that it balances.
struct ProxyTally {
  uint64_t requests = 0;         // arrived: HTTP/1 request heads, HTTP/2 streams (refused too)
  uint64_t completed = 0;        // response complete; the connection stays for more
  uint64_t completed_close = 0;  // response complete; the connection closes after it (HTTP/2:
                                 // the session had been told GOAWAY)
  uint64_t refused = 0;          // HTTP/2 streams refused (REFUSED_STREAM) after the final GOAWAY
  uint64_t aborted = 0;          // ended without a whole response: the client left, or a failure
  uint64_t requests_forced = 0;  // cut at --drain-timeout
  uint64_t accepted = 0;         // client connections
  uint64_t ended[5] = {};        // connections, by ConnectionEnd

  uint64_t& ended_by(ConnectionEnd how) { return ended[static_cast<size_t>(how)]; }
  uint64_t ended_by(ConnectionEnd how) const { return ended[static_cast<size_t>(how)]; }
  // Every request and connection that ended, however: with those still in flight or open,
  // these equal `requests` and `accepted`.
  uint64_t requests_ended() const {
    return completed + completed_close + refused + aborted + requests_forced;
  }
  uint64_t connections_ended() const {
    uint64_t sum = 0;
    for (uint64_t count : ended) sum += count;
    return sum;
  }
  bool operator==(const ProxyTally&) const = default;
  ProxyTally& operator+=(const ProxyTally& other) {
    requests += other.requests;
    completed += other.completed;
    completed_close += other.completed_close;
    refused += other.refused;
    aborted += other.aborted;
    requests_forced += other.requests_forced;
    accepted += other.accepted;
    for (size_t i = 0; i < std::size(ended); ++i) ended[i] += other.ended[i];
    return *this;
  }
};

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
  // Long-lived exchanges open now, by LongLivedKind (WebSockets and other tunnels are also in
  // `upgraded`; SSE responses and gRPC streams in `in_flight`).
  size_t long_lived[kLongLivedKinds] = {};
  ProxyTally tally = {};

  bool operator==(const ProxyCounts&) const = default;
  ProxyCounts& operator+=(const ProxyCounts& other) {
    connections += other.connections;
    finishing += other.finishing;
    in_flight += other.in_flight;
    idle += other.idle;
    upgraded += other.upgraded;
    http2_connections += other.http2_connections;
    http2_streams += other.http2_streams;
    for (size_t i = 0; i < kLongLivedKinds; ++i) long_lived[i] += other.long_lived[i];
    tally += other.tally;
    return *this;
  }
};

// What one step of the drain's spread did.
struct SpreadStep {
  size_t idle_closed = 0;  // idle keep-alive connections closed
  // Long-lived exchanges told to end at their next boundary, by LongLivedKind.
  size_t long_lived_ending[kLongLivedKinds] = {};
  SpreadStep& operator+=(const SpreadStep& other) {
    idle_closed += other.idle_closed;
    for (size_t i = 0; i < kLongLivedKinds; ++i) long_lived_ending[i] += other.long_lived_ending[i];
    return *this;
  }
};

class DrainTarget {
 public:
  virtual ~DrainTarget() = default;
  virtual void StopAccepting() = 0;              // close the listeners
  virtual void CloseAfterCurrentResponse() = 0;  // every connection, from now on
  // Undoes CloseAfterCurrentResponse (a drain cancelled in its accept grace): responses keep
  // connections alive again. HTTP/2 sessions told GOAWAY still end; their clients reconnect.
  virtual void ResumeKeepAlive() = 0;
  // The closes at the end of the accept grace, spread out (--drain-spread): idle keep-alive
  // connections close (lingering: FIN, then read until the client's; one that turns out to hold
  // request bytes serves them first and is not counted), and long-lived exchanges end at their
  // next message boundary (a WebSocket's Close 1001, an SSE stream's event end). Called for
  // step = 1..steps: by step k, k/steps of those there were at step 1 have been acted on; the
  // last acts on all that remain, and from then on a long-lived exchange ends as it begins.
  virtual SpreadStep CloseSpread(size_t step, size_t steps) = 0;
  virtual size_t ForceCloseAll() = 0;  // how many client connections it cut short
  virtual ProxyCounts counts() const = 0;
  // counts() as of now on every worker, not as last reported (waits for each): for a drain's
  // accounting, at its start and end.
  virtual ProxyCounts counts_now() { return counts(); }
};

}  // namespace lameduck::proxy
