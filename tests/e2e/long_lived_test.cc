// Long-lived connections at a drain, with real clients through the real lameduck binary and a
// real SIGTERM (DESIGN.md, "The drain", step 5): WebSocket clients (Debian's python3-websockets)
// get Close 1001 after whole messages, and their apps see the closing handshake; an
// EventSource-like client gets whole events, then the stream's end, and resumes on another
// lameduck with Last-Event-ID, losing nothing; a gRPC server stream ends after a whole message
// with UNAVAILABLE; and the rollout of three pods under WebSocket and SSE clients (kube.py).
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/child_process.h"
#include "tests/support/lameduck_process.h"

namespace lameduck::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kPython = "/usr/bin/python3";

bool HavePythonModule(const std::string& module) {
  return RunToCompletion({kPython, "-c", "import " + module}, "", 30s).status == 0;
}

std::string Script(const std::string& name) {
  return std::string(LONG_LIVED_SCRIPTS_DIR) + "/" + name;
}

// Starts a script that prints "listening PORT" first; returns the port, or 0.
int StartApp(ChildProcess& app, const std::string& script) {
  if (!app.Start({kPython, Script(script), "--port", "0"})) return 0;
  auto line = app.ReadLine(10s);
  if (!line || !line->starts_with("listening ")) return 0;
  return std::stoi(line->substr(10));
}

// The last JSON line a client printed.
std::optional<nlohmann::json> Result(ChildProcess& client) {
  while (auto line = client.ReadLine(15s)) {
    if (line->starts_with("{")) return nlohmann::json::parse(*line);
  }
  return std::nullopt;
}

TEST(LongLivedTest, WebSocketClientsGetClose1001AfterWholeMessagesAndTheAppSeesTheirClose) {
  if (!HavePythonModule("websockets")) {
    GTEST_SKIP() << "python3-websockets is not installed (scripts/setup installs it)";
  }
  ChildProcess app;
  int app_port = StartApp(app, "ws_app.py");
  ASSERT_GT(app_port, 0);
  LameduckProcess lameduck;
  ASSERT_TRUE(
      lameduck.Start({"--upstream", "127.0.0.1:" + std::to_string(app_port), "--drain-delay",
                      "200ms", "--drain-spread", "400ms", "--drain-timeout", "10s"}));
  constexpr int kClients = 4;
  std::vector<std::unique_ptr<ChildProcess>> clients;
  for (int i = 0; i < kClients; ++i) {
    auto client = std::make_unique<ChildProcess>();
    ASSERT_TRUE(client->Start({kPython, Script("ws_client.py"),
                               "ws://127.0.0.1:" + std::to_string(lameduck.port()) + "/"}));
    clients.push_back(std::move(client));
  }
  for (auto& client : clients) {
    auto line = client->ReadLine(15s);
    ASSERT_EQ(line.value_or("(none)"), "receiving");  // messages large and small are through
  }
  ASSERT_TRUE(lameduck.Signal(SIGTERM));
  for (auto& client : clients) {
    auto result = Result(*client);
    ASSERT_TRUE(result);
    EXPECT_EQ((*result)["code"], 1001) << *result;
    EXPECT_EQ((*result)["reason"], "server shutting down");
    EXPECT_TRUE((*result)["abnormal"].is_null()) << *result;
    EXPECT_TRUE((*result)["errors"].empty()) << *result;  // no gap, no truncated message
    EXPECT_GE((*result)["received"].get<int>(), 20);
    EXPECT_EQ(client->Wait(10s), 0);
  }
  auto complete = lameduck.WaitForEvent("drain.complete", 15s);
  ASSERT_TRUE(complete);
  EXPECT_EQ((*complete)["forced"], 0) << *complete;
  const auto& websocket = (*complete)["long_lived"]["websocket"];
  EXPECT_EQ(websocket["at_start"], kClients) << *complete;
  EXPECT_EQ(websocket["ending"], kClients) << *complete;
  EXPECT_EQ(websocket["clean"], kClients) << *complete;
  EXPECT_EQ(websocket["forced"], 0) << *complete;
  // In the accounting: each WebSocket's connection ended cleanly as a long-lived one.
  EXPECT_EQ((*complete)["accounting"]["connections"]["open_at_start"], kClients) << *complete;
  EXPECT_EQ((*complete)["accounting"]["connections"]["long_lived"], kClients) << *complete;
  EXPECT_EQ(lameduck.Wait(10s), 0);
  EXPECT_TRUE(lameduck.DrainsBalance());
  // The app saw each client's Close (the 1001 it echoed): an ordinary closing handshake.
  for (int i = 0; i < kClients; ++i) {
    auto line = app.ReadLine(5s);
    ASSERT_TRUE(line);
    auto closed = nlohmann::json::parse(*line);
    EXPECT_EQ(closed["code"], 1001) << closed;
  }
  app.Signal(SIGKILL);
}

TEST(LongLivedTest, AnEventStreamEndsAfterAWholeEventAndResumesElsewhereLosingNothing) {
  ChildProcess app;
  int app_port = StartApp(app, "sse_app.py");
  ASSERT_GT(app_port, 0);
  std::vector<std::string> args = {"--upstream",      "127.0.0.1:" + std::to_string(app_port),
                                   "--drain-delay",   "100ms",
                                   "--drain-spread",  "200ms",
                                   "--drain-timeout", "10s"};
  LameduckProcess draining, other;
  ASSERT_TRUE(draining.Start(args));
  ASSERT_TRUE(other.Start(args));
  ChildProcess client;
  ASSERT_TRUE(client.Start({kPython, Script("sse_client.py"),
                            "127.0.0.1:" + std::to_string(draining.port()),
                            "127.0.0.1:" + std::to_string(other.port())}));
  ASSERT_EQ(client.ReadLine(15s).value_or("(none)"), "receiving");
  ASSERT_TRUE(draining.Signal(SIGTERM));
  auto result = Result(client);
  ASSERT_TRUE(result);
  EXPECT_TRUE((*result)["errors"].empty()) << *result;  // no lost event, no partial one
  EXPECT_FALSE((*result)["partial_at_end"].get<bool>()) << *result;
  EXPECT_TRUE((*result)["body_whole"].get<bool>()) << *result;  // its last chunk came
  EXPECT_EQ((*result)["second"], 10) << *result;                // resumed on the other
  EXPECT_EQ(client.Wait(10s), 0);
  auto complete = draining.WaitForEvent("drain.complete", 15s);
  ASSERT_TRUE(complete);
  EXPECT_EQ((*complete)["forced"], 0) << *complete;
  EXPECT_EQ((*complete)["long_lived"]["sse"]["clean"], 1) << *complete;
  EXPECT_EQ(draining.Wait(10s), 0);
  EXPECT_TRUE(draining.DrainsBalance());
  other.Signal(SIGKILL);
  app.Signal(SIGKILL);
}

// A gRPC server stream at a drain: whole messages, then UNAVAILABLE (retryable), never a reset
// or a cut message.
TEST(LongLivedTest, AGrpcServerStreamEndsAfterAWholeMessageWithUnavailable) {
  if (!HavePythonModule("grpc")) {
    GTEST_SKIP() << "python3-grpcio is not installed (scripts/setup installs it)";
  }
  ChildProcess app;
  ASSERT_TRUE(app.Start({kPython, std::string(GRPC_SCRIPTS_DIR) + "/grpc_app.py", "--port", "0"}));
  auto listening = app.ReadLine(10s);
  ASSERT_TRUE(listening && listening->starts_with("listening ")) << listening.value_or("(none)");
  LameduckProcess lameduck;
  ASSERT_TRUE(lameduck.Start({"--upstream", "127.0.0.1:" + listening->substr(10), "--drain-delay",
                              "100ms", "--drain-spread", "200ms", "--drain-timeout", "10s"}));
  ChildProcess client;
  ASSERT_TRUE(client.Start(
      {kPython, Script("grpc_stream_client.py"), "127.0.0.1:" + std::to_string(lameduck.port())}));
  ASSERT_EQ(client.ReadLine(20s).value_or("(none)"), "receiving");
  ASSERT_TRUE(lameduck.Signal(SIGTERM));
  auto result = Result(client);
  ASSERT_TRUE(result);
  EXPECT_EQ((*result)["code"], "UNAVAILABLE") << *result;
  EXPECT_EQ((*result)["details"], "lameduck: the server is shutting down") << *result;
  EXPECT_TRUE((*result)["errors"].empty()) << *result;  // whole messages, in order
  EXPECT_GE((*result)["received"].get<int>(), 5);
  EXPECT_EQ(client.Wait(10s), 0);
  auto complete = lameduck.WaitForEvent("drain.complete", 15s);
  ASSERT_TRUE(complete);
  EXPECT_EQ((*complete)["forced"], 0) << *complete;
  EXPECT_EQ((*complete)["long_lived"]["grpc_stream"]["clean"], 1) << *complete;
  EXPECT_EQ(lameduck.Wait(10s), 0);
  EXPECT_TRUE(lameduck.DrainsBalance());
  app.Signal(SIGKILL);
}

nlohmann::json Rollout(const std::string& mode) {
  CompletedProcess run = RunToCompletion(
      {kPython, Script("long_lived_rollout.py"), "--lameduck", LameduckBinary(), "--mode", mode},
      "", 150s);
  EXPECT_EQ(run.status, 0) << run.err;
  if (run.status != 0) return nullptr;
  std::printf("long-lived rollout (%s): %s\n", mode.c_str(), run.out.c_str());
  return nlohmann::json::parse(run.out);
}

// Three pods rolled while WebSocket and SSE clients stay connected through kube-proxy and
// reconnect whenever their connection ends: every WebSocket ends with Close 1001, every event
// stream with its last chunk after a whole event, no message or event is cut or lost, nothing
// is forced, and the reconnections are spread out rather than all at once.
TEST(LongLivedRolloutTest, WebSocketAndSseClientsSeeOnlyCleanEnds) {
  if (!HavePythonModule("aiohttp")) {
    GTEST_SKIP() << "python3-aiohttp is not installed (scripts/setup installs it)";
  }
  nlohmann::json result = Rollout("drain");
  ASSERT_TRUE(result.is_object());
  const auto& websocket = result["websocket"];
  const auto& sse = result["sse"];
  EXPECT_TRUE(websocket["errors"].empty()) << websocket;
  EXPECT_TRUE(sse["errors"].empty()) << sse;
  EXPECT_EQ(sse["cuts"], 0) << sse;
  ASSERT_EQ(websocket["closes"].size(), 1u) << websocket;  // only 1001, never 1006
  EXPECT_GT(websocket["closes"]["1001"].get<int>(), 0) << websocket;
  EXPECT_GT(sse["clean_ends"].get<int>(), 0) << sse;
  ASSERT_EQ(result["terminations"].size(), 3u);
  int largest_drain = 0;
  for (const auto& termination : result["terminations"]) {
    EXPECT_EQ(termination["pre_stop"], 0);
    EXPECT_EQ(termination["lameduck_exit"], 0);
    ASSERT_TRUE(termination.contains("drain")) << termination;
    const auto& drain = termination["drain"];
    EXPECT_EQ(drain["forced"], 0) << drain;
    int ended = 0;
    for (const char* kind : {"websocket", "sse"}) {
      const auto& counts = drain["long_lived"][kind];
      EXPECT_EQ(counts["clean"], counts["at_start"]) << drain;
      ended += counts["clean"].get<int>();
    }
    largest_drain = std::max(largest_drain, ended);
  }
  // Spread over --drain-spread (1 s): never all of one drain's reconnections in 100 ms.
  EXPECT_LE(result["largest_burst_100ms"].get<int>() * 2, largest_drain) << result;
}

TEST(LongLivedRolloutTest, WithoutTheDrainConnectionsAreCut) {
  if (!HavePythonModule("aiohttp")) {
    GTEST_SKIP() << "python3-aiohttp is not installed (scripts/setup installs it)";
  }
  nlohmann::json result = Rollout("nodrain");
  ASSERT_TRUE(result.is_object());
  EXPECT_GT(result["websocket"]["closes"].value("1006", 0) + result["sse"]["cuts"].get<int>(), 0)
      << "a naive app killed under open connections must cut them, or the test proves nothing";
}

}  // namespace
}  // namespace lameduck::testing
