// The documented defaults (DESIGN.md "Command line") that more than the server's own Config
// needs: `lameduck drain` finds the admin API by them, `lameduck inject` writes them into the pod
// spec, and the usage texts print them. One table, so that a default changed here changes
// everywhere (issue 9: inject carried its own copies).
#pragma once

#include <chrono>

namespace lameduck::coordinator {

struct Defaults {
  int listen_port = 8080;    // --listen 0.0.0.0:8080
  int upstream_port = 3000;  // --upstream 127.0.0.1:3000
  int admin_port = 9901;     // --admin 0.0.0.0:9901; where `drain` and the probes find it
  std::chrono::milliseconds drain_delay{5'000};
  std::chrono::milliseconds drain_timeout{25'000};
  std::chrono::milliseconds drain_spread{1'000};
  std::chrono::milliseconds app_exit_timeout{10'000};
  // The evidence-based accept grace (--drain-delay-max): the chance a router with
  // drain_min_share of the traffic stays silent that long by luck, and that share.
  double drain_quiet_risk = 0.001;
  double drain_min_share = 0.05;
  // --termination-grace: what the drain and the app's exit must leave before kubelet's SIGKILL.
  std::chrono::milliseconds budget_spare{2'000};
};

inline constexpr Defaults kDefaults{};

}  // namespace lameduck::coordinator
