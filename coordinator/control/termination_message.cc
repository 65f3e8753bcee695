#include "coordinator/control/termination_message.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace lameduck::coordinator {
namespace {

constexpr size_t kMaxMessageBytes = 4096;  // what kubelet reads of the file

std::string Seconds(uint64_t ms) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f s", static_cast<double>(ms) / 1000.0);
  return text;
}

}  // namespace

std::optional<std::string> TerminationLogPath(const Config& config) {
  if (config.termination_log) return *config.termination_log;
  if (access(kDefaultTerminationLog, W_OK) == 0) return std::string(kDefaultTerminationLog);
  return std::nullopt;
}

std::string TerminationMessage(const std::optional<DrainSummary>& drain, int exit_status) {
  std::string text = "lameduck exited " + std::to_string(exit_status);
  if (!drain) return text + "; no drain ran.";
  const DrainSummary& d = *drain;
  text += " after a drain (" + std::string(ToString(d.trigger)) + ") of " + Seconds(d.duration_ms) +
          " (accept grace " + Seconds(d.accept_grace_ms) +
          ", ended: " + std::string(ToString(d.grace_end)) +
          "): " + std::to_string(d.connections_at_start) + " connections and " +
          std::to_string(d.in_flight_at_start) + " requests in flight at its start, " +
          std::to_string(d.served_during_drain) + " responses served during it, " +
          std::to_string(d.idle_closed) + " idle connections closed";
  for (size_t i = 0; i < proxy::kLongLivedKinds; ++i) {
    const LongLivedSummary& kind = d.long_lived[i];
    if (kind.empty()) continue;
    text += ", " + std::string(ToString(static_cast<proxy::LongLivedKind>(i))) + " " +
            std::to_string(kind.clean) + " ended cleanly, " + std::to_string(kind.by_peer) +
            " by their peers, " + std::to_string(kind.forced) + " forced";
  }
  text += "; " + std::to_string(d.forced) + " connections forced at --drain-timeout.";
  if (d.slack_ms) {
    // Appended piece by piece: GCC 12 warns (-Wrestrict, wrongly) on " " + std::string here.
    text += ' ';
    text += Seconds(static_cast<uint64_t>(std::max<int64_t>(*d.slack_ms, 0)));
    text += " of the termination grace to spare after --app-exit-timeout.";
  }
  if (d.accounting && !(d.accounting->requests_balance() && d.accounting->connections_balance())) {
    text += " Its accounting does not balance (a bug in lameduck; see drain.unbalanced).";
  }
  if (text.size() > kMaxMessageBytes) text.resize(kMaxMessageBytes);
  return text;
}

Result<void> WriteTerminationMessage(const std::string& path, const std::string& message) {
  std::FILE* file = std::fopen(path.c_str(), "w");
  if (file == nullptr) return Error{"cannot open " + path + ": " + std::strerror(errno)};
  bool written = std::fwrite(message.data(), 1, message.size(), file) == message.size() &&
                 std::fputc('\n', file) != EOF;
  if (std::fclose(file) != 0) written = false;
  if (!written) return Error{"cannot write " + path + ": " + std::strerror(errno)};
  return {};
}

}  // namespace lameduck::coordinator
