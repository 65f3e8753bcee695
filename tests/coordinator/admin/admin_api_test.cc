// AdminApi without sockets: each path and method and its answer, and who may drain: loopback
// and the unix socket always; other addresses only with the admin token (403 when none is
// configured, 401 when it is missing or wrong). A real DrainController over a fake DrainTarget.
#include "coordinator/admin/admin_api.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "coordinator/app/app_supervisor.h"
#include "tests/support/fake_drain_target.h"
#include "tests/support/loop_runner.h"

namespace lameduck::coordinator {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

class AdminApiTest : public ::testing::Test {
 protected:
  AdminApiTest() : log_file_(std::tmpfile()) {}
  ~AdminApiTest() override {
    api_.reset();
    controller_.reset();
    app_.reset();
    std::fclose(log_file_);
  }
  AdminApi& Make() {
    log_ = std::make_unique<EventLog>(log_file_, LogFormat::kJson, LogLevel::kDebug);
    app_ = std::make_unique<AppSupervisor>(loop_.loop(), config_, *log_);
    controller_ =
        std::make_unique<DrainController>(loop_.loop(), config_, target_, metrics_, *log_, *app_);
    api_ = std::make_unique<AdminApi>(config_, *controller_, target_, metrics_, *log_, 1000);
    return *api_;
  }
  AdminResponse Ask(std::string_view method, std::string_view target,
                    std::string_view peer = "127.0.0.1", std::string_view authorization = {},
                    std::string_view user_agent = "curl/8") {
    AdminRequest request;
    request.method = method;
    request.target = target;
    request.peer = peer;
    request.trusted_peer = peer == "unix" || IsLoopback(peer);
    request.authorization = authorization;
    request.user_agent = user_agent;
    return api_->Handle(request, 4000);
  }
  bool draining() const { return controller_->state() == State::kDraining; }

  testing::LoopRunner loop_;  // first: outlives the controller's timers
  Config config_;
  testing::FakeDrainTarget target_;
  Metrics metrics_;
  std::FILE* log_file_;
  std::unique_ptr<EventLog> log_;
  std::unique_ptr<AppSupervisor> app_;
  std::unique_ptr<DrainController> controller_;
  std::unique_ptr<AdminApi> api_;
};

TEST_F(AdminApiTest, ReadyIs503StartingUntilTheUpstreamAnswersThen200) {
  Make();
  AdminResponse starting = Ask("GET", "/ready");
  EXPECT_EQ(starting.status, 503);
  EXPECT_EQ(json::parse(starting.body)["status"], "starting");
  controller_->OnUpstreamCheck(true);
  AdminResponse ready = Ask("GET", "/ready");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(json::parse(ready.body)["status"], "ready");
  EXPECT_EQ(ready.content_type, "application/json");
}

TEST_F(AdminApiTest, ReadyIs503DrainingOnceADrainStarts) {
  Make();
  controller_->OnUpstreamCheck(true);
  controller_->OnTrigger(Trigger::kSigterm);
  AdminResponse response = Ask("GET", "/ready");
  EXPECT_EQ(response.status, 503);
  EXPECT_EQ(json::parse(response.body)["status"], "draining");
}

// A 503 says why: since when and what triggered the drain; or which upstream is not answering.
TEST_F(AdminApiTest, ReadyBodiesSayWhy) {
  Make();
  json starting = json::parse(Ask("GET", "/ready").body);
  EXPECT_EQ(starting["status"], "starting");
  EXPECT_EQ(starting["upstream"], "127.0.0.1:3000");
  controller_->OnUpstreamCheck(true);
  EXPECT_EQ(Ask("GET", "/ready").body, "{\"status\":\"ready\"}\n");
  Ask("POST", "/drain", "127.0.0.1", {}, "kube-lifecycle/1.30");
  uint64_t start = controller_->drain_start_ms();
  AdminRequest request;
  request.method = "GET";
  request.target = "/ready";
  AdminResponse later = api_->Handle(request, start + 1234);
  EXPECT_EQ(later.status, 503);
  json draining = json::parse(later.body);
  EXPECT_EQ(draining["status"], "draining");
  EXPECT_EQ(draining["since_ms"], 1234);
  EXPECT_EQ(draining["trigger"], "admin_post");
  EXPECT_EQ(draining["phase"], "accept_grace");
}

// POST /undrain: a drain in its accept grace is cancelled (ready again, keep-alive again); once
// the listeners are closed it is too late (409). Same access rules as /drain.
TEST_F(AdminApiTest, UndrainCancelsADrainInItsAcceptGraceAndIs409Later) {
  config_.drain_delay = 10s;
  Make();
  controller_->OnUpstreamCheck(true);
  AdminResponse nothing = Ask("POST", "/undrain");
  EXPECT_EQ(nothing.status, 200);
  EXPECT_EQ(json::parse(nothing.body)["cancelled"], false);
  EXPECT_EQ(Ask("POST", "/drain").status, 202);
  EXPECT_EQ(Ask("GET", "/ready").status, 503);
  EXPECT_EQ(Ask("GET", "/undrain").status, 405);
  EXPECT_EQ(Ask("POST", "/undrain", "10.0.0.8").status, 403);
  EXPECT_TRUE(draining());
  AdminResponse cancelled = Ask("POST", "/undrain");
  EXPECT_EQ(cancelled.status, 200);
  EXPECT_EQ(json::parse(cancelled.body)["status"], "ready");
  EXPECT_EQ(json::parse(cancelled.body)["cancelled"], true);
  EXPECT_EQ(Ask("GET", "/ready").status, 200);
  EXPECT_EQ(target_.calls.back(), "resume_keep_alive");
  // Drained again, this time past the grace: too late.
  config_.drain_delay = 0ms;
  EXPECT_EQ(Ask("POST", "/drain").status, 202);
  AdminResponse late = Ask("POST", "/undrain");
  EXPECT_EQ(late.status, 409);
  EXPECT_NE(json::parse(late.body)["error"].get<std::string>().find("too late"), std::string::npos);
  EXPECT_EQ(Ask("GET", "/ready").status, 503);
}

// kubelet's SIGTERM has come: the drain goes on, whatever /undrain asks.
TEST_F(AdminApiTest, UndrainIs409OnceASignalHasAskedLameduckToExit) {
  config_.drain_delay = 10s;
  Make();
  controller_->OnUpstreamCheck(true);
  controller_->OnTrigger(Trigger::kSigterm);
  AdminResponse refused = Ask("POST", "/undrain");
  EXPECT_EQ(refused.status, 409);
  EXPECT_NE(json::parse(refused.body)["error"].get<std::string>().find("told to exit"),
            std::string::npos)
      << refused.body;
  EXPECT_EQ(Ask("GET", "/ready").status, 503);
}

TEST_F(AdminApiTest, LiveIs200AlsoWhileDraining) {
  Make();
  controller_->OnTrigger(Trigger::kSigterm);
  AdminResponse response = Ask("GET", "/live");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(json::parse(response.body)["status"], "live");
  EXPECT_EQ(json::parse(response.body)["state"], "draining");
}

TEST_F(AdminApiTest, StatusHasTheStateCountsUptimeAndNoToken) {
  config_.admin_token = "s3cret-token";
  Make();
  target_.open = {.connections = 4, .in_flight = 2, .idle = 1};
  AdminResponse response = Ask("GET", "/status");
  ASSERT_EQ(response.status, 200);
  json body = json::parse(response.body);
  EXPECT_EQ(body["state"], "starting");
  EXPECT_EQ(body["connections"], 4);
  EXPECT_EQ(body["in_flight"], 2);
  EXPECT_EQ(body["uptime_ms"], 3000);
  EXPECT_EQ(response.body.find("s3cret-token"), std::string::npos);
}

TEST_F(AdminApiTest, MetricsIsPrometheusText) {
  Make();
  AdminResponse response = Ask("GET", "/metrics");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(response.body.find("lameduck_uptime_seconds 3\n"), std::string::npos);
}

TEST_F(AdminApiTest, HeadIsAcceptedWhereGetIs) {
  Make();
  EXPECT_EQ(Ask("HEAD", "/live").status, 200);
  EXPECT_EQ(Ask("HEAD", "/metrics").status, 200);
}

TEST_F(AdminApiTest, UnknownPathsAre404) {
  Make();
  AdminResponse response = Ask("GET", "/nope");
  EXPECT_EQ(response.status, 404);
  EXPECT_EQ(json::parse(response.body)["error"], "not found");
  EXPECT_EQ(Ask("GET", "/ready/").status, 404);
}

TEST_F(AdminApiTest, WrongMethodsAre405WithAllow) {
  Make();
  for (std::string_view path : {"/ready", "/live", "/status", "/metrics"}) {
    AdminResponse response = Ask("POST", path);
    EXPECT_EQ(response.status, 405) << path;
    EXPECT_EQ(response.allow, "GET") << path;
  }
  AdminResponse drain = Ask("GET", "/drain");
  EXPECT_EQ(drain.status, 405);
  EXPECT_EQ(drain.allow, "POST");
  AdminResponse wait = Ask("PUT", "/drain?wait=1");
  EXPECT_EQ(wait.status, 405);
  EXPECT_EQ(wait.allow, "GET, POST");
  EXPECT_FALSE(draining());
}

TEST_F(AdminApiTest, PostDrainFromLoopbackIs202AndStartsTheDrain) {
  Make();
  AdminResponse response = Ask("POST", "/drain");
  EXPECT_EQ(response.status, 202);
  EXPECT_EQ(json::parse(response.body)["status"], "draining");
  EXPECT_TRUE(draining());
  EXPECT_EQ(Ask("POST", "/drain").status, 202);  // joined, not restarted
}

TEST_F(AdminApiTest, DrainFromIpv6LoopbackAndTheUnixSocketNeedsNoToken) {
  config_.admin_token = "t0k";
  Make();
  EXPECT_EQ(Ask("POST", "/drain", "::1").status, 202);
  EXPECT_EQ(Ask("POST", "/drain", "unix").status, 202);
}

TEST_F(AdminApiTest, WaitFormsAreHeldForTheSummary) {
  Make();
  EXPECT_TRUE(Ask("GET", "/drain?wait=1").wait_for_drain);
  EXPECT_TRUE(Ask("POST", "/drain?x=y&wait=true").wait_for_drain);
  EXPECT_TRUE(draining());
}

TEST_F(AdminApiTest, DrainFromElsewhereWithoutAConfiguredTokenIs403) {
  Make();
  AdminResponse response = Ask("POST", "/drain", "10.1.2.3", "Bearer anything");
  EXPECT_EQ(response.status, 403);
  EXPECT_FALSE(response.wait_for_drain);
  EXPECT_FALSE(draining());
  EXPECT_EQ(Ask("GET", "/drain?wait=1", "10.1.2.3").status, 403);
  EXPECT_FALSE(draining());
}

TEST_F(AdminApiTest, DrainFromElsewhereWithAMissingOrWrongTokenIs401) {
  config_.admin_token = "t0k";
  Make();
  EXPECT_EQ(Ask("POST", "/drain", "10.1.2.3").status, 401);
  EXPECT_EQ(Ask("POST", "/drain", "10.1.2.3", "Bearer t0kk").status, 401);
  EXPECT_EQ(Ask("POST", "/drain", "10.1.2.3", "Bearer t0").status, 401);
  EXPECT_EQ(Ask("POST", "/drain", "10.1.2.3", "Basic t0k").status, 401);
  EXPECT_EQ(Ask("POST", "/drain", "10.1.2.3", "t0k").status, 401);
  EXPECT_EQ(Ask("GET", "/drain?wait=1", "10.1.2.3", "Bearer nope").status, 401);
  EXPECT_FALSE(draining());
}

TEST_F(AdminApiTest, DrainFromElsewhereWithTheRightTokenIsAccepted) {
  config_.admin_token = "t0k";
  Make();
  EXPECT_EQ(Ask("POST", "/drain", "10.1.2.3", "Bearer t0k").status, 202);
  EXPECT_TRUE(draining());
}

TEST_F(AdminApiTest, AMappedLoopbackAddressIsLoopbackAndOthersAreNot) {
  EXPECT_TRUE(IsLoopback("127.0.0.1"));
  EXPECT_TRUE(IsLoopback("127.9.8.7"));
  EXPECT_TRUE(IsLoopback("::1"));
  EXPECT_TRUE(IsLoopback("::ffff:127.0.0.1"));
  EXPECT_FALSE(IsLoopback("10.0.0.1"));
  EXPECT_FALSE(IsLoopback("::ffff:10.0.0.1"));
  EXPECT_FALSE(IsLoopback("128.0.0.1"));
  EXPECT_FALSE(IsLoopback("unix"));
}

TEST(TokenMatchesTest, OnlyTheSameBytesMatch) {
  EXPECT_TRUE(TokenMatches("abc", "abc"));
  EXPECT_FALSE(TokenMatches("abd", "abc"));
  EXPECT_FALSE(TokenMatches("abcabc", "abc"));
  EXPECT_FALSE(TokenMatches("", "abc"));
  EXPECT_FALSE(TokenMatches("", ""));  // no token configured: nothing matches
}

}  // namespace
}  // namespace lameduck::coordinator
