#include "coordinator/control/drain_controller.h"

#include <algorithm>
#include <cmath>

namespace lameduck::coordinator {
namespace {

constexpr uint64_t kProgressIntervalMs = 500;
// The spread's closes go in steps at least this far apart (at most 100 steps): smooth enough
// for the clients, and few enough calls to every worker.
constexpr uint64_t kSpreadStepMs = 10;
constexpr size_t kMaxSpreadSteps = 100;
constexpr int kExitOk = 0;
constexpr int kExitForced = 3;

// A signal, or the launched app's own exit, ends lameduck once its drain is done; a drain from
// the admin API or `lameduck drain` leaves it up in kDrained (DESIGN.md, "The drain", step 8).
bool ExitsWhenDone(Trigger trigger) {
  return trigger == Trigger::kSigterm || trigger == Trigger::kSigint ||
         trigger == Trigger::kAppExit;
}

// The evidence an accept grace was judged by: λ (per second, to 3 decimals) and the quiet it
// asked for (null: no traffic, no quiet could be enough).
void AddGraceEvidence(const DrainSummary& summary, nlohmann::json& fields) {
  fields["arrival_rate"] = std::round(summary.arrival_rate * 1000) / 1000;
  fields["quiet_needed_ms"] =
      summary.quiet_needed_ms ? nlohmann::json(*summary.quiet_needed_ms) : nullptr;
}

}  // namespace

std::string_view ToString(State state) {
  switch (state) {
    case State::kStarting:
      return "starting";
    case State::kReady:
      return "ready";
    case State::kDraining:
      return "draining";
    case State::kAppExiting:
      return "app_exiting";
    case State::kDrained:
      return "drained";
    case State::kExited:
      return "exited";
  }
  return "unknown";
}

std::string_view ToString(DrainPhase phase) {
  switch (phase) {
    case DrainPhase::kNone:
      return "none";
    case DrainPhase::kAcceptGrace:
      return "accept_grace";
    case DrainPhase::kInFlight:
      return "waiting_for_in_flight";
    case DrainPhase::kForced:
      return "forced";
    case DrainPhase::kComplete:
      return "complete";
  }
  return "unknown";
}

std::string_view ToString(Trigger trigger) {
  switch (trigger) {
    case Trigger::kSigterm:
      return "SIGTERM";
    case Trigger::kSigint:
      return "SIGINT";
    case Trigger::kAdminPost:
      return "admin_post";
    case Trigger::kAdminWait:
      return "admin_wait";
    case Trigger::kCommand:
      return "drain_command";
    case Trigger::kAppExit:
      return "app_exit";
  }
  return "unknown";
}

nlohmann::json LongLivedJson(const proxy::ProxyCounts& counts) {
  nlohmann::json kinds = nlohmann::json::object();
  for (size_t i = 0; i < proxy::kLongLivedKinds; ++i) {
    kinds[std::string(ToString(static_cast<proxy::LongLivedKind>(i)))] = counts.long_lived[i];
  }
  return kinds;
}

DrainAccounting DrainAccounting::Between(const proxy::ProxyCounts& start,
                                         const proxy::ProxyCounts& end) {
  using proxy::ConnectionEnd;
  const proxy::ProxyTally& a = start.tally;
  const proxy::ProxyTally& b = end.tally;
  auto ended = [&](ConnectionEnd how) { return b.ended_by(how) - a.ended_by(how); };
  DrainAccounting account;
  account.in_flight_at_start = start.in_flight;
  account.arrived = b.requests - a.requests;
  account.completed = b.completed - a.completed;
  account.completed_close = b.completed_close - a.completed_close;
  account.refused = b.refused - a.refused;
  account.aborted = b.aborted - a.aborted;
  account.requests_forced = end.in_flight + (b.requests_forced - a.requests_forced);
  account.open_at_start = start.connections;
  account.accepted = b.accepted - a.accepted;
  account.after_response = ended(ConnectionEnd::kAfterResponse);
  account.idle = ended(ConnectionEnd::kIdle);
  account.long_lived = ended(ConnectionEnd::kLongLived);
  account.by_client = ended(ConnectionEnd::kByClient);
  account.connections_forced = end.connections + ended(ConnectionEnd::kForced);
  return account;
}

bool DrainAccounting::requests_balance() const {
  return in_flight_at_start + arrived ==
         completed + completed_close + refused + aborted + requests_forced;
}

bool DrainAccounting::connections_balance() const {
  return open_at_start + accepted ==
         after_response + idle + long_lived + by_client + connections_forced;
}

nlohmann::json DrainAccounting::ToJson() const {
  return {{"requests",
           {{"in_flight_at_start", in_flight_at_start},
            {"arrived", arrived},
            {"completed", completed},
            {"completed_close", completed_close},
            {"refused", refused},
            {"aborted", aborted},
            {"forced", requests_forced},
            {"balanced", requests_balance()}}},
          {"connections",
           {{"open_at_start", open_at_start},
            {"accepted", accepted},
            {"after_response", after_response},
            {"idle", idle},
            {"long_lived", long_lived},
            {"by_client", by_client},
            {"forced", connections_forced},
            {"balanced", connections_balance()}}}};
}

nlohmann::json DrainSummary::ToJson() const {
  nlohmann::json kinds = nlohmann::json::object();
  for (size_t i = 0; i < proxy::kLongLivedKinds; ++i) {
    const LongLivedSummary& kind = long_lived[i];
    if (kind.empty()) continue;  // only the kinds the drain met
    kinds[std::string(ToString(static_cast<proxy::LongLivedKind>(i)))] = {
        {"at_start", kind.at_start},
        {"ending", kind.ending},
        {"clean", kind.clean},
        {"by_peer", kind.by_peer},
        {"forced", kind.forced}};
  }
  nlohmann::json summary = {
      {"trigger", ToString(trigger)},
      {"duration_ms", duration_ms},
      {"accept_grace_ms", accept_grace_ms},
      {"accept_grace", {{"ended", ToString(grace_end)}, {"arrivals", grace_arrivals}}},
      {"in_flight_wait_ms", in_flight_wait_ms},
      {"connections_at_start", connections_at_start},
      {"in_flight_at_start", in_flight_at_start},
      {"http2_connections_at_start", http2_connections_at_start},
      {"http2_streams_at_start", http2_streams_at_start},
      {"served_during_drain", served_during_drain},
      {"idle_closed", idle_closed},
      {"spread_ms", spread_ms},
      {"long_lived", kinds},
      {"awaiting_fin", awaiting_fin},
      {"forced", forced},
      {"deadline_ms", deadline_ms},
      {"exit_status", exit_status}};
  if (cancelled) summary["cancelled"] = true;
  if (accounting) summary["accounting"] = accounting->ToJson();
  AddGraceEvidence(*this, summary["accept_grace"]);
  if (budget_ms) {
    summary["budget_ms"] = *budget_ms;
    summary["slack_ms"] = slack_ms.value_or(0);
  }
  return summary;
}

DrainController::DrainController(uv_loop_t* loop, const Config& config, proxy::DrainTarget& proxy,
                                 Metrics& metrics, EventLog& log, AppSupervisor& app)
    : loop_(loop),
      config_(config),
      proxy_(proxy),
      metrics_(metrics),
      log_(log),
      app_(app),
      arrivals_(uv_now(loop)) {
  delay_timer_.Init(loop, uv_timer_init, this);
  deadline_timer_.Init(loop, uv_timer_init, this);
  progress_timer_.Init(loop, uv_timer_init, this);
  spread_timer_.Init(loop, uv_timer_init, this);
}

std::string_view DrainController::readiness() const {
  switch (state_) {
    case State::kStarting:
      return "starting";
    case State::kReady:
      return upstream_healthy_ ? "ready" : "upstream_unready";
    default:
      return "draining";
  }
}

void DrainController::OnUpstreamCheck(bool healthy) {
  if (state_ == State::kStarting && healthy) {
    state_ = State::kReady;
    upstream_healthy_ = true;
    log_.Info("ready", {{"upstream", config_.proxy.upstream.text}});
    return;
  }
  if (state_ != State::kReady || healthy == upstream_healthy_) return;
  upstream_healthy_ = healthy;
  if (healthy) {
    log_.Info("ready", {{"upstream", config_.proxy.upstream.text}});
  } else {
    log_.Warn("upstream.unready",
              {{"upstream", config_.proxy.upstream.text},
               {"error", "the app stopped answering readiness checks; /ready says 503"}});
  }
}

void DrainController::OnTrigger(Trigger trigger, std::string_view caller) {
  bool signal = ExitsWhenDone(trigger);
  switch (state_) {
    case State::kStarting:
    case State::kReady:
      exit_when_done_ = signal;
      StartDrain(trigger, caller);
      return;
    case State::kDraining:
    case State::kAppExiting: {
      if (signal && exit_when_done_) {
        log_.Info("signal.ignored",
                  {{"signal", ToString(trigger)}, {"reason", "a drain is already running"}});
        return;
      }
      if (signal) exit_when_done_ = true;  // lameduck exits when this drain is done
      nlohmann::json fields = {{"trigger", ToString(trigger)}, {"running", ToString(trigger_)}};
      if (!caller.empty()) fields["caller"] = caller;
      log_.Info("drain.join", fields);
      return;
    }
    case State::kDrained:
      // Drained by the admin API and waiting for kubelet's SIGTERM: that ends lameduck now.
      if (signal) Exit();
      return;
    case State::kExited:
      return;
  }
}

void DrainController::StartDrain(Trigger trigger, std::string_view caller) {
  before_drain_ = state_;
  state_ = State::kDraining;
  trigger_ = trigger;
  drain_start_ms_ = NowMs();
  listeners_closed_ms_ = 0;
  responses_at_start_ = metrics_.responses_total();
  proxy::ProxyCounts counts = proxy_.counts_now();
  counts_at_start_ = counts;
  summary_ = DrainSummary{};
  summary_.trigger = trigger;
  summary_.connections_at_start = counts.connections;
  summary_.in_flight_at_start = counts.in_flight;
  summary_.http2_connections_at_start = counts.http2_connections;
  summary_.http2_streams_at_start = counts.http2_streams;
  for (size_t i = 0; i < proxy::kLongLivedKinds; ++i) {
    summary_.long_lived[i].at_start = counts.long_lived[i];
  }
  spread_step_ = 0;
  spread_steps_ = 0;
  spread_logged_ = false;
  // The deadline: --drain-timeout, or sooner what the pod's termination grace leaves once the
  // app has had its exit timeout and the spare (the budget's clock starts with the drain).
  summary_.deadline_ms = config_.drain_timeout.count();
  if (config_.termination_grace) {
    summary_.budget_ms = config_.termination_grace->count();
    int64_t left = config_.termination_grace->count() - config_.app_exit_timeout.count() -
                   kDefaults.budget_spare.count();
    summary_.deadline_ms = std::clamp<int64_t>(left, 1, static_cast<int64_t>(summary_.deadline_ms));
  }
  // The accept grace: --drain-delay, or on evidence up to --drain-delay-max; none when the app
  // is gone already (no straggler can be served).
  uint64_t delay_ms = config_.drain_delay.count();
  summary_.grace_end = GraceEnd::kDelay;
  if (trigger == Trigger::kAppExit) {
    delay_ms = 0;
    summary_.grace_end = GraceEnd::kAppExit;
  } else if (config_.drain_delay_max) {
    summary_.arrival_rate = arrivals_.PerSecond(drain_start_ms_);
    summary_.quiet_needed_ms =
        QuietNeededMs(summary_.arrival_rate, config_.drain_min_share, config_.drain_quiet_risk);
  }
  last_arrival_ms_ = drain_start_ms_;
  grace_first_look_ = true;
  nlohmann::json fields = {{"trigger", ToString(trigger)},
                           {"connections", counts.connections},
                           {"in_flight", counts.in_flight},
                           {"idle", counts.idle},
                           {"http2_connections", counts.http2_connections},
                           {"http2_streams", counts.http2_streams},
                           {"long_lived", LongLivedJson(counts)},
                           {"drain_delay_ms", delay_ms},
                           {"drain_timeout_ms", config_.drain_timeout.count()},
                           {"deadline_ms", summary_.deadline_ms}};
  if (!caller.empty()) fields["caller"] = caller;
  if (summary_.budget_ms) fields["budget_ms"] = *summary_.budget_ms;
  if (config_.drain_delay_max && delay_ms > 0) {
    fields["drain_delay_max_ms"] = config_.drain_delay_max->count();
    AddGraceEvidence(summary_, fields);
  }
  log_.Info("drain.start", fields);
  proxy_.CloseAfterCurrentResponse();
  phase_ = DrainPhase::kAcceptGrace;
  uv_timer_start(
      deadline_timer_.get(),
      [](uv_timer_t* timer) {
        if (auto* self = static_cast<DrainController*>(timer->data)) self->OnDeadline();
      },
      summary_.deadline_ms, 0);
  uv_timer_start(
      progress_timer_.get(),
      [](uv_timer_t* timer) {
        if (auto* self = static_cast<DrainController*>(timer->data)) self->LogProgress();
      },
      kProgressIntervalMs, kProgressIntervalMs);
  // With --drain-delay-max the grace looks at its evidence even when its minimum is 0.
  if (delay_ms == 0 && (summary_.grace_end == GraceEnd::kAppExit || !config_.drain_delay_max)) {
    EndAcceptGrace(summary_.grace_end);
    return;
  }
  uv_timer_start(
      delay_timer_.get(),
      [](uv_timer_t* timer) {
        if (auto* self = static_cast<DrainController*>(timer->data)) self->OnGraceTimer();
      },
      delay_ms, 0);
}

void DrainController::OnConnectionOpened() {
  uint64_t now = uv_now(loop_);
  // λ is measured outside drains only: in a grace every response closes its connection, and a
  // drain cancelled and started again must not count that churn as its routers' traffic.
  if (state_ == State::kStarting || state_ == State::kReady) arrivals_.Record(now);
  if (state_ == State::kDraining && phase_ == DrainPhase::kAcceptGrace) {
    ++summary_.grace_arrivals;
    last_arrival_ms_ = now;  // OnGraceTimer looks at it when it next fires: no timer per arrival
  }
}

void DrainController::OnGraceTimer() {
  if (state_ != State::kDraining || phase_ != DrainPhase::kAcceptGrace) return;
  if (!config_.drain_delay_max) {
    EndAcceptGrace(GraceEnd::kDelay);
    return;
  }
  uint64_t now = NowMs();
  uint64_t max_end = drain_start_ms_ + config_.drain_delay_max->count();
  const std::optional<uint64_t>& quiet = summary_.quiet_needed_ms;
  if (quiet && now - last_arrival_ms_ >= *quiet) {
    EndAcceptGrace(grace_first_look_ ? GraceEnd::kMin : GraceEnd::kQuiet);
    return;
  }
  if (now >= max_end) {
    EndAcceptGrace(GraceEnd::kMax);
    return;
  }
  grace_first_look_ = false;
  // Look again when the silence since the last arrival would be long enough, or at the maximum.
  uint64_t next = quiet ? std::min(last_arrival_ms_ + *quiet, max_end) : max_end;
  uv_timer_start(
      delay_timer_.get(),
      [](uv_timer_t* timer) {
        if (auto* self = static_cast<DrainController*>(timer->data)) self->OnGraceTimer();
      },
      next > now ? next - now : 1, 0);
}

void DrainController::EndAcceptGrace(GraceEnd why) {
  if (state_ != State::kDraining || phase_ != DrainPhase::kAcceptGrace) return;
  summary_.grace_end = why;
  CloseListeners();
  phase_ = DrainPhase::kInFlight;
  // The spread ends by half the time left before the deadline: what it tells to end must have
  // time to finish its message and its closing handshake.
  uint64_t elapsed = ElapsedMs();
  uint64_t timeout = summary_.deadline_ms;
  uint64_t left = timeout > elapsed ? timeout - elapsed : 0;
  summary_.spread_ms = std::min<uint64_t>(config_.drain_spread.count(), left / 2);
  spread_steps_ = std::clamp<size_t>(summary_.spread_ms / kSpreadStepMs, 1, kMaxSpreadSteps);
  spread_step_ = 0;
  SpreadStep();
  if (spread_steps_ > 1 && state_ == State::kDraining) {
    uint64_t interval = summary_.spread_ms / spread_steps_;
    uv_timer_start(
        spread_timer_.get(),
        [](uv_timer_t* timer) {
          if (auto* self = static_cast<DrainController*>(timer->data)) self->SpreadStep();
        },
        interval, interval);
  }
  CheckDone();
}

void DrainController::SpreadStep() {
  if (state_ != State::kDraining || spread_step_ >= spread_steps_) return;
  ++spread_step_;
  // A close reports at once, and the report may end the drain: not before this step is counted.
  in_spread_step_ = true;
  proxy::SpreadStep done = proxy_.CloseSpread(spread_step_, spread_steps_);
  in_spread_step_ = false;
  summary_.idle_closed += done.idle_closed;
  for (size_t i = 0; i < proxy::kLongLivedKinds; ++i) {
    summary_.long_lived[i].ending += done.long_lived_ending[i];
  }
  if (spread_step_ == spread_steps_) {
    uv_timer_stop(spread_timer_.get());
    LogSpreadDone();
  }
  CheckDone();
}

void DrainController::LogSpreadDone() {
  if (spread_logged_) return;
  spread_logged_ = true;
  log_.Info("idle.closed", {{"count", summary_.idle_closed}, {"spread_ms", summary_.spread_ms}});
}

void DrainController::OnLongLivedEnded(proxy::LongLivedKind kind, proxy::LongLivedEnd how) {
  if (state_ != State::kDraining) return;
  LongLivedSummary& summary = summary_.long_lived[static_cast<size_t>(kind)];
  if (how == proxy::LongLivedEnd::kClean) ++summary.clean;
  if (how == proxy::LongLivedEnd::kByPeer) ++summary.by_peer;
  // Forced ones are taken from the counts at the deadline: another worker's reports of them
  // arrive after the drain's summary is written.
}

// The end of the accept grace, on time or cut short by the deadline.
void DrainController::CloseListeners() {
  proxy_.StopAccepting();
  listeners_closed_ms_ = NowMs();
  summary_.accept_grace_ms = ElapsedMs();
  nlohmann::json fields = {{"after_ms", summary_.accept_grace_ms},
                           {"reason", ToString(summary_.grace_end)},
                           {"arrivals", summary_.grace_arrivals}};
  if (config_.drain_delay_max) {
    AddGraceEvidence(summary_, fields);
    fields["quiet_ms"] = listeners_closed_ms_ - last_arrival_ms_;
  }
  log_.Info("listener.closed", fields);
}

void DrainController::OnDeadline() {
  if (state_ != State::kDraining) return;
  if (phase_ == DrainPhase::kAcceptGrace) {
    summary_.grace_end = GraceEnd::kDeadline;
    CloseListeners();
  }
  proxy::ProxyCounts counts = proxy_.counts_now();
  for (size_t i = 0; i < proxy::kLongLivedKinds; ++i) {
    summary_.long_lived[i].forced = counts.long_lived[i];
  }
  size_t forced = proxy_.ForceCloseAll();
  phase_ = DrainPhase::kForced;
  log_.Warn("drain.forced", {{"count", forced}, {"after_ms", ElapsedMs()}});
  Finish(forced, counts);
}

void DrainController::CheckDone() {
  // Never sleeps longer than it must: the drain ends the moment the last connection closes.
  if (state_ == State::kDraining && phase_ == DrainPhase::kInFlight && !in_spread_step_ &&
      proxy_.counts().connections == 0) {
    Finish(0, proxy_.counts_now());
  }
}

void DrainController::LogProgress() {
  if (state_ != State::kDraining) return;
  proxy::ProxyCounts counts = proxy_.counts();
  log_.Info("drain.progress", {{"phase", ToString(phase_)},
                               {"elapsed_ms", ElapsedMs()},
                               {"connections", counts.connections},
                               {"in_flight", counts.in_flight},
                               {"idle", counts.idle},
                               {"upgraded", counts.upgraded},
                               {"http2_connections", counts.http2_connections},
                               {"http2_streams", counts.http2_streams},
                               {"long_lived", LongLivedJson(counts)}});
}

void DrainController::StopDrainTimers() {
  uv_timer_stop(delay_timer_.get());
  uv_timer_stop(deadline_timer_.get());
  uv_timer_stop(progress_timer_.get());
  uv_timer_stop(spread_timer_.get());
}

Undrain DrainController::CancelDrain(std::string_view caller) {
  if (state_ == State::kStarting || state_ == State::kReady) return Undrain::kNotDraining;
  if (state_ != State::kDraining || phase_ != DrainPhase::kAcceptGrace) return Undrain::kTooLate;
  // kubelet sends its SIGTERM once, and a dead app has nothing to be ready for: cancelling
  // either would leave lameduck up, ready or not, until SIGKILL.
  if (exit_when_done_ || app_exit_.has_value()) return Undrain::kExiting;
  StopDrainTimers();
  proxy_.ResumeKeepAlive();
  state_ = before_drain_;
  phase_ = DrainPhase::kNone;
  summary_.cancelled = true;
  summary_.duration_ms = ElapsedMs();
  summary_.accept_grace_ms = summary_.duration_ms;
  summary_.served_during_drain = metrics_.responses_total() - responses_at_start_;
  nlohmann::json fields = {{"trigger", ToString(trigger_)},
                           {"after_ms", summary_.duration_ms},
                           {"arrivals", summary_.grace_arrivals},
                           {"readiness", readiness()}};
  if (!caller.empty()) fields["caller"] = caller;
  log_.Info("drain.cancelled", fields);
  AnswerWaiters();
  return Undrain::kCancelled;
}

void DrainController::AnswerWaiters() {
  auto waiters = std::move(waiters_);
  waiters_.clear();
  for (auto& waiter : waiters) waiter(summary_);
}

void DrainController::Finish(uint64_t forced, const proxy::ProxyCounts& end) {
  StopDrainTimers();
  summary_.accounting = DrainAccounting::Between(counts_at_start_, end);
  if (!summary_.accounting->requests_balance() || !summary_.accounting->connections_balance()) {
    log_.Warn("drain.unbalanced",
              {{"accounting", summary_.accounting->ToJson()},
               {"error", "a request or connection in no bucket, or in two: a bug in lameduck"}});
  }
  if (spread_steps_ > 0) LogSpreadDone();  // a spread the drain's end cut short
  if (phase_ != DrainPhase::kForced) phase_ = DrainPhase::kComplete;
  uint64_t now = NowMs();
  summary_.duration_ms = now - drain_start_ms_;
  summary_.in_flight_wait_ms = listeners_closed_ms_ == 0 ? 0 : now - listeners_closed_ms_;
  summary_.served_during_drain = metrics_.responses_total() - responses_at_start_;
  summary_.forced = forced;
  summary_.awaiting_fin = forced > 0 ? 0 : proxy_.counts().finishing;
  if (summary_.budget_ms) {
    summary_.slack_ms = static_cast<int64_t>(*summary_.budget_ms) -
                        static_cast<int64_t>(summary_.duration_ms) -
                        config_.app_exit_timeout.count();
  }
  ++drains_total_;
  forced_total_ += forced;
  exit_status_ = forced > 0 ? kExitForced : kExitOk;
  summary_.exit_status = exit_status_;
  last_drain_ = summary_;
  state_ = State::kAppExiting;
  nlohmann::json fields = summary_.ToJson();
  fields.erase("exit_status");  // known only once the app has been told (launch mode)
  log_.Info("drain.complete", fields);
  if (app_exit_) {
    // The launched app is gone already: nothing to tell.
    AppSupervisor::Outcome outcome;
    outcome.exited_seen = true;
    outcome.status = app_exit_->status;
    OnAppTold(outcome);
    return;
  }
  app_.TellAppToExit([this](const AppSupervisor::Outcome& outcome) { OnAppTold(outcome); });
}

void DrainController::OnAppTold(const AppSupervisor::Outcome& outcome) {
  if (state_ != State::kAppExiting) return;
  bool launched = !config_.app_command.empty();
  if (launched && outcome.status) exit_status_ = *outcome.status;  // the APP's own status
  summary_.exit_status = exit_status_;
  last_drain_ = summary_;
  state_ = State::kDrained;
  AnswerWaiters();
  if (exit_when_done_ || launched) Exit();
}

void DrainController::OnAppExit(const AppExit& exit) {
  app_exit_ = exit;
  if (state_ == State::kStarting || state_ == State::kReady) {
    // The app died on its own: finish what can be finished, then exit with its status.
    exit_when_done_ = true;
    StartDrain(Trigger::kAppExit);
  }
}

void DrainController::WhenDrained(std::function<void(const DrainSummary&)> callback) {
  if ((state_ == State::kDrained || state_ == State::kExited) && last_drain_) {
    callback(*last_drain_);
    return;
  }
  waiters_.push_back(std::move(callback));
}

void DrainController::Exit() {
  if (state_ == State::kExited) return;
  if (!config_.app_command.empty() && app_exit_) exit_status_ = app_exit_->status;
  state_ = State::kExited;
  delay_timer_.Close();
  deadline_timer_.Close();
  progress_timer_.Close();
  spread_timer_.Close();
  log_.Info("exit", {{"status", exit_status_}});
  if (on_exit_) on_exit_(exit_status_);
}

}  // namespace lameduck::coordinator
