// Start-up configuration: the command line, LAMEDUCK_* environment variables and an optional
// --config JSON file, merged in that order of precedence over the defaults of DESIGN.md
// ("Command line"), checked, and turned into one Config. A bad value throws ConfigError with one
// line naming the option and where it came from.
//
// Parsing and checking only: it opens no socket and reads no file but --config and
// --admin-token-file (a pidfile is read by the supervisor, when it signals). `--help`, `version`
// and `drain` are main's; it prints UsageText().
#pragma once

#include <chrono>
#include <csignal>
#include <cstddef>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/config/defaults.h"
#include "proxy/address.h"
#include "proxy/proxy_options.h"
#include "proxy/result.h"

namespace lameduck::coordinator {

// Thrown only at start-up; main prints "lameduck: " + what() on one line and exits 2.
class ConfigError : public std::runtime_error {
 public:
  using runtime_error::runtime_error;
};

enum class LogFormat { kJson, kText };
enum class LogLevel { kDebug, kInfo, kWarn, kError };
std::string_view ToString(LogFormat format);
std::string_view ToString(LogLevel level);
std::string_view ToString(proxy::UpstreamProtocol protocol);
std::string_view ToString(proxy::LongLivedDrain drain);  // "close", "wait"

// The defaults of the fields that kDefaults cannot hold as constants (for Config's initializers).
proxy::ProxyOptions DefaultProxyOptions();  // listen 0.0.0.0:8080, upstream 127.0.0.1:3000
proxy::Address DefaultAdminAddress();       // 0.0.0.0:9901

// A value-initialized Config holds the defaults; ParseConfig returns it checked.
struct Config {
  proxy::ProxyOptions proxy = DefaultProxyOptions();  // listen, upstream, timeouts, limits
  proxy::Address admin = DefaultAdminAddress();
  std::optional<std::string> admin_socket;    // a path ("unix:" stripped)
  std::optional<std::string> admin_token;     // from --admin-token or --admin-token-file
  std::optional<std::string> upstream_ready;  // a path on the app, starts with '/'
  std::chrono::milliseconds drain_delay = kDefaults.drain_delay;
  std::chrono::milliseconds drain_timeout = kDefaults.drain_timeout;
  // Set: the accept grace ends on evidence (control/accept_grace.h), at the earliest at
  // drain_delay and at the latest at this.
  std::optional<std::chrono::milliseconds> drain_delay_max;
  double drain_quiet_risk = kDefaults.drain_quiet_risk;
  double drain_min_share = kDefaults.drain_min_share;
  // The pod's terminationGracePeriodSeconds: the drain's settings must fit in it (checked at
  // start-up) and the drain's deadline never passes it.
  std::optional<std::chrono::milliseconds> termination_grace;
  // The closes at the end of the accept grace (idle connections, long-lived exchanges) are
  // spread over this, so that their clients do not all reconnect to the other pods at once.
  std::chrono::milliseconds drain_spread = kDefaults.drain_spread;
  // How to tell the app to exit once drained: at most one of these four, and none with an
  // app_command (a launched APP is signalled directly).
  std::optional<int> app_pid;
  std::optional<std::string> app_pidfile;
  std::optional<std::string> app_process;
  std::optional<std::string> app_exit_url;  // starts with http://
  int app_signal = SIGTERM;
  std::chrono::milliseconds app_exit_timeout = kDefaults.app_exit_timeout;
  // --termination-log: where the exit's one-paragraph drain summary goes (see
  // control/termination_message.h); unset: /dev/termination-log when it is writable.
  std::optional<std::string> termination_log;
  size_t workers = 1;  // --workers: data-plane loops, each in its own thread (SO_REUSEPORT)
  LogFormat log_format = LogFormat::kJson;
  LogLevel log_level = LogLevel::kInfo;
  std::vector<std::string> app_command;  // everything after "--": APP ARGS (launch mode)
  std::string config_file;               // --config or LAMEDUCK_CONFIG; empty when none
};

// args: argv[1..], without the program name. env: the process environment, NAME -> value.
// Precedence: command line > environment (LAMEDUCK_DRAIN_DELAY for --drain-delay) >
// --config FILE.json ({"drain-delay": "5s", "listen": ["a", "b"], "max-connections": 100}) >
// defaults. --config itself comes from the command line or LAMEDUCK_CONFIG.
// Throws ConfigError.
Config ParseConfig(const std::vector<std::string>& args,
                   const std::map<std::string, std::string>& env);

// The longest the accept grace can last: --drain-delay-max when set, else --drain-delay.
std::chrono::milliseconds MaxAcceptGrace(const Config& config);

// `lameduck --help`: usage and every option with its default.
std::string_view UsageText();

// The effective configuration for /status, keys in snake_case with units (drain_delay_ms). No
// secrets: admin_token is "set" or absent, and of app_command only the program is shown.
nlohmann::json ToJson(const Config& config);

}  // namespace lameduck::coordinator
