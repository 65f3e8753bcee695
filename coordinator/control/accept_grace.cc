#include "coordinator/control/accept_grace.h"

#include <algorithm>
#include <cmath>

namespace lameduck::coordinator {

void ArrivalRate::Record(uint64_t now_ms) {
  uint64_t second = now_ms / 1000;
  size_t slot = second % kSeconds;
  if (second_[slot] != second) {
    second_[slot] = second;
    count_[slot] = 0;
  }
  ++count_[slot];
}

double ArrivalRate::PerSecond(uint64_t now_ms) const {
  uint64_t now_second = now_ms / 1000;
  // The window: the current second and the 59 before it, or since start.
  uint64_t first_second = now_second >= kSeconds - 1 ? now_second - (kSeconds - 1) : 0;
  uint64_t from_ms = std::max(first_second * 1000, start_ms_);
  if (now_ms <= from_ms) return 0;
  uint64_t arrivals = 0;
  for (size_t slot = 0; slot < kSeconds; ++slot) {
    if (count_[slot] > 0 && second_[slot] >= first_second && second_[slot] <= now_second) {
      arrivals += count_[slot];
    }
  }
  return static_cast<double>(arrivals) * 1000.0 / static_cast<double>(now_ms - from_ms);
}

std::optional<uint64_t> QuietNeededMs(double per_second, double share, double risk) {
  double rate = per_second * share;  // the slowest router's, per second
  if (!(rate > 0)) return std::nullopt;
  double seconds = std::log(1.0 / risk) / rate;
  constexpr double kLongest = 1e12;  // ms; beyond any --drain-delay-max
  return static_cast<uint64_t>(std::ceil(std::min(seconds * 1000.0, kLongest)));
}

std::string_view ToString(GraceEnd end) {
  switch (end) {
    case GraceEnd::kDelay:
      return "delay";
    case GraceEnd::kMin:
      return "min";
    case GraceEnd::kQuiet:
      return "quiet";
    case GraceEnd::kMax:
      return "max";
    case GraceEnd::kDeadline:
      return "deadline";
    case GraceEnd::kAppExit:
      return "app_exit";
  }
  return "unknown";
}

}  // namespace lameduck::coordinator
