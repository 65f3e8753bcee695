// AdminApi: what each admin request means (DESIGN.md, "Admin API"): readiness, liveness,
// status, metrics and the drain, with the drain's access rules. Transport-free, so it is tested
// (and fuzzed) without sockets; AdminServer carries the bytes.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "coordinator/config/config.h"
#include "coordinator/control/drain_controller.h"
#include "coordinator/control/event_log.h"
#include "coordinator/control/metrics.h"
#include "proxy/drain_target.h"

namespace lameduck::coordinator {

struct AdminRequest {
  std::string_view method;  // "GET"
  std::string_view target;  // "/drain?wait=1"
  std::string_view authorization;
  std::string_view user_agent;  // "lameduck-drain/…" from `lameduck drain`
  std::string_view peer;        // "10.1.2.3", "::1", or "unix"
  bool trusted_peer = false;    // loopback TCP or the unix socket
};

struct AdminResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::string allow;            // for 405
  bool wait_for_drain = false;  // answer later: WhenDrained's summary, as 200
};

class AdminApi {
 public:
  AdminApi(const Config& config, DrainController& controller, proxy::DrainTarget& proxy,
           Metrics& metrics, EventLog& log, uint64_t start_ms)
      : config_(config),
        controller_(controller),
        proxy_(proxy),
        metrics_(metrics),
        log_(log),
        start_ms_(start_ms) {}

  AdminResponse Handle(const AdminRequest& request, uint64_t now_ms);
  static std::string SummaryBody(const DrainSummary& summary);

 private:
  AdminResponse Drain(const AdminRequest& request, std::string_view query);
  AdminResponse Undrain(const AdminRequest& request);
  AdminResponse Ready(uint64_t now_ms);
  // The drain forms' access rules: nullopt when the request may go on, else the 401 or 403.
  std::optional<AdminResponse> Refuse(const AdminRequest& request, std::string_view path);
  AdminResponse Status(uint64_t now_ms);
  std::string MetricsText(uint64_t now_ms);

  const Config& config_;
  DrainController& controller_;
  proxy::DrainTarget& proxy_;
  Metrics& metrics_;
  EventLog& log_;
  uint64_t start_ms_;
};

// Constant-time comparison, so the token cannot be guessed a byte at a time from timings.
bool TokenMatches(std::string_view presented, std::string_view expected);
// True for 127.0.0.0/8, ::1 and ::ffff:127.x.y.z.
bool IsLoopback(std::string_view ip);

}  // namespace lameduck::coordinator
