// The accept grace's evidence: the arrival rate before a drain, and the silence it asks for.
#include "coordinator/control/accept_grace.h"

#include <gtest/gtest.h>

#include <cmath>

namespace lameduck::coordinator {
namespace {

TEST(ArrivalRateTest, CountsSinceStartWhenThatIsShorterThanAMinute) {
  ArrivalRate rate(10'000);
  for (int i = 0; i < 100; ++i) rate.Record(10'000 + static_cast<uint64_t>(i) * 20);
  EXPECT_DOUBLE_EQ(rate.PerSecond(12'000), 50.0);  // 100 in the 2 s since start
}

TEST(ArrivalRateTest, ForgetsArrivalsOlderThanAMinute) {
  ArrivalRate rate(0);
  for (int i = 0; i < 600; ++i) rate.Record(1'000);  // long ago
  for (int i = 0; i < 60; ++i) rate.Record(100'000 + static_cast<uint64_t>(i) * 1'000);
  // The window is the current second and the 59 before it: 60 arrivals in 59.5 s.
  EXPECT_NEAR(rate.PerSecond(159'500), 60.0 / 59.5, 1e-9);
  EXPECT_DOUBLE_EQ(rate.PerSecond(400'000), 0.0);  // a quiet minute: no evidence
}

TEST(ArrivalRateTest, IsZeroBeforeAnyTimeHasPassed) {
  ArrivalRate rate(5'000);
  rate.Record(5'000);
  EXPECT_DOUBLE_EQ(rate.PerSecond(5'000), 0.0);
}

// A router with 5% of 100 connections/s sends one every 0.2 s on average; it stays silent for
// ln(1000)/5 = 1.38 s with probability 0.001.
TEST(QuietNeededTest, IsTheSilenceASmallRouterKeepsOnlyWithTheGivenRisk) {
  std::optional<uint64_t> quiet = QuietNeededMs(100.0, 0.05, 0.001);
  ASSERT_TRUE(quiet);
  EXPECT_EQ(*quiet, 1382u);
  EXPECT_LT(std::exp(-100.0 * 0.05 * static_cast<double>(*quiet) / 1000.0), 0.001);
  // Ten times busier, ten times shorter; a smaller share or risk, longer.
  EXPECT_EQ(*QuietNeededMs(1000.0, 0.05, 0.001), 139u);
  EXPECT_GT(*QuietNeededMs(100.0, 0.01, 0.001), *quiet);
  EXPECT_GT(*QuietNeededMs(100.0, 0.05, 0.0001), *quiet);
}

TEST(QuietNeededTest, NoSilenceIsEvidenceWithoutTraffic) {
  EXPECT_FALSE(QuietNeededMs(0.0, 0.05, 0.001));
}

}  // namespace
}  // namespace lameduck::coordinator
