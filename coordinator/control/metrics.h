// Metrics: counts what the proxy reports (ProxyEventFanout passes its events on) and renders
// everything lameduck knows as Prometheus text exposition format 0.0.4. Counters only grow; gauges
// are read when rendered. No labels beyond status class, protocol and error kind: cardinality
// stays fixed.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "proxy/drain_target.h"
#include "proxy/proxy_events.h"

namespace lameduck::coordinator {

class Metrics {
 public:
  // What the proxy reports, passed on by ProxyEventFanout.
  void OnConnectionOpened() { ++connections_total_; }
  void OnResponseComplete(int status, proxy::Protocol protocol = proxy::Protocol::kHttp1);
  void OnProxyError(proxy::ProxyError error);
  void OnLongLivedEnded(proxy::LongLivedKind kind, proxy::LongLivedEnd how) {
    ++long_lived_ended_[static_cast<size_t>(kind)][static_cast<size_t>(how)];
  }

  uint64_t responses_total() const { return responses_total_; }

  // What the coordinator adds to the proxy's own counters.
  struct Gauges {
    proxy::ProxyCounts counts;
    std::string_view state;  // starting, ready, draining, drained, ...
    bool ready = false;
    double uptime_seconds = 0;
    uint64_t drains_total = 0;
    uint64_t forced_total = 0;
    double last_drain_seconds = 0;  // 0 before the first drain
    uint64_t last_drain_forced = 0;
  };
  std::string Render(const Gauges& gauges) const;

 private:
  enum class ErrorSide { kUpstream, kClient };  // which family an error kind is counted in
  void ErrorSamples(std::string& out, const char* family, ErrorSide side) const;
  static constexpr size_t kErrorKinds = static_cast<size_t>(proxy::ProxyError::kStalled) + 1;
  uint64_t connections_total_ = 0;
  uint64_t responses_total_ = 0;
  std::array<uint64_t, 6> by_class_{};     // index 1..5 for 1xx..5xx
  std::array<uint64_t, 2> by_protocol_{};  // by proxy::Protocol
  std::array<uint64_t, kErrorKinds> errors_{};
  std::array<std::array<uint64_t, proxy::kLongLivedEnds>, proxy::kLongLivedKinds>
      long_lived_ended_{};
};

}  // namespace lameduck::coordinator
