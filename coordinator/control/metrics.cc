#include "coordinator/control/metrics.h"

#include <charconv>

#include "coordinator/control/drain_controller.h"

namespace lameduck::coordinator {
namespace {

void Family(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void Sample(std::string& out, const char* name, std::string_view labels, double value) {
  // The shortest text that reads back as the same double: 6.69, not 6.6900000000000004.
  char number[32];
  auto [end, ec] = std::to_chars(number, number + sizeof(number), value);
  out += name;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
  out.append(number, end);
  out += '\n';
}

void Gauge(std::string& out, const char* name, const char* help, double value) {
  Family(out, name, "gauge", help);
  Sample(out, name, "", value);
}

void Counter(std::string& out, const char* name, const char* help, double value) {
  Family(out, name, "counter", help);
  Sample(out, name, "", value);
}

bool IsUpstreamError(proxy::ProxyError error) {
  return error == proxy::ProxyError::kUpstreamConnect ||
         error == proxy::ProxyError::kUpstreamTimeout ||
         error == proxy::ProxyError::kUpstreamBadResponse ||
         error == proxy::ProxyError::kUpstreamClosed ||
         error == proxy::ProxyError::kUpstreamRefused || error == proxy::ProxyError::kUpstreamReset;
}

}  // namespace

void Metrics::OnResponseComplete(int status, proxy::Protocol protocol) {
  ++responses_total_;
  ++by_protocol_[static_cast<size_t>(protocol)];
  int status_class = status / 100;
  if (status_class >= 1 && status_class <= 5) ++by_class_[static_cast<size_t>(status_class)];
}

void Metrics::OnProxyError(proxy::ProxyError error) { ++errors_[static_cast<size_t>(error)]; }

void Metrics::ErrorSamples(std::string& out, const char* family, ErrorSide side) const {
  for (size_t i = 1; i < kErrorKinds; ++i) {
    auto error = static_cast<proxy::ProxyError>(i);
    if (IsUpstreamError(error) != (side == ErrorSide::kUpstream)) continue;
    std::string_view kind = proxy::ToString(error);
    if (kind.starts_with("upstream_")) kind.remove_prefix(9);
    Sample(out, family, "kind=\"" + std::string(kind) + "\"", static_cast<double>(errors_[i]));
  }
}

std::string Metrics::Render(const Gauges& gauges) const {
  std::string out;
  out.reserve(4096);
  Gauge(out, "lameduck_connections_open", "Client connections open now.",
        static_cast<double>(gauges.counts.connections));
  Gauge(out, "lameduck_connections_idle", "Keep-alive client connections waiting for a request.",
        static_cast<double>(gauges.counts.idle));
  Gauge(out, "lameduck_connections_upgraded", "Client connections tunnelled after a 101.",
        static_cast<double>(gauges.counts.upgraded));
  Gauge(out, "lameduck_requests_in_flight", "Requests whose response is not yet complete.",
        static_cast<double>(gauges.counts.in_flight));
  Counter(out, "lameduck_connections_accepted_total", "Client connections accepted.",
          static_cast<double>(connections_total_));
  Gauge(out, "lameduck_http2_connections_open",
        "Client connections speaking HTTP/2 now (counted in lameduck_connections_open too).",
        static_cast<double>(gauges.counts.http2_connections));
  Gauge(out, "lameduck_http2_streams_open",
        "HTTP/2 streams open now (counted in lameduck_requests_in_flight too).",
        static_cast<double>(gauges.counts.http2_streams));
  constexpr proxy::LongLivedKind kKinds[] = {
      proxy::LongLivedKind::kWebSocket, proxy::LongLivedKind::kSse,
      proxy::LongLivedKind::kGrpcStream, proxy::LongLivedKind::kOtherUpgrade};
  constexpr proxy::LongLivedEnd kEnds[] = {
      proxy::LongLivedEnd::kClean, proxy::LongLivedEnd::kByPeer, proxy::LongLivedEnd::kForced};
  Family(out, "lameduck_long_lived_open", "gauge",
         "Long-lived exchanges open now: WebSockets, SSE responses, gRPC streams, other tunnels.");
  for (proxy::LongLivedKind kind : kKinds) {
    Sample(out, "lameduck_long_lived_open", "kind=\"" + std::string(ToString(kind)) + "\"",
           static_cast<double>(gauges.counts.long_lived[static_cast<size_t>(kind)]));
  }
  Family(out, "lameduck_long_lived_ended_total", "counter",
         "Long-lived exchanges ended, by kind and how: clean (lameduck ended it at a message "
         "boundary), by_peer (the client or the app did), forced (at --drain-timeout).");
  for (proxy::LongLivedKind kind : kKinds) {
    for (proxy::LongLivedEnd how : kEnds) {
      Sample(
          out, "lameduck_long_lived_ended_total",
          "kind=\"" + std::string(ToString(kind)) + "\",how=\"" + std::string(ToString(how)) + "\"",
          static_cast<double>(
              long_lived_ended_[static_cast<size_t>(kind)][static_cast<size_t>(how)]));
    }
  }
  Family(out, "lameduck_requests_total", "counter",
         "Responses sent in full to clients, by the protocol the client spoke.");
  Sample(out, "lameduck_requests_total", "protocol=\"http1\"",
         static_cast<double>(by_protocol_[0]));
  Sample(out, "lameduck_requests_total", "protocol=\"http2\"",
         static_cast<double>(by_protocol_[1]));

  Family(out, "lameduck_responses_total", "counter",
         "Responses sent in full to clients, by status class (lameduck's own errors included).");
  static constexpr const char* kClasses[] = {"", "1xx", "2xx", "3xx", "4xx", "5xx"};
  for (size_t i = 1; i <= 5; ++i) {
    Sample(out, "lameduck_responses_total", std::string("code=\"") + kClasses[i] + "\"",
           static_cast<double>(by_class_[i]));
  }

  Family(out, "lameduck_upstream_errors_total", "counter",
         "Failures talking to the app, by kind: connect (refused, unreachable, timed out), "
         "timeout (no response head in time), bad_response, closed (mid-exchange).");
  ErrorSamples(out, "lameduck_upstream_errors_total", ErrorSide::kUpstream);
  Family(out, "lameduck_client_errors_total", "counter",
         "Requests refused or cut, by kind: bad_request, head_too_large, header_timeout, "
         "method_not_allowed, version_not_supported, stalled.");
  ErrorSamples(out, "lameduck_client_errors_total", ErrorSide::kClient);

  Family(out, "lameduck_state", "gauge", "1 for the lifecycle state lameduck is in.");
  for (State state : kAllStates) {
    std::string_view name = ToString(state);
    Sample(out, "lameduck_state", "state=\"" + std::string(name) + "\"",
           gauges.state == name ? 1 : 0);
  }
  Gauge(out, "lameduck_ready", "1 while /ready answers 200.", gauges.ready ? 1 : 0);
  Counter(out, "lameduck_drains_total", "Drains completed.",
          static_cast<double>(gauges.drains_total));
  Gauge(out, "lameduck_last_drain_duration_seconds",
        "How long the last drain took, from its start to the last connection closing.",
        gauges.last_drain_seconds);
  Gauge(out, "lameduck_last_drain_forced_connections",
        "Connections the last drain force-closed at --drain-timeout.",
        static_cast<double>(gauges.last_drain_forced));
  Counter(out, "lameduck_forced_connections_total", "Connections force-closed by drains.",
          static_cast<double>(gauges.forced_total));
  Gauge(out, "lameduck_uptime_seconds", "Seconds since lameduck started.", gauges.uptime_seconds);
  return out;
}

}  // namespace lameduck::coordinator
