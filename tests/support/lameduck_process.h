// LameduckProcess: the real lameduck binary as a child process, started with the given options
// (and --admin 127.0.0.1:0, --listen 127.0.0.1:0 unless given), its ports read from its start
// event, its event log kept for assertions.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/child_process.h"
#include "tests/support/test_client.h"

namespace lameduck::testing {

class LameduckProcess {
 public:
  // false if it did not log "start" within 5 s (its output is then in output()).
  bool Start(std::vector<std::string> args, std::vector<std::string> app = {});
  int port() const { return port_; }
  int admin_port() const { return admin_port_; }
  ChildProcess& process() { return process_; }

  // An admin request on a fresh connection, e.g. Admin("GET", "/ready").
  std::optional<HttpResponse> Admin(const std::string& method, const std::string& target,
                                    const std::string& extra_headers = "");
  // Polls /ready until it answers `status`; false at the deadline.
  bool WaitForReady(int status, std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // The next event named `event` in the log (reading on as needed); nullopt at the deadline.
  std::optional<nlohmann::json> WaitForEvent(const std::string& event,
                                             std::chrono::milliseconds timeout);
  // Every event it has logged so far (reads what is waiting first).
  std::vector<nlohmann::json> Events();
  std::optional<int> Wait(std::chrono::milliseconds timeout) { return process_.Wait(timeout); }
  // Every drain it completed accounts for every request and connection it met: the equations
  // of DrainAccounting, summed here from the fields of drain.complete (not taken from its
  // "balanced"). Failure names the drain and its numbers.
  ::testing::AssertionResult DrainsBalance();
  bool Signal(int signal) { return process_.Signal(signal); }

 private:
  ChildProcess process_;
  int port_ = 0;
  int admin_port_ = 0;
  size_t seen_ = 0;  // events in process_.output() already matched by WaitForEvent
};

}  // namespace lameduck::testing
