// The data plane's settings, already validated (coordinator/config parses and checks them).
#pragma once

#include <chrono>
#include <cstddef>
#include <vector>

#include "proxy/address.h"

namespace lameduck::proxy {

// What the app is spoken to in (--upstream-protocol): kAuto keeps the client's protocol; kHttp1
// and kH2c speak one to the app whatever the client spoke.
enum class UpstreamProtocol { kAuto, kHttp1, kH2c };
// What the drain does with a long-lived exchange (--drain-websocket, --drain-sse): end it at a
// message boundary, or leave it to finish on its own (or at --drain-timeout), for an app that
// closes its own.
enum class LongLivedDrain { kClose, kWait };

struct ProxyOptions {
  std::vector<Address> listen;  // at least one
  Address upstream;
  std::chrono::milliseconds header_timeout{10'000};    // request head must arrive within (408)
  std::chrono::milliseconds idle_timeout{60'000};      // idle keep-alive client, stalled transfer
  std::chrono::milliseconds connect_timeout{5'000};    // upstream connect (502)
  std::chrono::milliseconds upstream_timeout{60'000};  // upstream response head (504)
  size_t max_header_bytes = 64 * 1024;                 // request head limit (431)
  size_t max_connections = 10'000;                     // beyond: wait in the listen backlog
  UpstreamProtocol upstream_protocol = UpstreamProtocol::kAuto;
  // Every TCP listener sets SO_REUSEPORT: with --workers, each worker binds the same ports.
  bool reuse_port = false;
  LongLivedDrain drain_websocket = LongLivedDrain::kClose;  // Close 1001 after a whole message
  LongLivedDrain drain_sse = LongLivedDrain::kClose;        // the body ends after a whole event
  LongLivedDrain drain_grpc = LongLivedDrain::kClose;       // UNAVAILABLE after a whole message
};

}  // namespace lameduck::proxy
