// Metrics: the lameduck_state family lists every State, derived from the enum.
#include "coordinator/control/metrics.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "coordinator/control/drain_controller.h"

namespace lameduck::coordinator {
namespace {

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

TEST(MetricsTest, RendersEveryStateWithOneSetToOne) {
  Metrics metrics;
  for (State current : kAllStates) {
    SCOPED_TRACE(ToString(current));
    Metrics::Gauges gauges;
    gauges.state = ToString(current);
    std::string text = metrics.Render(gauges);
    for (State state : kAllStates) {
      std::string line = "lameduck_state{state=\"" + std::string(ToString(state)) + "\"} " +
                         (state == current ? "1" : "0") + "\n";
      EXPECT_NE(text.find(line), std::string::npos) << line;
    }
  }
}

}  // namespace
}  // namespace lameduck::coordinator
