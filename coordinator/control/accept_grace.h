// The evidence behind an accept grace that ends on its own (--drain-delay-max, issue 14).
//
// During the grace every response says Connection: close, so each new connection is a router
// still sending traffic here, and silence is evidence that none does, in proportion to how much
// traffic the slowest router would send. A router with share s of a pod that took λ new
// connections a second sends none for q seconds with probability e^(−λ·s·q) (arrivals taken as
// Poisson): the grace may end once the silence is long enough for that to be below the risk.
// λ is the pod's rate of new connections before the drain, not its rate of requests: in the
// grace each response closes its connection, but behind an L4 balancer (kube-proxy) the client's
// next connection goes to any endpoint, mostly elsewhere; a keep-alive pod's request rate would
// promise arrivals that never come, and end the grace while its router still sent (a rollout
// test lost requests that way).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace lameduck::coordinator {

// New connections a second over the last minute, or since start if that is shorter. O(1) per
// arrival, 60 counters of memory.
class ArrivalRate {
 public:
  explicit ArrivalRate(uint64_t start_ms) : start_ms_(start_ms) {}
  void Record(uint64_t now_ms);
  double PerSecond(uint64_t now_ms) const;

 private:
  static constexpr uint64_t kSeconds = 60;
  uint64_t start_ms_;
  std::array<uint64_t, kSeconds> second_{};  // the second (now_ms / 1000) each slot counts
  std::array<uint32_t, kSeconds> count_{};
};

// The silence, in ms, after which a router with `share` of `per_second` new connections would
// have sent one with probability 1 − risk; none (no evidence can end the grace) at rate 0.
std::optional<uint64_t> QuietNeededMs(double per_second, double share, double risk);

// Why an accept grace ended.
enum class GraceEnd {
  kDelay,     // --drain-delay, the fixed grace (no --drain-delay-max)
  kMin,       // --drain-delay: the silence was already long enough
  kQuiet,     // the silence became long enough after --drain-delay
  kMax,       // --drain-delay-max: traffic kept coming, or the pod was too quiet to tell
  kDeadline,  // --drain-timeout (or the shutdown budget) came first
  kAppExit,   // no grace: the app is gone, no straggler can be served
};
std::string_view ToString(GraceEnd end);

}  // namespace lameduck::coordinator
