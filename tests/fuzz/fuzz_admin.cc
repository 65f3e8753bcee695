// fuzz_admin: coordinator::AdminApi::Handle with a real DrainController over a fake DrainTarget
// (as in tests/coordinator/control/drain_controller_test.cc), no sockets. Input: byte 0 is flags
// (bit 0: an --admin-token is configured, "s3cret"; bit 1: the upstream has answered, so lameduck
// is ready; bits 2..3: connections open on the fake proxy), then up to four requests, each five
// lines: method, target, Authorization, User-Agent, peer. A peer is trusted as AdminServer
// trusts it: loopback, or "unix". Any status is fine; a crash, an exception or UB is a bug.
#include <uv.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string_view>
#include <vector>

#include "coordinator/admin/admin_api.h"
#include "coordinator/app/app_supervisor.h"
#include "coordinator/control/drain_controller.h"
#include "coordinator/control/event_log.h"
#include "coordinator/control/metrics.h"
#include "tests/support/fake_drain_target.h"

namespace lameduck::coordinator {
namespace {

std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    size_t end = text.find('\n');
    lines.push_back(text.substr(0, end));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return lines;
}

}  // namespace
}  // namespace lameduck::coordinator

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lameduck::coordinator;
  using namespace std::chrono_literals;
  static uv_loop_t* loop = [] {
    static uv_loop_t l;
    uv_loop_init(&l);
    return &l;
  }();
  static std::FILE* log_file = std::fopen("/dev/null", "w");
  if (size == 0) return 0;
  uint8_t flags = data[0];
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);

  Config config;
  config.drain_delay = 10ms;
  config.drain_timeout = 50ms;
  if ((flags & 1) != 0) config.admin_token = "s3cret";
  lameduck::testing::FakeDrainTarget target;
  size_t open = (flags >> 2) & 3;
  target.open = {.connections = open, .in_flight = open / 2, .idle = open - open / 2};
  Metrics metrics;
  EventLog log(log_file, LogFormat::kJson, LogLevel::kDebug);
  {
    AppSupervisor app(loop, config, log);
    DrainController controller(loop, config, target, metrics, log, app);
    controller.set_on_exit([](int) {});
    if ((flags & 2) != 0) controller.OnUpstreamCheck(true);
    AdminApi api(config, controller, target, metrics, log, /*start_ms=*/1000);

    std::vector<std::string_view> lines = Lines(rest);
    uint64_t now_ms = 2000;
    for (size_t i = 0; i + 5 <= lines.size() && i < 4 * 5; i += 5) {
      AdminRequest request;
      request.method = lines[i];
      request.target = lines[i + 1];
      request.authorization = lines[i + 2];
      request.user_agent = lines[i + 3];
      request.peer = lines[i + 4];
      request.trusted_peer = request.peer == "unix" || IsLoopback(request.peer);
      AdminResponse response = api.Handle(request, now_ms);
      if (response.status < 100 || response.status > 599) __builtin_trap();
      if (response.wait_for_drain) controller.WhenDrained([](const DrainSummary&) {});
      uv_run(loop, UV_RUN_NOWAIT);
      now_ms += 1500;
    }
  }
  uv_run(loop, UV_RUN_DEFAULT);  // the controller's and the supervisor's handles close
  return 0;
}
