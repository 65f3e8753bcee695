// The termination message: at exit lameduck writes one paragraph on how its last drain went to
// the container's termination message file, so that `kubectl describe pod` shows it without
// anyone fetching logs (Kubernetes reads at most 4096 bytes of it).
#pragma once

#include <optional>
#include <string>

#include "coordinator/config/config.h"
#include "coordinator/control/drain_controller.h"
#include "proxy/result.h"

namespace lameduck::coordinator {

inline constexpr const char* kDefaultTerminationLog = "/dev/termination-log";

// Where to write it: --termination-log; else /dev/termination-log when it exists and is
// writable (Kubernetes mounts it into every container); else nowhere.
std::optional<std::string> TerminationLogPath(const Config& config);

// The paragraph: the last drain (or that none ran) and the exit status.
std::string TerminationMessage(const std::optional<DrainSummary>& drain, int exit_status);

Result<void> WriteTerminationMessage(const std::string& path, const std::string& message);

}  // namespace lameduck::coordinator
