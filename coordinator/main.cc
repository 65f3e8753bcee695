// lameduck's entry point. `lameduck [OPTIONS] [-- APP ARGS]` binds everything it needs first
// (a bad option or a busy port exits 2 before anything runs), then runs the proxy, the admin
// API, the readiness checks and the drain on one libuv loop until the DrainController says it
// is done. `lameduck drain` and `lameduck version` are small subcommands.
#include <signal.h>
#include <uv.h>

#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "coordinator/admin/admin_api.h"
#include "coordinator/admin/admin_server.h"
#include "coordinator/app/app_supervisor.h"
#include "coordinator/cli/drain_command.h"
#include "coordinator/cli/inject.h"
#include "coordinator/cli/install.h"
#include "coordinator/cli/report.h"
#include "coordinator/config/config.h"
#include "coordinator/control/drain_controller.h"
#include "coordinator/control/event_log.h"
#include "coordinator/control/metrics.h"
#include "coordinator/control/proxy_event_fanout.h"
#include "coordinator/control/readiness_checker.h"
#include "coordinator/control/termination_message.h"
#include "proxy/uv_handle.h"
#include "proxy/worker_group.h"

extern char** environ;

namespace lameduck::coordinator {
namespace {

constexpr int kExitBadConfig = 2;

std::map<std::string, std::string> Environment() {
  std::map<std::string, std::string> env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    size_t eq = text.find('=');
    if (eq != std::string_view::npos) env.emplace(text.substr(0, eq), text.substr(eq + 1));
  }
  return env;
}

// error: one line that starts with the option it is about.
int Fail(const std::string& error) {
  std::fprintf(stderr, "lameduck: %s\n", error.c_str());
  return kExitBadConfig;
}

// Everything that runs on the loop, in the order it must be built; destroyed in reverse.
struct Runtime {
  Runtime(uv_loop_t* loop, const Config& config, EventLog& log)
      : proxy_events(metrics, controller),
        proxy(loop, config.proxy, proxy_events, static_cast<int>(config.workers)),
        app(loop, config, log),
        controller(loop, config, proxy, metrics, log, app),
        api(config, controller, proxy, metrics, log, uv_now(loop)),
        checker(loop, config, [this](bool healthy) { controller.OnUpstreamCheck(healthy); }),
        admin(loop, api, controller) {}

  Metrics metrics;
  ProxyEventFanout proxy_events;
  proxy::WorkerGroup proxy;  // worker 0 on this loop; --workers - 1 more in threads
  AppSupervisor app;
  DrainController controller;
  AdminApi api;
  ReadinessChecker checker;
  proxy::UvHandle<uv_signal_t> sigterm;
  proxy::UvHandle<uv_signal_t> sigint;
  AdminServer admin;  // last: its connections' type is complete only in admin_server.cc
};

// Binds every listener of the proxy and the admin API; the first failure, naming its option.
Result<void> Bind(Runtime& runtime, const Config& config) {
  if (Result<void> bound = runtime.proxy.Start(); !bound.ok()) {
    return Error{"--listen: " + bound.error()};
  }
  if (Result<void> bound = runtime.admin.ListenTcp(config.admin); !bound.ok()) {
    return Error{"--admin: " + bound.error()};
  }
  if (config.admin_socket) {
    if (Result<void> bound = runtime.admin.ListenUnix(*config.admin_socket); !bound.ok()) {
      return Error{"--admin-socket: " + bound.error()};
    }
  }
  return {};
}

void OnSignal(uv_signal_t* handle, int signum) {
  if (auto* runtime = static_cast<Runtime*>(handle->data)) {
    runtime->controller.OnTrigger(signum == SIGINT ? Trigger::kSigint : Trigger::kSigterm);
  }
}

int Run(const Config& config) {
  EventLog log(stdout, config.log_format, config.log_level);
  uv_loop_t loop;
  uv_loop_init(&loop);
  int exit_status = 0;
  {
    Runtime runtime(&loop, config, log);
    // Bind everything before starting anything: bad configuration never half-starts.
    std::string error;
    if (Result<void> bound = Bind(runtime, config); !bound.ok()) {
      error = bound.error();
      exit_status = Fail(error);
    }
    std::optional<int> app_pid;
    if (error.empty() && !config.app_command.empty()) {
      Result<int> launched = runtime.app.Launch();
      if (launched.ok()) {
        app_pid = launched.value();
      } else {
        error = launched.error();  // "cannot start APP: ..."; the supervisor logged it too
        std::fprintf(stderr, "lameduck: %s\n", error.c_str());
        exit_status = kExitBadConfig;
      }
    }
    if (error.empty()) {
      runtime.app.set_on_app_exit([&](const AppExit& exit) { runtime.controller.OnAppExit(exit); });
      runtime.controller.set_on_exit([&](int status) {
        exit_status = status;
        if (std::optional<std::string> path = TerminationLogPath(config)) {
          std::string message = TerminationMessage(runtime.controller.last_drain(), status);
          if (Result<void> written = WriteTerminationMessage(*path, message); !written.ok()) {
            log.Warn("termination_log.error", {{"path", *path}, {"error", written.error()}});
          }
        }
        uv_stop(&loop);
      });
      runtime.sigterm.Init(&loop, uv_signal_init, &runtime);
      runtime.sigint.Init(&loop, uv_signal_init, &runtime);
      uv_signal_start(runtime.sigterm.get(), &OnSignal, SIGTERM);
      uv_signal_start(runtime.sigint.get(), &OnSignal, SIGINT);
      runtime.checker.Start();
      nlohmann::json listen = nlohmann::json::array();
      for (const auto& address : config.proxy.listen) listen.push_back(address.text);
      nlohmann::json fields = {{"version", LAMEDUCK_VERSION},
                               {"listen", listen},
                               {"listen_ports", runtime.proxy.listening_ports()},
                               {"upstream", config.proxy.upstream.text},
                               {"admin", config.admin.text},
                               {"admin_port", runtime.admin.tcp_port()},
                               {"drain_delay_ms", config.drain_delay.count()},
                               {"drain_timeout_ms", config.drain_timeout.count()},
                               {"workers", runtime.proxy.workers()}};
      if (config.drain_delay_max) fields["drain_delay_max_ms"] = config.drain_delay_max->count();
      if (config.termination_grace) {
        fields["termination_grace_ms"] = config.termination_grace->count();
      }
      if (config.admin_socket) fields["admin_socket"] = *config.admin_socket;
      if (app_pid) fields["app_pid"] = *app_pid;
      log.Info("start", fields);
      uv_run(&loop, UV_RUN_DEFAULT);
    }
    // Close what is left; the loop then runs the close callbacks before the objects go.
    runtime.checker.Stop();
    runtime.admin.Close();
    runtime.proxy.StopAccepting();
    runtime.proxy.ForceCloseAll();
    runtime.proxy.Shutdown();  // the other workers end
    runtime.sigterm.Close();
    runtime.sigint.Close();
    while (!runtime.proxy.empty() || !runtime.admin.empty()) {
      runtime.admin.CloseAll();
      uv_run(&loop, UV_RUN_ONCE);
    }
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return exit_status;
}

}  // namespace
}  // namespace lameduck::coordinator

int main(int argc, char** argv) {
  using namespace lameduck::coordinator;
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "version") {
    std::printf("lameduck %s\n", LAMEDUCK_VERSION);
    return 0;
  }
  if (!args.empty() && (args[0] == "--help" || args[0] == "-h" || args[0] == "help")) {
    std::fwrite(UsageText().data(), 1, UsageText().size(), stdout);
    return 0;
  }
  if (!args.empty() && args[0] == "drain") {
    return RunDrainCommand({args.begin() + 1, args.end()}, Environment(), stdout, stderr);
  }
  if (!args.empty() && args[0] == "inject") {
    return RunInject({args.begin() + 1, args.end()}, std::cin, std::cout, std::cerr);
  }
  if (!args.empty() && args[0] == "uninject") {
    return RunUninject({args.begin() + 1, args.end()}, std::cin, std::cout, std::cerr);
  }
  if (!args.empty() && args[0] == "report") {
    return RunReport({args.begin() + 1, args.end()}, std::cin, std::cout, std::cerr);
  }
  if (!args.empty() && args[0] == "install") {
    return RunInstall({args.begin() + 1, args.end()}, std::cerr);
  }
  Config config;
  try {
    config = ParseConfig(args, Environment());
  } catch (const ConfigError& error) {
    std::fprintf(stderr, "lameduck: %s\n", error.what());
    return kExitBadConfig;
  }
  signal(SIGPIPE, SIG_IGN);  // a peer that went away is an error value, not a signal
  return Run(config);
}
