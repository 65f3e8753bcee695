// FakeDrainTarget: the proxy as the drain sees it (proxy/drain_target.h), without sockets. It
// records the calls in order and keeps the counts a test sets in `open`: closing idle connections
// takes them out, forcing takes everything out and reports what it cut. The coordinator's tests
// of the drain, the admin API and the admin server all drive the DrainController against it.
#pragma once

#include <string>
#include <vector>

#include "proxy/drain_target.h"

namespace lameduck::testing {

class FakeDrainTarget : public proxy::DrainTarget {
 public:
  void StopAccepting() override { calls.push_back("stop_accepting"); }
  void CloseAfterCurrentResponse() override { calls.push_back("close_after_response"); }
  size_t CloseIdleConnections() override {
    calls.push_back("close_idle");
    size_t closed = open.idle;
    open.connections -= open.idle;
    open.idle = 0;
    return closed;
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
};

}  // namespace lameduck::testing
