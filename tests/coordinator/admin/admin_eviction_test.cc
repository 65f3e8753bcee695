// ChooseEvictions, the admin server's policy over its connection cap, from facts alone: an idle
// flood goes first, then slowloris connections, then young ones without a whole head waiting,
// and a probe (a head waiting, being answered, or waiting for the drain) only when nothing else
// is left, the newest then.
#include "coordinator/admin/admin_eviction.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <vector>

namespace lameduck::coordinator {
namespace {

constexpr uint64_t kNow = 10'000;
constexpr EvictionLimits kLimits{.max_connections = 2, .silent_grace_ms = 100};

AdminConnectionFacts Silent(uint64_t age_ms) {
  return {.awaiting_head = true, .received_any = false, .accepted_ms = kNow - age_ms};
}
AdminConnectionFacts Slowloris() {
  return {.awaiting_head = true, .received_any = true, .accepted_ms = kNow - 1000};
}
AdminConnectionFacts Answered() {  // being answered or waiting for the drain
  return {.awaiting_head = false, .received_any = true, .accepted_ms = kNow - 1000};
}

auto NoHeadWaiting = [](size_t) { return false; };

TEST(ChooseEvictionsTest, NothingAtOrUnderTheCap) {
  EXPECT_TRUE(ChooseEvictions({Silent(500), Silent(500)}, kLimits, kNow, NoHeadWaiting).empty());
  EXPECT_TRUE(ChooseEvictions({}, kLimits, kNow, NoHeadWaiting).empty());
}

TEST(ChooseEvictionsTest, TheOldestSilentConnectionsGoFirst) {
  std::vector<AdminConnectionFacts> open = {Slowloris(), Silent(500), Silent(300), Silent(200)};
  EXPECT_EQ(ChooseEvictions(open, kLimits, kNow, NoHeadWaiting), (std::vector<size_t>{1, 2}));
}

TEST(ChooseEvictionsTest, SlowlorisGoesBeforeAYoungSilentConnection) {
  // The young one may be a probe whose request is on its way.
  std::vector<AdminConnectionFacts> open = {Silent(10), Slowloris(), Answered()};
  EXPECT_EQ(ChooseEvictions(open, kLimits, kNow, NoHeadWaiting), (std::vector<size_t>{1}));
}

TEST(ChooseEvictionsTest, AYoungConnectionWithAHeadWaitingIsSpared) {
  std::vector<AdminConnectionFacts> open = {Silent(10), Silent(20), Answered()};
  auto head_waiting = [](size_t i) { return i == 0; };
  EXPECT_EQ(ChooseEvictions(open, kLimits, kNow, head_waiting), (std::vector<size_t>{1}));
}

TEST(ChooseEvictionsTest, TheNewestGoesOnlyWhenNothingElseIsLeft) {
  std::vector<AdminConnectionFacts> open = {Answered(), Answered(), Silent(5)};
  auto head_waiting = [](size_t) { return true; };
  EXPECT_EQ(ChooseEvictions(open, kLimits, kNow, head_waiting), (std::vector<size_t>{2}));
  std::vector<AdminConnectionFacts> all_answered = {Answered(), Answered(), Answered(), Answered()};
  EXPECT_EQ(ChooseEvictions(all_answered, kLimits, kNow, NoHeadWaiting),
            (std::vector<size_t>{3, 2}));
}

TEST(ChooseEvictionsTest, AsksAboutWaitingHeadsOnlyWhenTheCheapFactsDoNotDecide) {
  std::vector<AdminConnectionFacts> open = {Silent(500), Slowloris(), Silent(10)};
  int asked = 0;
  auto counting = [&](size_t) {
    ++asked;
    return false;
  };
  EXPECT_EQ(ChooseEvictions(open, kLimits, kNow, counting), (std::vector<size_t>{0}));
  EXPECT_EQ(asked, 0);
}

TEST(ChooseEvictionsTest, ChoosesEachConnectionOnceAndExactlyTheExcess) {
  std::vector<AdminConnectionFacts> open(10, Silent(500));
  open[3] = Slowloris();
  open[7] = Answered();
  std::vector<size_t> doomed = ChooseEvictions(open, kLimits, kNow, NoHeadWaiting);
  EXPECT_EQ(doomed.size(), 8u);
  EXPECT_EQ(std::set<size_t>(doomed.begin(), doomed.end()).size(), 8u);
  EXPECT_EQ(std::count(doomed.begin(), doomed.end(), 7u), 0);  // the one being answered stays
}

}  // namespace
}  // namespace lameduck::coordinator
