// The drain's state machine against a fake DrainTarget: which calls the proxy gets, in which
// order, and when the drain ends; no sockets. Timing is real (a libuv loop) but short.
#include "coordinator/control/drain_controller.h"

#include <gtest/gtest.h>
#include <uv.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "coordinator/admin/admin_api.h"
#include "coordinator/control/proxy_event_fanout.h"
#include "tests/support/fake_drain_target.h"

namespace lameduck::coordinator {
namespace {

using namespace std::chrono_literals;

class DrainControllerTest : public ::testing::Test {
 protected:
  DrainControllerTest() {
    uv_loop_init(&loop_);
    config_.drain_delay = 50ms;
    config_.drain_timeout = 2s;
    config_.drain_spread = 0ms;  // the spread has a test of its own
    log_file_ = std::tmpfile();
  }
  ~DrainControllerTest() override {
    controller_.reset();
    app_.reset();
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
    std::fclose(log_file_);
  }
  DrainController& Make() {
    log_ = std::make_unique<EventLog>(log_file_, LogFormat::kJson, LogLevel::kDebug);
    app_ = std::make_unique<AppSupervisor>(&loop_, config_, *log_);
    controller_ =
        std::make_unique<DrainController>(&loop_, config_, target_, metrics_, *log_, *app_);
    controller_->set_on_exit([this](int status) { exit_status_ = status; });
    return *controller_;
  }
  // Runs the loop until cond holds or the deadline passes.
  template <typename Cond>
  bool RunUntil(Cond cond, std::chrono::milliseconds timeout = 3s) {
    uv_timer_t timer;
    uv_timer_init(&loop_, &timer);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    uv_timer_start(
        &timer, [](uv_timer_t*) {}, 5, 5);  // keeps the loop turning
    while (!cond() && std::chrono::steady_clock::now() < deadline) uv_run(&loop_, UV_RUN_ONCE);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer), nullptr);
    uv_run(&loop_, UV_RUN_NOWAIT);
    return cond();
  }

  uv_loop_t loop_;
  Config config_;
  testing::FakeDrainTarget target_;
  Metrics metrics_;
  std::FILE* log_file_;
  std::unique_ptr<EventLog> log_;
  std::unique_ptr<AppSupervisor> app_;
  std::unique_ptr<DrainController> controller_;
  std::optional<int> exit_status_;
};

TEST_F(DrainControllerTest, IsStartingUntilTheUpstreamAnswersThenReady) {
  DrainController& controller = Make();
  EXPECT_EQ(controller.readiness(), "starting");
  controller.OnUpstreamCheck(false);
  EXPECT_EQ(controller.readiness(), "starting");
  controller.OnUpstreamCheck(true);
  EXPECT_EQ(controller.readiness(), "ready");
  controller.OnUpstreamCheck(false);
  EXPECT_EQ(controller.readiness(), "upstream_unready");
}

TEST_F(DrainControllerTest, RunsTheStepsInOrderAndEndsWhenTheLastConnectionCloses) {
  DrainController& controller = Make();
  controller.OnUpstreamCheck(true);
  target_.open = {.connections = 3, .in_flight = 1, .idle = 2};
  controller.OnTrigger(Trigger::kSigterm);
  EXPECT_EQ(controller.readiness(), "draining");  // at once
  EXPECT_EQ(target_.calls, (std::vector<std::string>{"close_after_response"}));
  ASSERT_TRUE(RunUntil([&] { return controller.phase() == DrainPhase::kInFlight; }));
  EXPECT_EQ(target_.calls,
            (std::vector<std::string>{"close_after_response", "stop_accepting", "close_idle"}));
  EXPECT_EQ(controller.state(), State::kDraining);  // one request still in flight
  target_.open = {};
  controller.OnConnectionClosed();
  EXPECT_EQ(controller.state(), State::kExited);  // no sleep between the last close and the end
  EXPECT_EQ(exit_status_, 0);
  ASSERT_TRUE(controller.last_drain());
  EXPECT_EQ(controller.last_drain()->idle_closed, 2u);
  EXPECT_EQ(controller.last_drain()->forced, 0u);
}

// The closes at the end of the accept grace are spread over --drain-spread: a share of the idle
// connections at each step of 10 ms, the last step taking what is left.
TEST_F(DrainControllerTest, SpreadsTheClosesOverTheDrainSpread) {
  config_.drain_spread = 300ms;
  DrainController& controller = Make();
  controller.OnUpstreamCheck(true);
  target_.open = {.connections = 101, .in_flight = 1, .idle = 100};
  controller.OnTrigger(Trigger::kSigterm);
  ASSERT_TRUE(RunUntil([&] { return controller.phase() == DrainPhase::kInFlight; }));
  EXPECT_LT(target_.open.idle, 100u);  // the first step closed a share, not all
  EXPECT_GT(target_.open.idle, 50u);
  ASSERT_TRUE(RunUntil([&] { return target_.open.idle == 0; }));
  const auto& steps = target_.spread_steps;
  ASSERT_EQ(steps.size(), 30u);
  EXPECT_EQ(steps.front().step, 1u);
  EXPECT_EQ(steps.back().step, 30u);
  EXPECT_EQ(steps.back().steps, 30u);
  EXPECT_GE(steps.back().at - steps.front().at, 250ms);  // spread out, not in one burst
  EXPECT_EQ(controller.state(), State::kDraining);       // the request in flight
  target_.open = {};
  controller.OnConnectionClosed();
  ASSERT_TRUE(controller.last_drain());
  EXPECT_EQ(controller.last_drain()->idle_closed, 100u);
  EXPECT_EQ(controller.last_drain()->spread_ms, 300u);
}

// Long-lived exchanges are counted by kind: open at the start, how each ended during the drain,
// and those still open at the deadline as forced; only the kinds the drain met are reported.
TEST_F(DrainControllerTest, CountsLongLivedExchangesByKindAndHowTheyEnded) {
  using proxy::LongLivedEnd;
  using proxy::LongLivedKind;
  constexpr size_t kWebSocket = static_cast<size_t>(LongLivedKind::kWebSocket);
  constexpr size_t kSse = static_cast<size_t>(LongLivedKind::kSse);
  config_.drain_timeout = 300ms;
  DrainController& controller = Make();
  controller.OnUpstreamCheck(true);
  target_.open = {.connections = 3, .in_flight = 1, .upgraded = 2};
  target_.open.long_lived[kWebSocket] = 2;
  target_.open.long_lived[kSse] = 1;
  controller.OnLongLivedEnded(LongLivedKind::kWebSocket, LongLivedEnd::kByPeer);  // before: not
  controller.OnTrigger(Trigger::kSigterm);
  ASSERT_TRUE(RunUntil([&] { return controller.phase() == DrainPhase::kInFlight; }));
  controller.OnLongLivedEnded(LongLivedKind::kWebSocket, LongLivedEnd::kClean);
  controller.OnLongLivedEnded(LongLivedKind::kSse, LongLivedEnd::kByPeer);
  target_.open = {.connections = 1, .upgraded = 1};
  target_.open.long_lived[kWebSocket] = 1;  // cut at the deadline
  ASSERT_TRUE(RunUntil([&] { return exit_status_.has_value(); }));
  EXPECT_EQ(exit_status_, 3);
  ASSERT_TRUE(controller.last_drain());
  const DrainSummary& summary = *controller.last_drain();
  EXPECT_EQ(summary.long_lived[kWebSocket].at_start, 2u);
  EXPECT_EQ(summary.long_lived[kWebSocket].clean, 1u);
  EXPECT_EQ(summary.long_lived[kWebSocket].by_peer, 0u);
  EXPECT_EQ(summary.long_lived[kWebSocket].forced, 1u);
  EXPECT_EQ(summary.long_lived[kSse].at_start, 1u);
  EXPECT_EQ(summary.long_lived[kSse].by_peer, 1u);
  nlohmann::json json = summary.ToJson();
  EXPECT_EQ(json["long_lived"]["websocket"]["clean"], 1);
  EXPECT_EQ(json["long_lived"]["sse"]["by_peer"], 1);
  EXPECT_FALSE(json["long_lived"].contains("grpc_stream"));
}

// What the spread tells to end needs time to end: the spread is over by half the time left
// before the deadline, whatever --drain-spread says.
TEST_F(DrainControllerTest, TheSpreadEndsByHalfTheTimeLeftBeforeTheDeadline) {
  config_.drain_spread = 10s;
  config_.drain_timeout = 1s;
  DrainController& controller = Make();
  controller.OnUpstreamCheck(true);
  target_.open = {.connections = 2, .idle = 2};
  controller.OnTrigger(Trigger::kSigterm);
  ASSERT_TRUE(RunUntil([&] { return controller.state() == State::kExited; }));
  ASSERT_TRUE(controller.last_drain());
  EXPECT_LE(controller.last_drain()->spread_ms, 500u);
  EXPECT_GE(controller.last_drain()->spread_ms, 300u);
  EXPECT_EQ(controller.last_drain()->idle_closed, 2u);
  EXPECT_EQ(controller.last_drain()->forced, 0u);
}

// A connection whose last response is written waits only for the client's FIN: it owes
// nothing, so the drain ends without waiting for it, and says how many there were.
TEST_F(DrainControllerTest, EndsWhenTheLastConnectionOnlyAwaitsTheClientsFinAndCountsThem) {
  DrainController& controller = Make();
  controller.OnUpstreamCheck(true);
  target_.open = {.connections = 2, .in_flight = 2};
  controller.OnTrigger(Trigger::kSigterm);
  ASSERT_TRUE(RunUntil([&] { return controller.phase() == DrainPhase::kInFlight; }));
  target_.open = {.connections = 1, .finishing = 1, .in_flight = 1};
  controller.OnConnectionFinished();
  EXPECT_EQ(controller.state(), State::kDraining);
  target_.open = {.connections = 0, .finishing = 2};
  controller.OnConnectionFinished();
  EXPECT_EQ(controller.state(), State::kExited);
  ASSERT_TRUE(controller.last_drain());
  EXPECT_EQ(controller.last_drain()->awaiting_fin, 2u);
  EXPECT_EQ(controller.last_drain()->forced, 0u);
  EXPECT_EQ(exit_status_, 0);
}

// Cut short by the deadline, the accept grace still closes the listeners and is recorded.
TEST_F(DrainControllerTest, ADeadlineInsideTheAcceptGraceClosesTheListenersAndRecordsTheGrace) {
  config_.drain_delay = 5s;
  config_.drain_timeout = 100ms;
  DrainController& controller = Make();
  target_.open = {.connections = 1, .in_flight = 1};
  controller.OnTrigger(Trigger::kSigterm);
  ASSERT_TRUE(RunUntil([&] { return exit_status_.has_value(); }));
  EXPECT_EQ(exit_status_, 3);
  EXPECT_EQ(target_.calls,
            (std::vector<std::string>{"close_after_response", "stop_accepting", "force_close"}));
  ASSERT_TRUE(controller.last_drain());
  EXPECT_GE(controller.last_drain()->accept_grace_ms, 90u);
  EXPECT_LE(controller.last_drain()->accept_grace_ms, controller.last_drain()->duration_ms);
}

TEST_F(DrainControllerTest, ForcesWhatIsLeftAtTheDeadlineAndExits3) {
  config_.drain_timeout = 200ms;
  DrainController& controller = Make();
  target_.open = {.connections = 2, .in_flight = 2};
  controller.OnTrigger(Trigger::kSigterm);
  ASSERT_TRUE(RunUntil([&] { return exit_status_.has_value(); }));
  EXPECT_EQ(exit_status_, 3);
  EXPECT_EQ(controller.last_drain()->forced, 2u);
  EXPECT_EQ(target_.calls.back(), "force_close");
}

TEST_F(DrainControllerTest, AnAdminDrainStaysDrainedUntilASignalThenExitsAtOnce) {
  DrainController& controller = Make();
  controller.OnTrigger(Trigger::kAdminPost);
  bool answered = false;
  controller.WhenDrained([&](const DrainSummary& summary) {
    answered = true;
    EXPECT_EQ(summary.trigger, Trigger::kAdminPost);
  });
  ASSERT_TRUE(RunUntil([&] { return controller.state() == State::kDrained; }));
  EXPECT_TRUE(answered);
  EXPECT_FALSE(exit_status_.has_value());
  // A later waiter is answered at once with the same summary.
  bool late = false;
  controller.WhenDrained([&](const DrainSummary&) { late = true; });
  EXPECT_TRUE(late);
  controller.OnTrigger(Trigger::kSigterm);
  EXPECT_EQ(exit_status_, 0);
}

TEST_F(DrainControllerTest, TriggersDuringADrainJoinItInsteadOfRestartingIt) {
  DrainController& controller = Make();
  target_.open = {.connections = 1, .in_flight = 1};
  controller.OnTrigger(Trigger::kAdminPost);
  controller.OnTrigger(Trigger::kAdminWait);
  controller.OnTrigger(Trigger::kSigterm);  // joins; lameduck now exits when done
  controller.OnTrigger(Trigger::kSigterm);  // ignored
  ASSERT_TRUE(RunUntil([&] { return controller.phase() == DrainPhase::kInFlight; }));
  int close_after = 0;
  for (const auto& call : target_.calls) close_after += call == "close_after_response";
  EXPECT_EQ(close_after, 1);
  target_.open = {};
  controller.OnConnectionClosed();
  EXPECT_EQ(exit_status_, 0);
  EXPECT_EQ(controller.last_drain()->trigger, Trigger::kAdminPost);
}

TEST_F(DrainControllerTest, AnAppThatDiesSkipsTheAcceptGraceAndExitsWithItsStatus) {
  config_.drain_delay = 5s;
  config_.app_command = {"/bin/true"};  // launch mode, as far as the controller is concerned
  DrainController& controller = Make();
  controller.OnUpstreamCheck(true);
  controller.OnAppExit({.pid = 42, .status = 7});
  EXPECT_EQ(controller.state(), State::kExited);
  EXPECT_EQ(exit_status_, 7);
  EXPECT_EQ(controller.last_drain()->trigger, Trigger::kAppExit);
}

// --drain-delay-max: a pod that took connections before the drain ends its grace once they
// stop for long enough (here after one straggler in the grace), not at the maximum.
TEST_F(DrainControllerTest, ABusyPodsGraceEndsOnceItsRoutersFallSilent) {
  config_.drain_delay = 50ms;
  config_.drain_delay_max = 5s;
  config_.drain_min_share = 0.1;
  config_.drain_quiet_risk = 0.001;
  DrainController& controller = Make();
  controller.OnUpstreamCheck(true);
  for (int i = 0; i < 40; ++i) controller.OnConnectionOpened();
  RunUntil([] { return false; }, 200ms);  // about 200/s since start
  controller.OnTrigger(Trigger::kSigterm);
  RunUntil([] { return false; }, 100ms);
  controller.OnConnectionOpened();  // a router still sends one
  ASSERT_TRUE(RunUntil([&] { return controller.state() == State::kExited; }, 6s));
  const DrainSummary& drain = *controller.last_drain();
  EXPECT_EQ(drain.grace_end, GraceEnd::kQuiet);
  EXPECT_GT(drain.arrival_rate, 20.0);
  ASSERT_TRUE(drain.quiet_needed_ms);
  EXPECT_EQ(drain.grace_arrivals, 1u);
  // Ended by the silence after the straggler, well before the maximum.
  EXPECT_GE(drain.accept_grace_ms, 100 + *drain.quiet_needed_ms - 10);
  EXPECT_LT(drain.accept_grace_ms, 4'000u);
  nlohmann::json json = drain.ToJson();
  EXPECT_EQ(json["accept_grace"]["ended"], "quiet");
  EXPECT_EQ(json["accept_grace"]["arrivals"], 1);
}

// A keep-alive pod's requests are no evidence: in the grace its clients' next connections go to
// any endpoint (kube-proxy balances connections), so only new connections set the rate, and
// one connection's many requests leave the grace at its maximum.
TEST_F(DrainControllerTest, AKeepAlivePodsRequestsAreNoEvidence) {
  config_.drain_delay = 10ms;
  config_.drain_delay_max = 300ms;
  DrainController& controller = Make();
  controller.OnUpstreamCheck(true);
  ProxyEventFanout proxy_events(metrics_, controller);  // as main wires the proxy's events
  proxy_events.OnConnectionOpened();
  for (int i = 0; i < 300; ++i) proxy_events.OnResponseComplete(200, proxy::Protocol::kHttp1);
  RunUntil([] { return false; }, 100ms);
  controller.OnTrigger(Trigger::kSigterm);
  ASSERT_TRUE(RunUntil([&] { return controller.state() == State::kExited; }));
  const DrainSummary& drain = *controller.last_drain();
  EXPECT_LT(drain.arrival_rate, 20.0);  // one connection in about 0.1 s
  EXPECT_EQ(drain.grace_end, GraceEnd::kMax);
  EXPECT_GE(drain.accept_grace_ms, 290u);
}

// --drain-delay 0 with a maximum: the grace has no minimum but still waits for its evidence
// (here none, so the whole maximum).
TEST_F(DrainControllerTest, AGraceWithoutAMinimumStillWaitsForItsEvidence) {
  config_.drain_delay = 0ms;
  config_.drain_delay_max = 300ms;
  DrainController& controller = Make();
  controller.OnUpstreamCheck(true);
  controller.OnTrigger(Trigger::kSigterm);
  EXPECT_EQ(controller.phase(), DrainPhase::kAcceptGrace);
  ASSERT_TRUE(RunUntil([&] { return controller.state() == State::kExited; }));
  const DrainSummary& drain = *controller.last_drain();
  EXPECT_EQ(drain.grace_end, GraceEnd::kMax);
  EXPECT_GE(drain.accept_grace_ms, 290u);
}

// λ is the routers' traffic outside drains: the churn of a cancelled drain's grace (where every
// response closed its connection) does not shorten the quiet the next drain needs.
TEST_F(DrainControllerTest, AGraceCancelledLeavesTheRateItMeasuredAlone) {
  config_.drain_delay = 5s;
  config_.drain_delay_max = 10s;
  DrainController& controller = Make();
  controller.OnUpstreamCheck(true);
  for (int i = 0; i < 10; ++i) controller.OnConnectionOpened();
  RunUntil([] { return false; }, 100ms);
  std::vector<double> rates;
  auto drain_and_cancel = [&](int arrivals) {
    controller.OnTrigger(Trigger::kAdminPost);
    controller.WhenDrained(
        [&](const DrainSummary& summary) { rates.push_back(summary.arrival_rate); });
    for (int i = 0; i < arrivals; ++i) controller.OnConnectionOpened();
    EXPECT_EQ(controller.CancelDrain(), Undrain::kCancelled);
  };
  drain_and_cancel(500);  // the grace's churn
  drain_and_cancel(0);
  ASSERT_EQ(rates.size(), 2u);
  EXPECT_GT(rates[0], 0.0);
  EXPECT_LE(rates[1], rates[0]);
}

// A drain that will end lameduck cannot be cancelled: kubelet sends its SIGTERM once, and a
// dead app has nothing to be ready for.
TEST_F(DrainControllerTest, ASigtermDrainCannotBeUndrained) {
  config_.drain_delay = 5s;
  DrainController& controller = Make();
  controller.OnUpstreamCheck(true);
  controller.OnTrigger(Trigger::kSigterm);
  EXPECT_EQ(controller.CancelDrain(), Undrain::kExiting);
  EXPECT_EQ(controller.state(), State::kDraining);
}

TEST_F(DrainControllerTest, ADrainASigtermJoinedCannotBeUndrained) {
  config_.drain_delay = 5s;
  DrainController& controller = Make();
  controller.OnUpstreamCheck(true);
  controller.OnTrigger(Trigger::kAdminPost);  // the preStop hook
  controller.OnTrigger(Trigger::kSigterm);    // then kubelet's SIGTERM
  EXPECT_EQ(controller.CancelDrain(), Undrain::kExiting);
  EXPECT_EQ(controller.state(), State::kDraining);
}

TEST_F(DrainControllerTest, ADrainWhoseAppDiedCannotBeUndrained) {
  config_.drain_delay = 5s;
  DrainController& controller = Make();
  controller.OnUpstreamCheck(true);
  controller.OnTrigger(Trigger::kAdminPost);
  controller.OnAppExit({.pid = 42, .status = 1});  // during the grace
  EXPECT_EQ(controller.CancelDrain(), Undrain::kExiting);
  EXPECT_EQ(controller.state(), State::kDraining);
}

// Silence proves nothing where nothing came before: a quiet pod keeps the whole maximum.
TEST_F(DrainControllerTest, AQuietPodKeepsTheWholeMaximumGrace) {
  config_.drain_delay = 50ms;
  config_.drain_delay_max = 300ms;
  DrainController& controller = Make();
  controller.OnUpstreamCheck(true);
  controller.OnTrigger(Trigger::kSigterm);
  ASSERT_TRUE(RunUntil([&] { return controller.state() == State::kExited; }));
  const DrainSummary& drain = *controller.last_drain();
  EXPECT_EQ(drain.grace_end, GraceEnd::kMax);
  EXPECT_FALSE(drain.quiet_needed_ms);
  EXPECT_GE(drain.accept_grace_ms, 290u);
  EXPECT_TRUE(drain.ToJson()["accept_grace"]["quiet_needed_ms"].is_null());
}

// Routers that keep sending keep the grace open to its maximum.
TEST_F(DrainControllerTest, TrafficThatKeepsComingHoldsTheGraceToItsMaximum) {
  config_.drain_delay = 50ms;
  config_.drain_delay_max = 400ms;
  config_.drain_min_share = 0.5;
  DrainController& controller = Make();
  controller.OnUpstreamCheck(true);
  for (int i = 0; i < 20; ++i) controller.OnConnectionOpened();
  RunUntil([] { return false; }, 100ms);
  controller.OnTrigger(Trigger::kSigterm);
  while (controller.phase() == DrainPhase::kAcceptGrace) {
    controller.OnConnectionOpened();
    RunUntil([] { return false; }, 10ms);
  }
  ASSERT_TRUE(RunUntil([&] { return controller.state() == State::kExited; }));
  const DrainSummary& drain = *controller.last_drain();
  EXPECT_EQ(drain.grace_end, GraceEnd::kMax);
  EXPECT_GE(drain.accept_grace_ms, 390u);
  EXPECT_GT(drain.grace_arrivals, 5u);
}

// When the silence is already long enough at --drain-delay, the grace ends there.
TEST_F(DrainControllerTest, AVeryBusyPodEndsItsGraceAtTheMinimum) {
  config_.drain_delay = 100ms;
  config_.drain_delay_max = 5s;
  config_.drain_min_share = 0.5;
  DrainController& controller = Make();
  controller.OnUpstreamCheck(true);
  for (int i = 0; i < 5000; ++i) controller.OnConnectionOpened();
  RunUntil([] { return false; }, 50ms);
  controller.OnTrigger(Trigger::kSigterm);
  ASSERT_TRUE(RunUntil([&] { return controller.state() == State::kExited; }));
  const DrainSummary& drain = *controller.last_drain();
  EXPECT_EQ(drain.grace_end, GraceEnd::kMin);
  EXPECT_LT(drain.accept_grace_ms, 2'000u);
}

// --termination-grace: the deadline is what the budget leaves after the app's exit timeout and
// the spare, when that is sooner than --drain-timeout; the summary carries budget and slack.
TEST_F(DrainControllerTest, TheShutdownBudgetBoundsTheDeadlineAndReportsTheSlack) {
  config_.drain_delay = 0ms;
  config_.drain_timeout = 10s;
  config_.app_exit_timeout = 1s;
  config_.termination_grace = 3200ms;  // leaves 3.2 - 1 - 2 = 0.2 s
  DrainController& controller = Make();
  target_.open = {.connections = 1, .in_flight = 1};
  controller.OnTrigger(Trigger::kSigterm);
  ASSERT_TRUE(RunUntil([&] { return exit_status_.has_value(); }));
  EXPECT_EQ(exit_status_, 3);
  const DrainSummary& drain = *controller.last_drain();
  EXPECT_EQ(drain.deadline_ms, 200u);
  EXPECT_LT(drain.duration_ms, 2'000u);
  ASSERT_TRUE(drain.budget_ms);
  EXPECT_EQ(*drain.budget_ms, 3200u);
  ASSERT_TRUE(drain.slack_ms);
  EXPECT_EQ(*drain.slack_ms, 3200 - static_cast<int64_t>(drain.duration_ms) - 1000);
  nlohmann::json json = drain.ToJson();
  EXPECT_EQ(json["budget_ms"], 3200);
  EXPECT_EQ(json["deadline_ms"], 200);
}

// A cancelled drain goes back to where it came from; its waiters hear it was cancelled, and a
// later drain runs in full.
TEST_F(DrainControllerTest, ACancelledDrainAnswersItsWaitersAndALaterOneRunsInFull) {
  config_.drain_delay = 5s;
  DrainController& controller = Make();
  controller.OnUpstreamCheck(true);
  controller.OnTrigger(Trigger::kAdminWait, "kube-lifecycle/1.30 from 10.1.1.1");
  std::optional<DrainSummary> heard;
  controller.WhenDrained([&](const DrainSummary& summary) { heard = summary; });
  controller.OnConnectionOpened();
  EXPECT_EQ(controller.CancelDrain("curl/8 from 127.0.0.1"), Undrain::kCancelled);
  EXPECT_EQ(controller.state(), State::kReady);
  EXPECT_EQ(controller.phase(), DrainPhase::kNone);
  ASSERT_TRUE(heard);
  EXPECT_TRUE(heard->cancelled);
  EXPECT_EQ(heard->grace_arrivals, 1u);
  EXPECT_EQ(heard->ToJson()["cancelled"], true);
  EXPECT_EQ(controller.drains_total(), 0u);
  EXPECT_EQ(controller.CancelDrain(), Undrain::kNotDraining);
  // The cancelled drain's timers are gone: nothing happens in its 5 s.
  EXPECT_FALSE(RunUntil([&] { return target_.calls.back() == "stop_accepting"; }, 200ms));
  config_.drain_delay = 0ms;
  controller.OnTrigger(Trigger::kSigterm);
  EXPECT_EQ(controller.CancelDrain(), Undrain::kTooLate);
  ASSERT_TRUE(RunUntil([&] { return exit_status_.has_value(); }));
  EXPECT_EQ(exit_status_, 0);
  EXPECT_FALSE(controller.last_drain()->cancelled);
  std::rewind(log_file_);
  std::string log(1 << 16, '\0');
  log.resize(std::fread(log.data(), 1, log.size(), log_file_));
  EXPECT_NE(log.find(R"("caller":"kube-lifecycle/1.30 from 10.1.1.1")"), std::string::npos) << log;
  EXPECT_NE(log.find(R"("event":"drain.cancelled")"), std::string::npos) << log;
}

// Found by fuzz_config (tests/fuzz/regressions/fuzz_config/status-non-utf8-app-command): a
// configuration string that is not UTF-8 made /status throw, which ended lameduck.
TEST_F(DrainControllerTest, StatusSurvivesConfigurationThatIsNotUtf8) {
  config_.upstream_ready = std::string("/\xb4");
  DrainController& controller = Make();
  AdminApi api(config_, controller, target_, metrics_, *log_, 0);
  AdminRequest request;
  request.method = "GET";
  request.target = "/status";
  request.peer = "127.0.0.1";
  request.trusted_peer = true;
  AdminResponse response = api.Handle(request, 1000);
  EXPECT_EQ(response.status, 200);
  EXPECT_NO_THROW(nlohmann::json::parse(response.body));
}

}  // namespace
}  // namespace lameduck::coordinator
