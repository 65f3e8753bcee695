// DrainController: the one owner of lameduck's lifecycle. It decides readiness, runs the drain
// of DESIGN.md ("The drain", steps 1 to 8) against the proxy's DrainTarget, has the app told to
// exit, and says when lameduck is done and with which status. The admin API, the signals and
// main only ask it and tell it things; nothing else changes the state.
#pragma once

#include <uv.h>

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/app/app_supervisor.h"
#include "coordinator/config/config.h"
#include "coordinator/control/accept_grace.h"
#include "coordinator/control/event_log.h"
#include "coordinator/control/metrics.h"
#include "proxy/drain_target.h"
#include "proxy/uv_handle.h"

namespace lameduck::coordinator {

// The lifecycle, in the order it is lived. Transitions (and nothing else moves the state):
//   kStarting   -> kReady       the first readiness check the upstream passes
//   kStarting, kReady -> kDraining   a trigger (OnTrigger), or the launched app exiting
//   kDraining   -> kAppExiting  nothing open any more, or --drain-timeout forced what was (Finish)
//   kAppExiting -> kDrained     the app was told to exit and, where visible, exited (OnAppTold)
//   kDrained    -> kExited      at once when a signal asked for the drain or an APP was launched;
//                               else (the admin API's drain, a preStop) at the next signal
enum class State {
  kStarting,    // the upstream has not answered yet: /ready 503 "starting"
  kReady,       // /ready 200 (or 503 "upstream_unready" while the upstream stops answering)
  kDraining,    // a drain runs (see DrainPhase); /ready 503 "draining" from here on
  kAppExiting,  // drain over (last_drain() holds it); the app is being told to exit
  kDrained,     // the app was told; /drain?wait=1 answered; waiting for a signal, or exiting
  kExited,      // done: main stops the loop and exits with exit_status()
};
// Every State, in order, for what lists them all (/metrics' lameduck_state): metrics_test.cc
// checks that no State is left out.
inline constexpr State kAllStates[] = {State::kStarting,   State::kReady,   State::kDraining,
                                       State::kAppExiting, State::kDrained, State::kExited};
// The phases of State::kDraining, in order:
//   kAcceptGrace -> kInFlight   --drain-delay is over: listeners closed, idle connections closed
//   kInFlight    -> kComplete   no connection owes anything any more (counts().connections == 0)
//   kAcceptGrace, kInFlight -> kForced   --drain-timeout: everything left closed and counted
enum class DrainPhase {
  kNone,         // no drain has started
  kAcceptGrace,  // still accepting; every response says Connection: close
  kInFlight,     // listeners and idle connections closed; in-flight requests finishing
  kForced,       // --drain-timeout passed: what was left was closed
  kComplete,     // everything finished on its own
};
enum class Trigger { kSigterm, kSigint, kAdminPost, kAdminWait, kCommand, kAppExit };
// What POST /undrain did.
enum class Undrain {
  kCancelled,    // a drain in its accept grace was cancelled: ready again
  kNotDraining,  // nothing to cancel
  kTooLate,      // the listeners are closed: the drain goes on
  kExiting,      // a signal asked lameduck to exit, or the app is gone: the drain goes on
};

std::string_view ToString(State state);
std::string_view ToString(DrainPhase phase);
std::string_view ToString(Trigger trigger);
// The long-lived exchanges open, by kind: {"websocket": 2, "sse": 0, ...}.
nlohmann::json LongLivedJson(const proxy::ProxyCounts& counts);

// What a drain did with the long-lived exchanges of one kind (WebSocket, SSE, ...).
struct LongLivedSummary {
  uint64_t at_start = 0;  // open when the drain began
  uint64_t ending = 0;    // told by the drain to end at their next message boundary
  uint64_t clean = 0;     // ended at a boundary by lameduck
  uint64_t by_peer = 0;   // ended by the client or the app during the drain
  uint64_t forced = 0;    // still open at --drain-timeout (also counted in `forced`)
  bool empty() const { return at_start + ending + clean + by_peer + forced == 0; }
};

// A drain's account of every request and client connection it met, each in exactly one
// bucket, so that a person can check it by hand:
//   in_flight_at_start + arrived = completed + completed_close + refused + aborted + forced
//   open_at_start + accepted = after_response + idle + long_lived + by_client + forced
// (forced: what was still open at --drain-timeout and was cut.)
struct DrainAccounting {
  uint64_t in_flight_at_start = 0;
  uint64_t arrived = 0;          // requests (HTTP/2 streams) that arrived during the drain
  uint64_t completed = 0;        // answered, the connection kept (HTTP/2 before the GOAWAY)
  uint64_t completed_close = 0;  // answered with Connection: close (HTTP/2: after the GOAWAY)
  uint64_t refused = 0;          // HTTP/2 streams refused (REFUSED_STREAM), never forwarded
  uint64_t aborted = 0;          // ended without a whole response: the client left, or a failure
  uint64_t requests_forced = 0;
  uint64_t open_at_start = 0;
  uint64_t accepted = 0;        // new connections during the accept grace
  uint64_t after_response = 0;  // closed by lameduck after their last response
  uint64_t idle = 0;            // closed idle by lameduck
  uint64_t long_lived = 0;      // ended cleanly at a message boundary
  uint64_t by_client = 0;       // closed by the client (or failed)
  uint64_t connections_forced = 0;

  // From exact counts at the drain's start and end (proxy::DrainTarget::counts_now).
  static DrainAccounting Between(const proxy::ProxyCounts& start, const proxy::ProxyCounts& end);
  bool requests_balance() const;
  bool connections_balance() const;
  nlohmann::json ToJson() const;
};

// What a drain did; the body of /drain?wait=1 and of the drain.complete event.
struct DrainSummary {
  Trigger trigger = Trigger::kSigterm;
  // Drain start to the moment no connection owed anything any more (each closed, or served in
  // full and awaiting the client's FIN: awaiting_fin), or to the forcing.
  uint64_t duration_ms = 0;
  uint64_t accept_grace_ms = 0;  // phase durations
  // The accept grace's end and its evidence (control/accept_grace.h).
  GraceEnd grace_end = GraceEnd::kDelay;
  double arrival_rate = 0;  // λ: new connections a second over the minute before the drain
  std::optional<uint64_t> quiet_needed_ms;  // the silence that ends it; none at rate 0
  uint64_t grace_arrivals = 0;              // new connections during the grace
  // --termination-grace: the budget, the deadline it left (the earlier of it and
  // --drain-timeout), and at the end what was left of it beyond --app-exit-timeout.
  std::optional<uint64_t> budget_ms;
  uint64_t deadline_ms = 0;
  std::optional<int64_t> slack_ms;
  uint64_t in_flight_wait_ms = 0;    // listeners closed to the end of duration_ms
  uint64_t served_during_drain = 0;  // responses completed from drain start to its end
  uint64_t in_flight_at_start = 0;
  uint64_t connections_at_start = 0;
  uint64_t http2_connections_at_start = 0;  // of those, HTTP/2 ones
  uint64_t http2_streams_at_start = 0;      // open streams: requests in flight too
  uint64_t idle_closed = 0;                 // idle keep-alive connections the drain closed
  uint64_t spread_ms = 0;                   // the closes were spread over this
  LongLivedSummary long_lived[proxy::kLongLivedKinds];
  uint64_t awaiting_fin = 0;  // at the end: served in full, waiting for the client's FIN
  uint64_t forced = 0;
  int exit_status = 0;
  bool cancelled = false;  // by POST /undrain, in its accept grace: the rest never happened
  std::optional<DrainAccounting> accounting;  // none for a cancelled drain
  nlohmann::json ToJson() const;
};

class DrainController {
 public:
  DrainController(uv_loop_t* loop, const Config& config, proxy::DrainTarget& proxy,
                  Metrics& metrics, EventLog& log, AppSupervisor& app);

  // Readiness of the upstream, from the ReadinessChecker.
  void OnUpstreamCheck(bool healthy);
  // A drain trigger. A drain already running is joined, never restarted. A signal while the
  // admin API's drain is done (kDrained, waiting for kubelet) ends lameduck at once. caller:
  // who asked, for the log (an admin request's User-Agent: kubelet's hooks send
  // "kube-lifecycle/1.30").
  void OnTrigger(Trigger trigger, std::string_view caller = {});
  // POST /undrain: cancels a drain still in its accept grace (listeners open), back to the
  // state before it; its waiters get the summary so far, marked cancelled.
  Undrain CancelDrain(std::string_view caller = {});
  // The proxy closed a client connection, or one finished (its last response is written and
  // only the client's FIN is awaited): the drain may be over. O(1): counts() is kept current.
  void OnConnectionOpened();
  void OnConnectionClosed() { CheckDone(); }
  void OnConnectionFinished() { CheckDone(); }
  void OnLongLivedEnded(proxy::LongLivedKind kind, proxy::LongLivedEnd how);
  // The launched app exited (on its own, or after being told).
  void OnAppExit(const AppExit& exit);

  // Called once the drain is complete and the app has been told (every /drain?wait=1 waiter).
  void WhenDrained(std::function<void(const DrainSummary&)> callback);
  // Called once, when lameduck should exit.
  void set_on_exit(std::function<void(int status)> callback) { on_exit_ = std::move(callback); }

  State state() const { return state_; }
  DrainPhase phase() const { return phase_; }
  std::string_view readiness() const;  // "ready", "starting", "upstream_unready", "draining"
  // The drain that runs or ran: what triggered it and when (loop time, ms).
  Trigger trigger() const { return trigger_; }
  uint64_t drain_start_ms() const { return drain_start_ms_; }
  bool ready() const { return readiness() == "ready"; }
  const std::optional<DrainSummary>& last_drain() const { return last_drain_; }
  uint64_t drains_total() const { return drains_total_; }
  uint64_t forced_total() const { return forced_total_; }
  int exit_status() const { return exit_status_; }

 private:
  void StartDrain(Trigger trigger, std::string_view caller = {});
  void OnGraceTimer();  // --drain-delay, and then whenever the silence may be long enough
  void EndAcceptGrace(GraceEnd why);
  void SpreadStep();  // one step of the closes spread over --drain-spread
  void LogSpreadDone();
  void CloseListeners();
  void OnDeadline();
  void CheckDone();
  // forced: connections ForceCloseAll cut; end: the exact counts as the drain ended (before
  // anything was forced).
  void Finish(uint64_t forced, const proxy::ProxyCounts& end);
  void OnAppTold(const AppSupervisor::Outcome& outcome);
  void Exit();
  void StopDrainTimers();
  void AnswerWaiters();
  void LogProgress();
  // The loop's clock, brought up to date: one turn of the loop can close thousands of
  // connections, and the drain's durations must include that work, not the turn's start.
  uint64_t NowMs() const {
    uv_update_time(loop_);
    return uv_now(loop_);
  }
  uint64_t ElapsedMs() const { return NowMs() - drain_start_ms_; }

  uv_loop_t* loop_;
  const Config& config_;
  proxy::DrainTarget& proxy_;
  Metrics& metrics_;
  EventLog& log_;
  AppSupervisor& app_;
  proxy::UvHandle<uv_timer_t> delay_timer_;
  proxy::UvHandle<uv_timer_t> deadline_timer_;
  proxy::UvHandle<uv_timer_t> progress_timer_;
  proxy::UvHandle<uv_timer_t> spread_timer_;
  ArrivalRate arrivals_;  // new connections

  State state_ = State::kStarting;
  State before_drain_ = State::kStarting;  // where a cancelled drain goes back to
  DrainPhase phase_ = DrainPhase::kNone;
  bool upstream_healthy_ = false;
  // A signal or the app's exit asked for the drain, or came during it: exit when it is done.
  bool exit_when_done_ = false;
  std::optional<AppExit> app_exit_;  // the launched app's exit, once seen
  Trigger trigger_ = Trigger::kSigterm;
  uint64_t drain_start_ms_ = 0;
  uint64_t listeners_closed_ms_ = 0;
  uint64_t last_arrival_ms_ = 0;   // the last new connection in the grace (or its start)
  bool grace_first_look_ = false;  // OnGraceTimer's first call, at --drain-delay
  uint64_t responses_at_start_ = 0;
  proxy::ProxyCounts counts_at_start_;  // exact: the accounting starts from them
  size_t spread_step_ = 0;              // of spread_steps_; 0 before the spread
  size_t spread_steps_ = 0;
  bool spread_logged_ = false;
  bool in_spread_step_ = false;
  DrainSummary summary_;
  std::optional<DrainSummary> last_drain_;
  uint64_t drains_total_ = 0;
  uint64_t forced_total_ = 0;
  int exit_status_ = 0;
  std::vector<std::function<void(const DrainSummary&)>> waiters_;
  std::function<void(int)> on_exit_;
};

}  // namespace lameduck::coordinator
