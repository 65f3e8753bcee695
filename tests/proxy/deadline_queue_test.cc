// Unit tests of DeadlineQueue on a real loop: order, re-arming, stopping, and callbacks that
// change the queue under it.
#include "proxy/deadline_queue.h"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <vector>

#include "tests/support/loop_runner.h"

namespace lameduck::proxy {
namespace {

using namespace std::chrono_literals;

class Timeout final : public DeadlineQueue::Entry {
 public:
  Timeout(int id, std::vector<int>& fired) : id_(id), fired_(fired) {}
  std::function<void()> then;  // run when it fires

 private:
  void OnDeadline() override {
    fired_.push_back(id_);
    if (then) then();
  }
  int id_;
  std::vector<int>& fired_;
};

TEST(DeadlineQueueTest, FiresInDeadlineOrderWhateverTheOrderOfArming) {
  testing::LoopRunner runner;
  {
    DeadlineQueue queue(runner.loop());
    std::vector<int> fired;
    std::vector<std::unique_ptr<Timeout>> timeouts;
    const uint64_t delays[] = {60, 10, 50, 20, 40, 30, 5, 55};
    for (int i = 0; i < 8; ++i) {
      timeouts.push_back(std::make_unique<Timeout>(static_cast<int>(delays[i]), fired));
      queue.Start(*timeouts.back(), delays[i]);
    }
    EXPECT_EQ(queue.size(), 8u);
    ASSERT_TRUE(runner.RunUntil([&] { return fired.size() == 8; }, 5s, "every timeout"));
    EXPECT_EQ(fired, (std::vector<int>{5, 10, 20, 30, 40, 50, 55, 60}));
    EXPECT_EQ(queue.size(), 0u);
    for (const auto& timeout : timeouts) EXPECT_FALSE(timeout->armed());
  }
}

TEST(DeadlineQueueTest, RearmingMovesADeadlineBothWaysAndStopCancelsIt) {
  testing::LoopRunner runner;
  {
    DeadlineQueue queue(runner.loop());
    std::vector<int> fired;
    Timeout a(1, fired), b(2, fired), c(3, fired);
    queue.Start(a, 20);
    queue.Start(b, 40);
    queue.Start(c, 60);
    queue.Start(a, 80);  // later than the others now
    queue.Start(c, 10);  // earlier
    queue.Stop(b);
    queue.Stop(b);  // a no-op when not armed
    EXPECT_FALSE(b.armed());
    ASSERT_TRUE(runner.RunUntil([&] { return fired.size() == 2; }, 5s, "two timeouts"));
    EXPECT_EQ(fired, (std::vector<int>{3, 1}));
    runner.RunFor(60ms);
    EXPECT_EQ(fired.size(), 2u) << "the stopped one fired";
  }
}

TEST(DeadlineQueueTest, ACallbackMayRearmItselfAndStopAnotherThatIsDueToo) {
  testing::LoopRunner runner;
  {
    DeadlineQueue queue(runner.loop());
    std::vector<int> fired;
    Timeout a(1, fired), b(2, fired);
    int rearms = 0;
    a.then = [&] {
      queue.Stop(b);  // due in the same turn: it must not fire
      if (++rearms < 3) queue.Start(a, 5);
    };
    queue.Start(a, 10);
    queue.Start(b, 10);
    ASSERT_TRUE(runner.RunUntil([&] { return rearms == 3; }, 5s, "three firings"));
    EXPECT_EQ(fired, (std::vector<int>{1, 1, 1}));
    EXPECT_EQ(queue.size(), 0u);
  }
}

TEST(DeadlineQueueTest, AnEmptyQueueKeepsNoTimerRunning) {
  testing::LoopRunner runner;
  {
    DeadlineQueue queue(runner.loop());
    std::vector<int> fired;
    Timeout a(1, fired);
    queue.Start(a, 60'000);
    queue.Stop(a);
    // A timer left armed for the minute would keep the loop alive: uv_run would block.
    uv_run(runner.loop(), UV_RUN_DEFAULT);
    EXPECT_TRUE(fired.empty());
  }
}

}  // namespace
}  // namespace lameduck::proxy
