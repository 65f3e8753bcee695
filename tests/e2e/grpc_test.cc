// A real gRPC stack (Debian's python3-grpcio, tests/e2e/grpc/) through the real lameduck binary:
// every kind of call, status codes and large messages; and the gRPC rollout, three pods of a
// naive gRPC app rolled under load from pinned, never-retrying client channels: zero failed RPCs
// with lameduck's drain, and failures without it (so that the test can fail).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/support/child_process.h"
#include "tests/support/lameduck_process.h"

namespace lameduck::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kPython = "/usr/bin/python3";

bool HaveGrpc() {
  CompletedProcess probe = RunToCompletion({kPython, "-c", "import grpc"}, "", 30s);
  return probe.status == 0;
}

std::string Script(const std::string& name) { return std::string(GRPC_SCRIPTS_DIR) + "/" + name; }

TEST(GrpcTest, EveryKindOfCallCrossesLameduck) {
  if (!HaveGrpc()) GTEST_SKIP() << "python3-grpcio is not installed (scripts/setup installs it)";
  ChildProcess app;
  ASSERT_TRUE(app.Start({kPython, Script("grpc_app.py"), "--port", "0"}));
  auto listening = app.ReadLine(10s);
  ASSERT_TRUE(listening && listening->starts_with("listening ")) << listening.value_or("(none)");
  std::string app_port = listening->substr(10);
  LameduckProcess lameduck;
  ASSERT_TRUE(lameduck.Start({"--upstream", "127.0.0.1:" + app_port}));
  CompletedProcess suite = RunToCompletion(
      {kPython, Script("grpc_suite.py"), "127.0.0.1:" + std::to_string(lameduck.port())}, "", 120s);
  ASSERT_EQ(suite.status, 0) << suite.err;
  nlohmann::json results = nlohmann::json::parse(suite.out);
  for (const char* check : {"unary", "unary_8mib", "server_stream", "client_stream", "bidi",
                            "status_not_found", "deadline", "many_concurrent"}) {
    ASSERT_TRUE(results.contains(check)) << check;
    EXPECT_TRUE(results[check]["ok"].get<bool>()) << check << ": " << results[check]["seen"];
  }
}

nlohmann::json Rollout(const std::string& mode) {
  CompletedProcess run = RunToCompletion(
      {kPython, Script("grpc_rollout.py"), "--lameduck", LameduckBinary(), "--mode", mode}, "",
      150s);
  EXPECT_EQ(run.status, 0) << run.err;
  if (run.status != 0) return nullptr;
  std::printf("grpc rollout (%s): %s\n", mode.c_str(), run.out.c_str());
  return nlohmann::json::parse(run.out);
}

TEST(GrpcRolloutTest, ThreePodsRolledUnderLoadFailNoCall) {
  if (!HaveGrpc()) GTEST_SKIP() << "python3-grpcio is not installed (scripts/setup installs it)";
  nlohmann::json result = Rollout("drain");
  ASSERT_TRUE(result.is_object());
  const auto& counts = result["counts"];
  EXPECT_EQ(counts["failed"], 0) << result["errors"] << " " << result["details"];
  EXPECT_GT(counts["unary_ok"].get<int>(), 100);
  EXPECT_GT(counts["slow_ok"].get<int>(), 0);
  EXPECT_GT(counts["stream_ok"].get<int>(), 0);
  ASSERT_EQ(result["terminations"].size(), 3u);
  for (const auto& termination : result["terminations"]) {
    EXPECT_EQ(termination["pre_stop"], 0);
    EXPECT_EQ(termination["lameduck_exit"], 0);
    ASSERT_TRUE(termination.contains("drain")) << termination;
    EXPECT_EQ(termination["drain"]["forced"], 0);
    EXPECT_GT(termination["drain"]["http2_connections_at_start"].get<int>(), 0)
        << "the pinned channels were on this pod when its drain began";
  }
}

TEST(GrpcRolloutTest, WithoutTheDrainCallsFail) {
  if (!HaveGrpc()) GTEST_SKIP() << "python3-grpcio is not installed (scripts/setup installs it)";
  nlohmann::json result = Rollout("nodrain");
  ASSERT_TRUE(result.is_object());
  EXPECT_GT(result["counts"]["failed"].get<int>(), 0)
      << "a naive app killed under pinned channels must fail calls, or the test proves nothing";
}

}  // namespace
}  // namespace lameduck::testing
