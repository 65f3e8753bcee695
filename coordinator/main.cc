// lameduck's entry point: parses the configuration, runs the proxy on one libuv loop, and on
// SIGTERM or SIGINT stops accepting, lets in-flight requests finish (closing idle keep-alive
// connections) and force-closes what is left at --drain-timeout.
#include <signal.h>
#include <uv.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "coordinator/config.h"
#include "coordinator/event_log.h"
#include "proxy/proxy.h"
#include "proxy/uv_handle.h"

extern char** environ;

namespace lameduck::coordinator {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitBadConfig = 2;
constexpr int kExitForced = 3;

class NullEvents : public proxy::ProxyEvents {};

std::map<std::string, std::string> Environment() {
  std::map<std::string, std::string> env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    size_t eq = text.find('=');
    if (eq != std::string_view::npos) env.emplace(text.substr(0, eq), text.substr(eq + 1));
  }
  return env;
}

struct Runtime {
  Runtime(uv_loop_t* l, EventLog* g, proxy::Proxy* p, const Config* c)
      : loop(l), log(g), proxy(p), config(c) {}
  uv_loop_t* loop;
  EventLog* log;
  proxy::Proxy* proxy;
  const Config* config;
  proxy::UvHandle<uv_signal_t> sigterm;
  proxy::UvHandle<uv_signal_t> sigint;
  proxy::UvHandle<uv_timer_t> poll;
  uint64_t drain_started_ms = 0;
  bool draining = false;
  int exit_code = kExitOk;

  void StartDrain(const char* trigger) {
    if (draining) {
      log->Info("signal.ignored", {{"signal", trigger}, {"reason", "drain already running"}});
      return;
    }
    draining = true;
    drain_started_ms = uv_now(loop);
    proxy::ProxyCounts counts = proxy->counts();
    log->Info("drain.start", {{"trigger", trigger},
                              {"connections", counts.connections},
                              {"in_flight", counts.in_flight}});
    proxy->StopAccepting();
    proxy->CloseAfterCurrentResponse();
    proxy->CloseIdleConnections();
    poll.Init(loop, uv_timer_init, this);
    uv_timer_start(poll.get(), &Runtime::OnPoll, 0, 20);
  }

  static void OnSignal(uv_signal_t* handle, int signum) {
    auto* self = static_cast<Runtime*>(handle->data);
    if (self != nullptr) self->StartDrain(signum == SIGTERM ? "SIGTERM" : "SIGINT");
  }

  static void OnPoll(uv_timer_t* timer) {
    auto* self = static_cast<Runtime*>(timer->data);
    if (self == nullptr) return;
    uint64_t elapsed = uv_now(self->loop) - self->drain_started_ms;
    size_t forced = 0;
    if (self->proxy->counts().connections > 0) {
      if (elapsed < static_cast<uint64_t>(self->config->drain_timeout.count())) return;
      forced = self->proxy->ForceCloseAll();
      self->log->Warn("drain.forced", {{"count", forced}});
      self->exit_code = kExitForced;
    }
    self->log->Info("drain.complete", {{"duration_ms", elapsed}, {"forced", forced}});
    self->proxy->ForceCloseAll();  // the upstream pool
    self->poll.Close();
    self->sigterm.Close();
    self->sigint.Close();
  }
};

int Run(const Config& config, EventLog& log) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  NullEvents events;
  int exit_code = kExitOk;
  {
    proxy::Proxy proxy(&loop, config.proxy, events);
    if (std::string error = proxy.Start(); !error.empty()) {
      std::fprintf(stderr, "lameduck: --listen: %s\n", error.c_str());
      exit_code = kExitBadConfig;
    } else {
      Runtime runtime(&loop, &log, &proxy, &config);
      runtime.sigterm.Init(&loop, uv_signal_init, &runtime);
      runtime.sigint.Init(&loop, uv_signal_init, &runtime);
      uv_signal_start(runtime.sigterm.get(), &Runtime::OnSignal, SIGTERM);
      uv_signal_start(runtime.sigint.get(), &Runtime::OnSignal, SIGINT);
      nlohmann::json listen = nlohmann::json::array();
      for (const auto& address : config.proxy.listen) listen.push_back(address.text);
      log.Info("start", {{"version", LAMEDUCK_VERSION},
                         {"listen", listen},
                         {"listen_ports", proxy.listening_ports()},
                         {"upstream", config.proxy.upstream.text}});
      uv_run(&loop, UV_RUN_DEFAULT);
      exit_code = runtime.exit_code;
      log.Info("exit", {{"status", exit_code}});
    }
    proxy.ForceCloseAll();
    proxy.StopAccepting();
    while (!proxy.empty()) uv_run(&loop, UV_RUN_ONCE);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return exit_code;
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
  Config config;
  try {
    config = ParseConfig(args, Environment());
  } catch (const ConfigError& error) {
    std::fprintf(stderr, "lameduck: %s\n", error.what());
    return kExitBadConfig;
  }
  signal(SIGPIPE, SIG_IGN);  // a peer that went away is an error value, not a signal
  EventLog log(stdout, config.log_format, config.log_level);
  return Run(config, log);
}
