// bench/loadgen.cc: the `loadgen` command, a scripted pod deletion as Kubernetes clients see it.
//
// Runs LoadGenerator against 127.0.0.1 ports; at --signal-at sends SIGTERM to --signal-pid (the
// kubelet starting the pod's shutdown), at --remove-at empties the endpoint list (kube-proxy
// taking the pod out of the Service, typically 1-3 s later), and at --duration stops, letting
// every request already sent finish. Progress and those events go to stderr, once a second; the
// summary line goes to stdout. Exit status 0 when no request failed, 1 when one did, 2 for bad
// usage. SIGINT or SIGTERM to loadgen stops it early, with the same summary.
//
// It does not start, wait for or reap the process it signals; the caller owns that.

#include <signal.h>
#include <sys/types.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bench/load_generator.h"

namespace {

using lameduck::bench::FormatSummary;
using lameduck::bench::LoadGenerator;
using lameduck::bench::LoadOptions;
using lameduck::bench::LoadStats;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kProgressEvery{1000};

int Usage(FILE* to, int status) {
  std::fprintf(
      to,
      "usage: loadgen --endpoints PORT[,PORT...] [options]\n"
      "  Keep-alive HTTP/1.1 clients on 127.0.0.1, modelling Kubernetes clients behind\n"
      "  kube-proxy: new connections go round robin to the current endpoints; open ones stay.\n"
      "\n"
      "  --endpoints PORTS      127.0.0.1 ports, comma-separated\n"
      "  --connections N        clients, one keep-alive connection each (default: 16)\n"
      "  --slow-fraction F      share of GET /slow?ms=N requests (default: 0.1)\n"
      "  --slow MIN-MAX         N's range in ms for slow requests (default: 1000-2000)\n"
      "  --close-fraction F     share of requests with Connection: close, the client's next\n"
      "                         one on a new connection (default: 0)\n"
      "  --think DUR            pause after each request, per client (default: 10ms)\n"
      "  --failure-pause DUR    pause after a failed request instead (default: 100ms)\n"
      "  --timeout DUR          per request, connecting included (default: 10s)\n"
      "  --duration DUR         then stop, finishing requests in flight (default: 10s)\n"
      "  --signal-pid PID       the process to send SIGTERM to (the pod's shutdown starting)\n"
      "  --signal-at DUR        when, from the start (default: 3s, with --signal-pid)\n"
      "  --remove-at DUR        when the endpoint list is emptied (kube-proxy); default never\n"
      "  --quiet                no progress lines on stderr\n"
      "\n"
      "Durations: 250ms, 4.5s, 2m. Prints one summary line; exits 0 when nothing failed, 1\n"
      "when a request failed (refused, reset, cut short, timed out or 5xx), 2 for bad usage.\n");
  return status;
}

std::optional<milliseconds> ParseDuration(std::string_view text) {
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end == text.data() || !std::isfinite(value) || value < 0) {
    return std::nullopt;
  }
  std::string_view unit(end, static_cast<size_t>(text.data() + text.size() - end));
  double scale = 0;
  if (unit == "ms") {
    scale = 1;
  } else if (unit == "s") {
    scale = 1000;
  } else if (unit == "m") {
    scale = 60'000;
  } else {
    return std::nullopt;
  }
  double ms = value * scale;
  if (ms > 1e12) return std::nullopt;
  return milliseconds(static_cast<int64_t>(std::llround(ms)));
}

std::optional<long> ParseInteger(std::string_view text, long min, long max) {
  long value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < min || value > max) {
    return std::nullopt;
  }
  return value;
}

std::optional<std::vector<int>> ParsePorts(std::string_view text) {
  std::vector<int> ports;
  while (true) {
    size_t comma = text.find(',');
    std::optional<long> port = ParseInteger(text.substr(0, comma), 1, 65535);
    if (!port) return std::nullopt;
    ports.push_back(static_cast<int>(*port));
    if (comma == std::string_view::npos) return ports;
    text.remove_prefix(comma + 1);
  }
}

std::string Seconds(Clock::duration elapsed) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1fs", std::chrono::duration<double>(elapsed).count());
  return text;
}

void PrintProgress(Clock::duration elapsed, const LoadStats& stats) {
  std::fprintf(stderr, "loadgen: %6s  %llu sent, %llu ok, %llu failed\n", Seconds(elapsed).c_str(),
               static_cast<unsigned long long>(stats.sent),
               static_cast<unsigned long long>(stats.ok),
               static_cast<unsigned long long>(stats.failed));
}

struct Settings {
  LoadOptions load;
  milliseconds duration{10'000};
  pid_t signal_pid = 0;
  milliseconds signal_at{3000};
  std::optional<milliseconds> remove_at;
  bool quiet = false;
};

// Fills `settings` from argv; a message and false on a bad argument.
bool ParseArguments(int argc, char** argv, Settings& settings, bool& help) {
  bool have_endpoints = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view name = argv[i];
    if (name == "-h" || name == "--help") {
      help = true;
      return true;
    }
    if (name == "--quiet") {
      settings.quiet = true;
      continue;
    }
    std::string_view value;
    if (size_t eq = name.find('='); name.substr(0, 2) == "--" && eq != std::string_view::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      std::fprintf(stderr, "loadgen: %.*s: missing value (see --help)\n",
                   static_cast<int>(name.size()), name.data());
      return false;
    }
    auto bad = [&](const char* want) {
      std::fprintf(stderr, "loadgen: %.*s: invalid value \"%.*s\" (%s)\n",
                   static_cast<int>(name.size()), name.data(), static_cast<int>(value.size()),
                   value.data(), want);
      return false;
    };
    if (name == "--endpoints") {
      auto ports = ParsePorts(value);
      if (!ports) return bad("want PORT[,PORT...]");
      settings.load.endpoints = *ports;
      have_endpoints = true;
    } else if (name == "--connections") {
      auto n = ParseInteger(value, 1, 10000);
      if (!n) return bad("want 1 to 10000");
      settings.load.connections = static_cast<int>(*n);
    } else if (name == "--slow-fraction" || name == "--close-fraction") {
      double f = -1;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), f);
      if (ec != std::errc() || end != value.data() + value.size() || !(f >= 0 && f <= 1)) {
        return bad("want a number from 0 to 1");
      }
      (name == "--slow-fraction" ? settings.load.slow_fraction : settings.load.close_fraction) = f;
    } else if (name == "--slow") {
      size_t dash = value.find('-');
      auto min = ParseInteger(value.substr(0, dash), 0, 600'000);
      auto max =
          dash == std::string_view::npos ? min : ParseInteger(value.substr(dash + 1), 0, 600'000);
      if (!min || !max || *min > *max) return bad("want MIN-MAX in ms, e.g. 1000-2000");
      settings.load.slow_min = milliseconds(*min);
      settings.load.slow_max = milliseconds(*max);
    } else if (name == "--think" || name == "--failure-pause" || name == "--timeout" ||
               name == "--duration" || name == "--signal-at" || name == "--remove-at") {
      auto duration = ParseDuration(value);
      if (!duration) return bad("want a duration such as 250ms, 4.5s or 2m");
      if (name == "--think") settings.load.think = *duration;
      if (name == "--failure-pause") settings.load.failure_pause = *duration;
      if (name == "--timeout") {
        if (duration->count() == 0) return bad("must be more than 0");
        settings.load.request_timeout = *duration;
      }
      if (name == "--duration") settings.duration = *duration;
      if (name == "--signal-at") settings.signal_at = *duration;
      if (name == "--remove-at") settings.remove_at = *duration;
    } else if (name == "--signal-pid") {
      auto pid = ParseInteger(value, 1, 1L << 22);
      if (!pid) return bad("want a process id");
      settings.signal_pid = static_cast<pid_t>(*pid);
    } else {
      std::fprintf(stderr, "loadgen: unknown option %.*s (see --help)\n",
                   static_cast<int>(name.size()), name.data());
      return false;
    }
  }
  if (!have_endpoints) {
    std::fprintf(stderr, "loadgen: --endpoints is required (see --help)\n");
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Settings settings;
  bool help = false;
  if (!ParseArguments(argc, argv, settings, help)) return 2;
  if (help) return Usage(stdout, 0);

  // SIGINT and SIGTERM are taken synchronously by this thread (sigtimedwait below); blocked
  // before the workers start, so they inherit the mask and never take them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  LoadGenerator generator(settings.load);
  Clock::time_point start = Clock::now();
  generator.Start();
  if (!settings.quiet) {
    std::fprintf(stderr, "loadgen: %d connections to 127.0.0.1 port(s)", settings.load.connections);
    for (int port : settings.load.endpoints) std::fprintf(stderr, " %d", port);
    std::fprintf(stderr, " for %s\n", Seconds(settings.duration).c_str());
  }

  bool signal_due = settings.signal_pid != 0;
  bool removal_due = settings.remove_at.has_value();
  Clock::time_point next_progress = start + kProgressEvery;
  Clock::time_point end = start + settings.duration;
  while (true) {
    Clock::time_point now = Clock::now();
    if (signal_due && now >= start + settings.signal_at) {
      signal_due = false;
      if (kill(settings.signal_pid, SIGTERM) == 0) {
        std::fprintf(stderr, "loadgen: %6s  SIGTERM sent to pid %d (pod deletion starts)\n",
                     Seconds(now - start).c_str(), static_cast<int>(settings.signal_pid));
      } else {
        std::fprintf(stderr, "loadgen: %6s  could not signal pid %d: %s\n",
                     Seconds(now - start).c_str(), static_cast<int>(settings.signal_pid),
                     std::strerror(errno));
      }
    }
    if (removal_due && now >= start + *settings.remove_at) {
      removal_due = false;
      generator.SetEndpoints({});
      std::fprintf(stderr,
                   "loadgen: %6s  endpoints removed (kube-proxy): new connections go elsewhere; "
                   "open ones stay until the server closes them\n",
                   Seconds(now - start).c_str());
    }
    if (now >= end) break;
    if (now >= next_progress) {
      if (!settings.quiet) PrintProgress(now - start, generator.stats());
      next_progress += kProgressEvery;
    }
    Clock::time_point wake = std::min(end, next_progress);
    if (signal_due) wake = std::min(wake, start + settings.signal_at);
    if (removal_due) wake = std::min(wake, start + *settings.remove_at);
    auto wait = std::chrono::ceil<std::chrono::nanoseconds>(wake - now);
    timespec timeout{static_cast<time_t>(wait.count() / 1'000'000'000),
                     static_cast<long>(wait.count() % 1'000'000'000)};
    int taken = sigtimedwait(&stop_signals, nullptr, &timeout);
    if (taken == SIGINT || taken == SIGTERM) {
      std::fprintf(stderr, "loadgen: %s: stopping early\n", strsignal(taken));
      break;
    }
  }

  if (!settings.quiet) {
    std::fprintf(stderr, "loadgen: %6s  stopping; requests in flight finish first\n",
                 Seconds(Clock::now() - start).c_str());
  }
  generator.Stop();
  LoadStats stats = generator.stats();
  std::printf("loadgen: %s\n", FormatSummary(stats).c_str());
  std::fflush(stdout);
  return stats.failed == 0 ? 0 : 1;
}
