// Eventually(cond): polls cond every 5 ms until it holds (true) or the timeout passes (false),
// for tests that wait on something another thread or process does.
#pragma once

#include <chrono>
#include <thread>

namespace lameduck::testing {

template <typename Cond>
bool Eventually(Cond cond, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return cond();
}

}  // namespace lameduck::testing
