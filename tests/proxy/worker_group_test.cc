// WorkerGroup on a real loop with a real second worker: both listen on one port, the kernel
// spreads connections over them, and the counts, events and drain steps add up across them.
#include "proxy/worker_group.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "tests/support/loop_runner.h"
#include "tests/support/proxy_runner.h"
#include "tests/support/test_client.h"
#include "tests/support/test_upstream.h"

namespace lameduck::proxy {
namespace {

using namespace std::chrono_literals;

ProxyOptions Options(int upstream_port) {
  ProxyOptions options;
  options.listen.push_back(ParseAddress("127.0.0.1:0").value());
  options.upstream = ParseAddress("127.0.0.1:" + std::to_string(upstream_port)).value();
  return options;
}

TEST(WorkerGroupTest, TwoWorkersShareThePortAndTheirCountsEventsAndDrainStepsAddUp) {
  constexpr int kClients = 64;
  testing::TestUpstream upstream;
  ASSERT_TRUE(upstream.Start());
  testing::LoopRunner runner;
  testing::RecordingEvents events;
  {
    WorkerGroup group(runner.loop(), Options(upstream.port()), events, 2);
    ASSERT_TRUE(group.Start().ok());
    ASSERT_EQ(group.workers(), 2);
    int port = group.listening_ports().at(0);

    // Keep-alive clients, one request each, then held open; on a thread of their own (blocking
    // sockets) while this one turns worker 0's loop.
    std::vector<std::unique_ptr<testing::TestClient>> clients(kClients);
    std::atomic<int> answered{0};
    std::thread load([&] {
      for (auto& client : clients) {
        client = testing::TestClient::Connect(port);
        if (!client || !client->Send("GET /w HTTP/1.1\r\nHost: x\r\n\r\n")) continue;
        auto response = client->ReadResponse();
        if (response && response->status == 200) ++answered;
      }
    });
    ASSERT_TRUE(runner.RunUntil([&] { return answered + 0 == kClients || !load.joinable(); }, 20s,
                                "every client answered"));
    load.join();
    ASSERT_EQ(answered.load(), kClients);
    ASSERT_TRUE(runner.RunUntil(
        [&] { return group.counts().idle == kClients && events.opened == kClients; }, 5s,
        "every connection idle and reported"));
    EXPECT_EQ(events.status_count(200), kClients);
    ProxyCounts first = group.worker_counts(0), second = group.worker_counts(1);
    EXPECT_EQ(first.connections + second.connections, static_cast<size_t>(kClients));
    // 64 connections from one client address over two listeners: each gets some.
    EXPECT_GT(first.connections, 0u) << "the first worker got no connection";
    EXPECT_GT(second.connections, 0u) << "the second worker got no connection";

    // A drain step reaches both workers, and answers for both.
    EXPECT_EQ(group.CloseSpread(1, 1).idle_closed, static_cast<size_t>(kClients));
    ASSERT_TRUE(
        runner.RunUntil([&] { return group.counts().finishing == static_cast<size_t>(kClients); },
                        5s, "every connection's FIN sent"));
    for (auto& client : clients) EXPECT_TRUE(client->WaitForClose(5s));  // already there
    clients.clear();
    ASSERT_TRUE(runner.RunUntil(
        [&] { return events.closed == kClients && group.counts().connections == 0; }, 5s,
        "every connection closed and reported"));
    group.StopAccepting();
    EXPECT_EQ(group.ForceCloseAll(), 0u);
    group.Shutdown();
    ASSERT_TRUE(runner.RunUntil([&] { return group.empty(); }, 5s, "worker 0 empty"));
  }
}

TEST(WorkerGroupTest, OneWorkerIsThePlainProxyWithNoThread) {
  testing::TestUpstream upstream;
  ASSERT_TRUE(upstream.Start());
  testing::LoopRunner runner;
  testing::RecordingEvents events;
  {
    WorkerGroup group(runner.loop(), Options(upstream.port()), events, 1);
    ASSERT_TRUE(group.Start().ok());
    EXPECT_EQ(group.workers(), 1);
    group.StopAccepting();
    group.Shutdown();
  }
}

TEST(WorkerGroupTest, ABusyPortFailsStartAndLeavesNothingListening) {
  testing::TestUpstream upstream;
  ASSERT_TRUE(upstream.Start());
  testing::LoopRunner runner;
  testing::RecordingEvents events;
  {
    // A socket bound without SO_REUSEPORT: no worker may join it.
    int taken = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(taken, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    socklen_t length = sizeof(address);
    getsockname(taken, reinterpret_cast<sockaddr*>(&address), &length);
    ASSERT_EQ(listen(taken, 8), 0);
    ProxyOptions options = Options(upstream.port());
    options.listen[0] =
        ParseAddress("127.0.0.1:" + std::to_string(ntohs(address.sin_port))).value();
    WorkerGroup group(runner.loop(), options, events, 2);
    Result<void> started = group.Start();
    ASSERT_FALSE(started.ok());
    EXPECT_NE(started.error().find("127.0.0.1:"), std::string::npos) << started.error();
    group.Shutdown();
    close(taken);
  }
}

}  // namespace
}  // namespace lameduck::proxy
