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
