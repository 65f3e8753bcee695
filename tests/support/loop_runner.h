// LoopRunner: a libuv loop for unit tests of code that runs on one. RunUntil turns the loop
// until a condition holds (never a sleep), giving up at a deadline with a message naming what it
// waited for; the destructor runs the loop until every handle is closed, so a leaked handle
// hangs no test silently: it fails it.
#pragma once

#include <gtest/gtest.h>
#include <uv.h>

#include <chrono>
#include <functional>
#include <string_view>

namespace lameduck::testing {

class LoopRunner {
 public:
  LoopRunner() { uv_loop_init(&loop_); }
  ~LoopRunner() {
    // Close callbacks first; a handle still open after that was leaked by the code under test.
    for (int i = 0; i < 100 && uv_loop_alive(&loop_) != 0; ++i) uv_run(&loop_, UV_RUN_NOWAIT);
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "a libuv handle was left open";
  }
  LoopRunner(const LoopRunner&) = delete;
  LoopRunner& operator=(const LoopRunner&) = delete;

  uv_loop_t* loop() { return &loop_; }

  // Turns the loop for `duration`, whatever happens: for checking that something does not.
  void RunFor(std::chrono::milliseconds duration) {
    auto end = std::chrono::steady_clock::now() + duration;
    (void)RunUntil([&] { return std::chrono::steady_clock::now() >= end; }, duration * 2, "time");
  }

  ::testing::AssertionResult RunUntil(const std::function<bool()>& done,
                                      std::chrono::milliseconds timeout, std::string_view what) {
    uv_timer_t tick;  // keeps the loop turning while the code under test has nothing armed
    uv_timer_init(&loop_, &tick);
    uv_timer_start(
        &tick, [](uv_timer_t*) {}, 5, 5);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done() && std::chrono::steady_clock::now() < deadline) uv_run(&loop_, UV_RUN_ONCE);
    uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
    uv_run(&loop_, UV_RUN_NOWAIT);  // the tick's close callback: it lives on this stack
    if (done()) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << "gave up after " << timeout.count() << " ms waiting for " << what;
  }

 private:
  uv_loop_t loop_;
};

}  // namespace lameduck::testing
