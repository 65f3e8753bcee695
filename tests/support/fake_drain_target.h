// FakeDrainTarget: the proxy as the drain sees it (proxy/drain_target.h), without sockets. It
// records the calls in order and keeps the counts a test sets in `open`: the spread's steps take
// idle connections out (its first step is recorded as "close_idle", every step in `spread_steps`),
// forcing takes everything out and reports what it cut. The coordinator's tests
// of the drain, the admin API and the admin server all drive the DrainController against it.
#pragma once

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "proxy/drain_target.h"

namespace lameduck::testing {

class FakeDrainTarget : public proxy::DrainTarget {
 public:
  void StopAccepting() override { calls.push_back("stop_accepting"); }
  void CloseAfterCurrentResponse() override { calls.push_back("close_after_response"); }
  void ResumeKeepAlive() override { calls.push_back("resume_keep_alive"); }
  proxy::SpreadStep CloseSpread(size_t step, size_t steps) override {
    if (step == 1) {
      calls.push_back("close_idle");
      spread_idle_ = open.idle;
      spread_closed_ = 0;
    }
    spread_steps.push_back({step, steps, std::chrono::steady_clock::now()});
    size_t target =
        step >= steps ? spread_closed_ + open.idle : (spread_idle_ * step + steps - 1) / steps;
    size_t closed = std::min(open.idle, target - std::min(target, spread_closed_));
    open.connections -= closed;
    open.idle -= closed;
    spread_closed_ += closed;
    return {.idle_closed = closed};
  }
  size_t ForceCloseAll() override {
    calls.push_back("force_close");
    size_t forced = open.connections;
    open = {};
    return forced;
  }
  proxy::ProxyCounts counts() const override { return open; }

  proxy::ProxyCounts open;
  std::vector<std::string> calls;
  struct Step {
    size_t step;
    size_t steps;
    std::chrono::steady_clock::time_point at;
  };
  std::vector<Step> spread_steps;

 private:
  size_t spread_idle_ = 0;
  size_t spread_closed_ = 0;
};

}  // namespace lameduck::testing
