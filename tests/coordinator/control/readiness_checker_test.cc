// ReadinessChecker against a real loopback upstream on port 0, with short intervals: a 2xx on
// --upstream-ready is healthy; a 5xx, a refused connection or a silent upstream is not; without
// --upstream-ready a completed connection is enough; nothing is reported after Stop().
#include "coordinator/control/readiness_checker.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <vector>

#include "tests/support/child_process.h"
#include "tests/support/loop_runner.h"
#include "tests/support/test_upstream.h"

namespace lameduck::coordinator {
namespace {

using namespace std::chrono_literals;
using lameduck::testing::FreePort;
using lameduck::testing::LoopRunner;
using lameduck::testing::TestUpstream;
using lameduck::testing::UpstreamConn;

class ReadinessCheckerTest : public ::testing::Test {
 protected:
  void Upstream(int port) {
    config_.proxy.upstream = proxy::ParseAddress("127.0.0.1:" + std::to_string(port)).value();
  }
  void Start(ReadinessChecker::Timing timing = {.interval = 20ms, .timeout = 500ms}) {
    checker_ = std::make_unique<ReadinessChecker>(
        loop_.loop(), config_, [this](bool healthy) { results_.push_back(healthy); }, timing);
    checker_->Start();
  }
  void TearDown() override {
    if (checker_) checker_->Stop();
  }
  bool WaitForResults(size_t n) {
    return loop_.RunUntil([&] { return results_.size() >= n; }, 5s,
                          std::to_string(n) + " readiness results");
  }

  LoopRunner loop_;
  TestUpstream upstream_;
  Config config_;
  std::vector<bool> results_;
  std::unique_ptr<ReadinessChecker> checker_;
};

TEST_F(ReadinessCheckerTest, A2xxOnTheReadyPathIsHealthy) {
  ASSERT_TRUE(upstream_.Start());
  Upstream(upstream_.port());
  config_.upstream_ready = "/healthz";
  Start();
  ASSERT_TRUE(WaitForResults(3));
  EXPECT_EQ(results_, (std::vector<bool>{true, true, true}));
  ASSERT_FALSE(upstream_.received().empty());
  EXPECT_EQ(upstream_.received().front().target, "/healthz");
}

TEST_F(ReadinessCheckerTest, A5xxOnTheReadyPathIsUnhealthy) {
  upstream_.SetHandler([](const auto&, UpstreamConn& conn) { conn.SendResponse(503, "no"); });
  ASSERT_TRUE(upstream_.Start());
  Upstream(upstream_.port());
  config_.upstream_ready = "/healthz";
  Start();
  ASSERT_TRUE(WaitForResults(2));
  EXPECT_EQ(results_, (std::vector<bool>{false, false}));
}

TEST_F(ReadinessCheckerTest, ARefusedConnectionIsUnhealthy) {
  Upstream(FreePort());
  Start();
  ASSERT_TRUE(WaitForResults(2));
  EXPECT_EQ(results_, (std::vector<bool>{false, false}));
}

TEST_F(ReadinessCheckerTest, ASilentUpstreamIsUnhealthyAtTheTimeout) {
  upstream_.SetRawHandler([](int fd) {
    char buffer[1024];
    while (recv(fd, buffer, sizeof(buffer), 0) > 0) {
    }
  });
  ASSERT_TRUE(upstream_.Start());
  Upstream(upstream_.port());
  config_.upstream_ready = "/healthz";
  auto start = std::chrono::steady_clock::now();
  Start({.interval = 20ms, .timeout = 100ms});
  ASSERT_TRUE(WaitForResults(1));
  EXPECT_FALSE(results_.front());
  EXPECT_GE(std::chrono::steady_clock::now() - start, 90ms);
}

TEST_F(ReadinessCheckerTest, WithoutAReadyPathAConnectionIsEnough) {
  upstream_.SetRawHandler([](int) {});  // accepts and closes: never answers
  ASSERT_TRUE(upstream_.Start());
  Upstream(upstream_.port());
  Start();
  ASSERT_TRUE(WaitForResults(2));
  EXPECT_EQ(results_, (std::vector<bool>{true, true}));
}

TEST_F(ReadinessCheckerTest, ReportsNothingAfterStop) {
  upstream_.SetRawHandler([](int fd) {
    char buffer[1024];
    while (recv(fd, buffer, sizeof(buffer), 0) > 0) {
    }
  });
  ASSERT_TRUE(upstream_.Start());
  Upstream(upstream_.port());
  config_.upstream_ready = "/healthz";
  Start({.interval = 20ms, .timeout = 50ms});
  ASSERT_TRUE(loop_.RunUntil([&] { return upstream_.accepted_connections() >= 1; }, 2s,
                             "the first check to connect"));
  checker_->Stop();
  size_t seen = results_.size();
  // Past the check's timeout and several intervals: had anything been left armed, it would fire.
  EXPECT_FALSE(loop_.RunUntil([&] { return results_.size() > seen; }, 200ms, "a late result"));
}

}  // namespace
}  // namespace lameduck::coordinator
