// fuzz_config: the start-up configuration, coordinator::ParseConfig, and the value parsers under
// it (ParseDuration, ParseSize, ParseSignal, proxy::ParseAddress). Input: up to the first NUL,
// the command line, one argument a line; after it, if present, a --config JSON file (written
// to a temporary file and named with --config). The environment is empty. ConfigError is the
// expected failure and must be one line; anything else (a crash, another exception, UB) is a
// bug. A Config that parses is shown as GET /status shows it, through the real AdminApi. Inputs
// that would make ParseConfig read some other file (--config, --admin-token-file, on the command
// line or as a JSON key) are skipped: the fuzzer must not read /dev/stdin.
#include <unistd.h>
#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/admin/admin_api.h"
#include "coordinator/app/app_supervisor.h"
#include "coordinator/config/config.h"
#include "coordinator/config/text.h"
#include "coordinator/control/drain_controller.h"
#include "coordinator/control/event_log.h"
#include "coordinator/control/metrics.h"
#include "proxy/address.h"

namespace {

bool NamesAFile(std::string_view text) {
  return text.find("config") != std::string_view::npos ||
         text.find("file") != std::string_view::npos;
}

void ParseValue(std::string_view text) {
  using namespace lameduck;
  (void)coordinator::ParseDuration(text);
  (void)coordinator::ParseSize(text);
  (void)coordinator::ParseSignal(text);
  (void)proxy::ParseAddress(text);
}

class IdleTarget : public lameduck::proxy::DrainTarget {
 public:
  void StopAccepting() override {}
  void CloseAfterCurrentResponse() override {}
  void ResumeKeepAlive() override {}
  lameduck::proxy::SpreadStep CloseSpread(size_t, size_t) override { return {}; }
  size_t ForceCloseAll() override { return 0; }
  lameduck::proxy::ProxyCounts counts() const override { return {}; }
};

// GET /status from the unix admin socket, with `config` as lameduck's configuration.
void RenderStatus(const lameduck::coordinator::Config& config) {
  using namespace lameduck::coordinator;
  static uv_loop_t* loop = [] {
    static uv_loop_t l;
    uv_loop_init(&l);
    return &l;
  }();
  static std::FILE* log_file = std::fopen("/dev/null", "w");
  IdleTarget target;
  Metrics metrics;
  EventLog log(log_file, LogFormat::kJson, LogLevel::kDebug);
  {
    AppSupervisor app(loop, config, log);
    DrainController controller(loop, config, target, metrics, log, app);
    AdminApi api(config, controller, target, metrics, log, /*start_ms=*/0);
    AdminRequest request{
        .method = "GET", .target = "/status", .peer = "unix", .trusted_peer = true};
    (void)api.Handle(request, /*now_ms=*/1000);
  }
  uv_run(loop, UV_RUN_DEFAULT);  // the controller's timers close
}

// A plain array, not a std::string: the atexit handler registered while it is being made runs
// after every static destructor registered later, so a string would be gone by then.
char config_dir[] = "/tmp/lameduck-fuzz-config-XXXXXX";
char config_file[sizeof config_dir + sizeof "/config.json"];

const char* ConfigPath() {
  static const bool made = [] {
    if (mkdtemp(config_dir) == nullptr) std::abort();
    std::snprintf(config_file, sizeof config_file, "%s/config.json", config_dir);
    std::atexit([] {
      unlink(config_file);
      rmdir(config_dir);
    });
    return true;
  }();
  (void)made;
  return config_file;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lameduck::coordinator;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  ParseValue(input);

  size_t nul = input.find('\0');
  std::string_view command_line = input.substr(0, nul);
  std::vector<std::string> args;
  while (!command_line.empty()) {
    size_t end = command_line.find('\n');
    std::string_view arg = command_line.substr(0, end);
    if (NamesAFile(arg)) return 0;
    ParseValue(arg);
    args.emplace_back(arg);
    if (end == std::string_view::npos) break;
    command_line.remove_prefix(end + 1);
  }
  if (nul != std::string_view::npos) {
    std::string_view json = input.substr(nul + 1);
    auto document = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
    if (document.is_object()) {
      for (const auto& [key, value] : document.items()) {
        if (NamesAFile(key)) return 0;
      }
    }
    std::FILE* file = std::fopen(ConfigPath(), "wb");
    if (file == nullptr) std::abort();
    std::fwrite(json.data(), 1, json.size(), file);
    std::fclose(file);
    args.push_back("--config");
    args.push_back(ConfigPath());
  }

  try {
    Config config = ParseConfig(args, {});
    RenderStatus(config);
  } catch (const ConfigError& error) {
    if (std::string_view(error.what()).find('\n') != std::string_view::npos) {
      std::fprintf(stderr, "fuzz_config: a ConfigError of more than one line: %s\n", error.what());
      std::abort();
    }
  }
  return 0;
}
