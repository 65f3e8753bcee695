// Metrics: what the proxy reports (connections, responses by status class, errors by kind)
// appears in the Prometheus text under the right names and values, and every lifecycle state
// has its lameduck_state sample, 1 for the current one only.
#include "coordinator/control/metrics.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "coordinator/control/drain_controller.h"

namespace lameduck::coordinator {
namespace {

::testing::AssertionResult HasLine(const std::string& text, const std::string& line) {
  if (text.find("\n" + line + "\n") != std::string::npos || text.starts_with(line + "\n")) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "no line \"" << line << "\" in:\n" << text;
}

TEST(MetricsTest, CountsConnectionsAndResponsesByStatusClass) {
  Metrics metrics;
  metrics.OnConnectionOpened();
  metrics.OnConnectionOpened();
  for (int status : {200, 204, 301, 404, 502, 503, 101}) metrics.OnResponseComplete(status);
  std::string text = metrics.Render({});
  EXPECT_TRUE(HasLine(text, "# TYPE lameduck_connections_accepted_total counter"));
  EXPECT_TRUE(HasLine(text, "lameduck_connections_accepted_total 2"));
  EXPECT_TRUE(HasLine(text, "# TYPE lameduck_responses_total counter"));
  EXPECT_TRUE(HasLine(text, "lameduck_responses_total{code=\"1xx\"} 1"));
  EXPECT_TRUE(HasLine(text, "lameduck_responses_total{code=\"2xx\"} 2"));
  EXPECT_TRUE(HasLine(text, "lameduck_responses_total{code=\"3xx\"} 1"));
  EXPECT_TRUE(HasLine(text, "lameduck_responses_total{code=\"4xx\"} 1"));
  EXPECT_TRUE(HasLine(text, "lameduck_responses_total{code=\"5xx\"} 2"));
  EXPECT_EQ(metrics.responses_total(), 7u);
}

TEST(MetricsTest, ErrorsAppearByKindUnderUpstreamOrClient) {
  Metrics metrics;
  metrics.OnProxyError(proxy::ProxyError::kUpstreamConnect);
  metrics.OnProxyError(proxy::ProxyError::kUpstreamConnect);
  metrics.OnProxyError(proxy::ProxyError::kUpstreamTimeout);
  metrics.OnProxyError(proxy::ProxyError::kHeaderTimeout);
  metrics.OnProxyError(proxy::ProxyError::kHeadTooLarge);
  std::string text = metrics.Render({});
  EXPECT_TRUE(HasLine(text, "lameduck_upstream_errors_total{kind=\"connect\"} 2"));
  EXPECT_TRUE(HasLine(text, "lameduck_upstream_errors_total{kind=\"timeout\"} 1"));
  EXPECT_TRUE(HasLine(text, "lameduck_upstream_errors_total{kind=\"bad_response\"} 0"));
  EXPECT_TRUE(HasLine(text, "lameduck_upstream_errors_total{kind=\"closed\"} 0"));
  EXPECT_TRUE(HasLine(text, "lameduck_client_errors_total{kind=\"header_timeout\"} 1"));
  EXPECT_TRUE(HasLine(text, "lameduck_client_errors_total{kind=\"head_too_large\"} 1"));
  EXPECT_TRUE(HasLine(text, "lameduck_client_errors_total{kind=\"bad_request\"} 0"));
}

TEST(MetricsTest, GaugesComeFromWhatTheCoordinatorPassesIn) {
  Metrics metrics;
  Metrics::Gauges gauges;
  gauges.counts = {.connections = 5, .in_flight = 3, .idle = 2, .upgraded = 1};
  gauges.ready = true;
  gauges.uptime_seconds = 6.5;
  gauges.drains_total = 1;
  gauges.forced_total = 4;
  gauges.last_drain_seconds = 2.25;
  gauges.last_drain_forced = 4;
  std::string text = metrics.Render(gauges);
  EXPECT_TRUE(HasLine(text, "lameduck_connections_open 5"));
  EXPECT_TRUE(HasLine(text, "lameduck_requests_in_flight 3"));
  EXPECT_TRUE(HasLine(text, "lameduck_connections_idle 2"));
  EXPECT_TRUE(HasLine(text, "lameduck_connections_upgraded 1"));
  EXPECT_TRUE(HasLine(text, "lameduck_ready 1"));
  EXPECT_TRUE(HasLine(text, "lameduck_uptime_seconds 6.5"));
  EXPECT_TRUE(HasLine(text, "lameduck_drains_total 1"));
  EXPECT_TRUE(HasLine(text, "lameduck_forced_connections_total 4"));
  EXPECT_TRUE(HasLine(text, "lameduck_last_drain_duration_seconds 2.25"));
  EXPECT_TRUE(HasLine(text, "lameduck_last_drain_forced_connections 4"));
}

TEST(MetricsTest, LongLivedExchangesAppearByKindAndByHowTheyEnded) {
  Metrics metrics;
  metrics.OnLongLivedEnded(proxy::LongLivedKind::kWebSocket, proxy::LongLivedEnd::kClean);
  metrics.OnLongLivedEnded(proxy::LongLivedKind::kWebSocket, proxy::LongLivedEnd::kClean);
  metrics.OnLongLivedEnded(proxy::LongLivedKind::kGrpcStream, proxy::LongLivedEnd::kForced);
  Metrics::Gauges gauges;
  gauges.counts.long_lived[static_cast<size_t>(proxy::LongLivedKind::kSse)] = 3;
  std::string text = metrics.Render(gauges);
  EXPECT_TRUE(HasLine(text, "# TYPE lameduck_long_lived_open gauge"));
  EXPECT_TRUE(HasLine(text, "lameduck_long_lived_open{kind=\"sse\"} 3"));
  EXPECT_TRUE(HasLine(text, "lameduck_long_lived_open{kind=\"websocket\"} 0"));
  EXPECT_TRUE(HasLine(text, "# TYPE lameduck_long_lived_ended_total counter"));
  EXPECT_TRUE(HasLine(text, "lameduck_long_lived_ended_total{kind=\"websocket\",how=\"clean\"} 2"));
  EXPECT_TRUE(
      HasLine(text, "lameduck_long_lived_ended_total{kind=\"grpc_stream\",how=\"forced\"} 1"));
  EXPECT_TRUE(HasLine(text, "lameduck_long_lived_ended_total{kind=\"upgrade\",how=\"by_peer\"} 0"));
}

TEST(AllStatesTest, ListsEveryStateOnceInOrder) {
  std::set<std::string_view> names;
  for (size_t i = 0; i < std::size(kAllStates); ++i) {
    EXPECT_EQ(static_cast<size_t>(kAllStates[i]), i);
    std::string_view name = ToString(kAllStates[i]);
    EXPECT_NE(name, "unknown");
    EXPECT_TRUE(names.insert(name).second) << name;
  }
  // A State added after the last one listed would have a name (-Wswitch makes ToString cover
  // it): the value after the list must have none.
  EXPECT_EQ(ToString(static_cast<State>(std::size(kAllStates))), "unknown");
}

TEST(MetricsTest, EveryLifecycleStateHasASampleAndOnlyTheCurrentOneIs1) {
  Metrics metrics;
  for (State current : kAllStates) {
    Metrics::Gauges gauges;
    gauges.state = ToString(current);
    std::string text = metrics.Render(gauges);
    for (State state : kAllStates) {
      std::string line = "lameduck_state{state=\"" + std::string(ToString(state)) + "\"} " +
                         (state == current ? "1" : "0");
      EXPECT_TRUE(HasLine(text, line)) << "current state " << ToString(current);
    }
  }
}

}  // namespace
}  // namespace lameduck::coordinator
