// The drain, end to end: the real lameduck binary, real signals, real sockets, an upstream in
// the test. Durations are short and configurable; assertions never depend on exact timings.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/child_process.h"
#include "tests/support/lameduck_process.h"
#include "tests/support/test_client.h"
#include "tests/support/test_upstream.h"

namespace lameduck::testing {
namespace {

using namespace std::chrono_literals;

// An upstream whose /slow answers after 1.5 s and /very-slow after 3 s.
void ServeSlowly(TestUpstream& upstream) {
  upstream.SetHandler([](const HttpRequest& request, UpstreamConn& conn) {
    if (request.target == "/slow") std::this_thread::sleep_for(1500ms);
    if (request.target == "/very-slow") std::this_thread::sleep_for(3s);
    conn.SendResponse(200, "ok " + request.target);
  });
}

bool ConnectRefused(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons(static_cast<uint16_t>(port));
  bool refused = connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0;
  close(fd);
  return refused;
}

// Every drain test runs with one worker and with two (--workers: two loops, two listeners on
// the same port, the kernel spreading connections over them).
class DrainTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    ServeSlowly(upstream_);
    ASSERT_TRUE(upstream_.Start());
  }
  // Starts lameduck in front of upstream_ and waits until it is ready.
  void StartLameduck(std::vector<std::string> args) {
    args.insert(args.end(), {"--upstream", "127.0.0.1:" + std::to_string(upstream_.port())});
    args.insert(args.end(), {"--workers", std::to_string(GetParam())});
    ASSERT_TRUE(lameduck_.Start(args)) << "lameduck did not start";
    ASSERT_TRUE(lameduck_.WaitForReady(200)) << "lameduck never became ready";
  }

  // Whatever the scenario, every drain accounts for every request and connection it met.
  void TearDown() override { EXPECT_TRUE(lameduck_.DrainsBalance()); }

  TestUpstream upstream_;
  LameduckProcess lameduck_;
};

TEST_P(DrainTest, SigtermUnderLoadLosesNoRequestAndExitsZero) {
  StartLameduck({"--drain-delay", "500ms", "--drain-timeout", "10s"});
  std::atomic<bool> drain_started{false};
  std::atomic<int> ok{0}, failed{0}, close_after_drain{0}, keep_alive_after_drain{0};
  // Busy keep-alive clients: requests back to back until lameduck says Connection: close.
  std::vector<std::thread> workers;
  for (int i = 0; i < 6; ++i) {
    workers.emplace_back([&] {
      auto client = TestClient::Connect(lameduck_.port());
      if (!client) {
        ++failed;
        return;
      }
      while (true) {
        bool draining = drain_started.load();
        if (!client->Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")) {
          ++failed;
          return;
        }
        auto response = client->ReadResponse();
        if (!response || response->status != 200) {
          ++failed;
          return;
        }
        ++ok;
        if (response->Header("Connection") == "close") {
          ++close_after_drain;  // only a draining lameduck says close to these clients
          return;
        }
        if (draining) ++keep_alive_after_drain;  // sent before the drain was seen: allowed once
        std::this_thread::sleep_for(5ms);
      }
    });
  }
  // Slow requests in flight when the signal comes.
  std::vector<std::unique_ptr<TestClient>> slow;
  for (int i = 0; i < 3; ++i) {
    slow.push_back(TestClient::Connect(lameduck_.port()));
    ASSERT_TRUE(slow.back()->Send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
  }
  // Idle keep-alive connections: one request, then nothing.
  std::vector<std::unique_ptr<TestClient>> idle;
  for (int i = 0; i < 3; ++i) {
    idle.push_back(TestClient::Connect(lameduck_.port()));
    ASSERT_TRUE(idle.back()->Send("GET /idle HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_TRUE(idle.back()->ReadResponse());
  }
  ASSERT_TRUE(upstream_.WaitForRequests(10, 5s));

  drain_started = true;
  auto signalled = std::chrono::steady_clock::now();
  ASSERT_TRUE(lameduck_.Signal(SIGTERM));
  ASSERT_TRUE(lameduck_.WaitForReady(503, 2s)) << "/ready did not turn 503";
  // One kubelet probe period is 1 s at the shortest.
  EXPECT_LT(std::chrono::steady_clock::now() - signalled, 1s);

  for (auto& client : slow) {
    auto response = client->ReadResponse();
    ASSERT_TRUE(response) << client->last_error();
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->Header("Connection"), "close");
  }
  for (auto& client : idle) {
    EXPECT_TRUE(client->WaitForClose(5s));
    EXPECT_FALSE(client->SawReset()) << "idle connections must be closed with a FIN";
    client->Close();
  }
  for (auto& worker : workers) worker.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GT(ok.load(), 0);
  EXPECT_EQ(close_after_drain.load(), 6);
  EXPECT_LE(keep_alive_after_drain.load(), 6);

  EXPECT_EQ(lameduck_.Wait(15s), 0);
  auto complete = lameduck_.WaitForEvent("drain.complete", 1s);
  ASSERT_TRUE(complete);
  EXPECT_EQ((*complete)["trigger"], "SIGTERM");
  EXPECT_EQ((*complete)["forced"], 0);
  EXPECT_GE((*complete)["idle_closed"].get<int>(), 3);
  EXPECT_GE((*complete)["served_during_drain"].get<int>(), 3);
  EXPECT_TRUE(lameduck_.WaitForEvent("exit", 1s));
}

TEST_P(DrainTest, ConnectionsDuringTheAcceptGraceAreServedAndLaterOnesRefused) {
  StartLameduck({"--drain-delay", "1s", "--drain-timeout", "10s"});
  auto holder = TestClient::Connect(lameduck_.port());  // keeps the drain from ending at once
  ASSERT_TRUE(holder->Send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(upstream_.WaitForRequests(1, 2s));
  ASSERT_TRUE(lameduck_.Signal(SIGTERM));
  ASSERT_TRUE(lameduck_.WaitForEvent("drain.start", 2s));
  auto straggler = Get(lameduck_.port(), "/straggler");
  ASSERT_TRUE(straggler) << "a connection in the accept grace was not served";
  EXPECT_EQ(straggler->status, 200);
  EXPECT_EQ(straggler->Header("Connection"), "close");
  ASSERT_TRUE(lameduck_.WaitForEvent("listener.closed", 3s));
  EXPECT_TRUE(ConnectRefused(lameduck_.port()));
  auto slow = holder->ReadResponse();
  ASSERT_TRUE(slow);
  EXPECT_EQ(slow->status, 200);
  holder->Close();
  EXPECT_EQ(lameduck_.Wait(10s), 0);
}

TEST_P(DrainTest, ARequestLongerThanTheDrainTimeoutIsForceClosedAndLameduckExits3) {
  StartLameduck({"--drain-delay", "0s", "--drain-timeout", "1s"});
  auto client = TestClient::Connect(lameduck_.port());
  ASSERT_TRUE(client->Send("GET /very-slow HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(upstream_.WaitForRequests(1, 2s));
  ASSERT_TRUE(lameduck_.Signal(SIGTERM));
  EXPECT_FALSE(client->ReadResponse());
  EXPECT_EQ(lameduck_.Wait(10s), 3);
  auto forced = lameduck_.WaitForEvent("drain.forced", 1s);
  ASSERT_TRUE(forced);
  EXPECT_EQ((*forced)["count"], 1);
  auto complete = lameduck_.WaitForEvent("drain.complete", 1s);
  ASSERT_TRUE(complete);
  EXPECT_EQ((*complete)["forced"], 1);
}

// At exit, the drain's summary goes to the termination message file (kubectl describe pod).
TEST_P(DrainTest, ExitWritesHowTheDrainWentToTheTerminationLog) {
  std::string path =
      ::testing::TempDir() + "lameduck-termination-log-" + std::to_string(GetParam());
  std::remove(path.c_str());
  StartLameduck({"--drain-delay", "0s", "--drain-spread", "0s", "--termination-log", path});
  ASSERT_TRUE(lameduck_.Signal(SIGTERM));
  EXPECT_EQ(lameduck_.Wait(10s), 0);
  std::FILE* file = std::fopen(path.c_str(), "r");
  ASSERT_NE(file, nullptr) << path;
  char text[4097] = {};
  size_t n = std::fread(text, 1, sizeof(text) - 1, file);
  std::fclose(file);
  std::remove(path.c_str());
  std::string message(text, n);
  EXPECT_TRUE(message.starts_with("lameduck exited 0 after a drain (SIGTERM) of ")) << message;
  EXPECT_NE(message.find("0 connections forced at --drain-timeout."), std::string::npos) << message;
}

// --drain-delay-max, with real connections: a pod that was busy until its routers let go ends its
// grace on the silence that follows, long before the maximum; a pod that had no traffic keeps
// the whole maximum (its silence proves nothing).
TEST_P(DrainTest, ABusyPodsGraceEndsEarlyAndAQuietPodsDoesNot) {
  StartLameduck({"--drain-delay", "100ms", "--drain-delay-max", "8s", "--drain-min-share", "0.2",
                 "--drain-quiet-risk", "0.01", "--drain-timeout", "20s"});
  auto until = std::chrono::steady_clock::now() + 1s;
  int served = 0;
  while (std::chrono::steady_clock::now() < until) {  // a new connection per request
    auto response = Get(lameduck_.port(), "/");
    ASSERT_TRUE(response);
    ++served;
  }
  ASSERT_TRUE(lameduck_.Signal(SIGTERM));  // and the routers stop sending at once
  auto closed = lameduck_.WaitForEvent("listener.closed", 10s);
  ASSERT_TRUE(closed);
  EXPECT_TRUE((*closed)["reason"] == "min" || (*closed)["reason"] == "quiet") << *closed;
  EXPECT_LT((*closed)["after_ms"].get<int>(), 4'000) << *closed;
  EXPECT_GT((*closed)["arrival_rate"].get<double>(), 5.0) << *closed << " served " << served;
  EXPECT_EQ(lameduck_.Wait(10s), 0);

  LameduckProcess quiet;
  ASSERT_TRUE(quiet.Start({"--drain-delay", "100ms", "--drain-delay-max", "1500ms", "--upstream",
                           "127.0.0.1:" + std::to_string(upstream_.port()), "--workers",
                           std::to_string(GetParam())}));
  ASSERT_TRUE(quiet.WaitForReady(200));
  ASSERT_TRUE(quiet.Signal(SIGTERM));
  closed = quiet.WaitForEvent("listener.closed", 10s);
  ASSERT_TRUE(closed);
  EXPECT_EQ((*closed)["reason"], "max") << *closed;
  EXPECT_GE((*closed)["after_ms"].get<int>(), 1'500) << *closed;
  EXPECT_TRUE((*closed)["quiet_needed_ms"].is_null()) << *closed;
  EXPECT_EQ(quiet.Wait(10s), 0);
}

// The accounting of a drain that met one of each: an idle connection, a slow request that
// finishes, a client that leaves while idle and one that leaves mid-request, a straggler in the
// accept grace, and a request that outlives the deadline. Each lands in its bucket.
TEST_P(DrainTest, TheDrainAccountsForEveryRequestAndConnection) {
  StartLameduck({"--drain-delay", "1s", "--drain-timeout", "2500ms", "--drain-spread", "0s"});
  auto idle = TestClient::Connect(lameduck_.port());
  ASSERT_TRUE(idle->Send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(idle->ReadResponse());
  auto leaves_idle = TestClient::Connect(lameduck_.port());
  ASSERT_TRUE(leaves_idle->Send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(leaves_idle->ReadResponse());
  auto slow = TestClient::Connect(lameduck_.port());
  ASSERT_TRUE(slow->Send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto leaves_mid_request = TestClient::Connect(lameduck_.port());
  ASSERT_TRUE(leaves_mid_request->Send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto too_slow = TestClient::Connect(lameduck_.port());
  ASSERT_TRUE(too_slow->Send("GET /very-slow HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(upstream_.WaitForRequests(5, 2s));
  ASSERT_TRUE(lameduck_.Signal(SIGTERM));
  ASSERT_TRUE(lameduck_.WaitForEvent("drain.start", 2s));
  leaves_idle->Close();
  leaves_mid_request->Reset();  // gone mid-request (a close would be a half-close, answered)
  auto straggler = Get(lameduck_.port(), "/straggler");
  ASSERT_TRUE(straggler);
  EXPECT_EQ(straggler->Header("Connection"), "close");
  auto answered = slow->ReadResponse();
  ASSERT_TRUE(answered);
  EXPECT_EQ(answered->Header("Connection"), "close");
  EXPECT_EQ(lameduck_.Wait(10s), 3);  // the very slow one was forced
  auto complete = lameduck_.WaitForEvent("drain.complete", 1s);
  ASSERT_TRUE(complete);
  const nlohmann::json& requests = (*complete)["accounting"]["requests"];
  EXPECT_EQ(requests["in_flight_at_start"], 3) << requests;
  EXPECT_EQ(requests["arrived"], 1) << requests;          // the straggler
  EXPECT_EQ(requests["completed_close"], 2) << requests;  // the slow one and the straggler
  EXPECT_EQ(requests["completed"], 0) << requests;
  EXPECT_EQ(requests["aborted"], 1) << requests;  // its client left
  EXPECT_EQ(requests["forced"], 1) << requests;
  const nlohmann::json& connections = (*complete)["accounting"]["connections"];
  EXPECT_EQ(connections["open_at_start"], 5) << connections;
  EXPECT_EQ(connections["accepted"], 1) << connections;
  EXPECT_EQ(connections["after_response"], 2) << connections;
  EXPECT_EQ(connections["idle"], 1) << connections;
  EXPECT_EQ(connections["by_client"], 2) << connections;
  EXPECT_EQ(connections["forced"], 1) << connections;
}

// `lameduck report` over the log of a real drain: the timeline and the chart.
TEST_P(DrainTest, TheReportTellsARealDrain) {
  StartLameduck({"--drain-delay", "200ms", "--drain-timeout", "10s", "--termination-grace", "30s",
                 "--app-exit-timeout", "5s"});
  auto slow = TestClient::Connect(lameduck_.port());
  ASSERT_TRUE(slow->Send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(upstream_.WaitForRequests(1, 2s));
  ASSERT_TRUE(lameduck_.Signal(SIGTERM));
  ASSERT_TRUE(slow->ReadResponse());
  slow->Close();
  EXPECT_EQ(lameduck_.Wait(10s), 0);
  lameduck_.Events();  // everything it logged, read
  std::string log;
  for (const std::string& line : lameduck_.process().output()) log += line + "\n";
  std::string svg = ::testing::TempDir() + "lameduck-drain-" + std::to_string(GetParam()) + ".svg";
  CompletedProcess report =
      RunToCompletion({LameduckBinary(), "report", "-", "--svg", svg}, log, 10s);
  ASSERT_EQ(report.status, 0) << report.err;
  EXPECT_NE(report.out.find("drain 1: SIGTERM at "), std::string::npos) << report.out;
  EXPECT_NE(report.out.find("   +0.000s  drain starts: 1 connection (0 idle), 1 request in flight"),
            std::string::npos)
      << report.out;
  EXPECT_NE(report.out.find("listeners closed: the accept grace ended at --drain-delay"),
            std::string::npos)
      << report.out;
  EXPECT_NE(report.out.find("drain complete: 1 response served during it, 0 forced"),
            std::string::npos)
      << report.out;
  EXPECT_NE(report.out.find("  budget: termination grace 30s, deadline 10s; slack "),
            std::string::npos)
      << report.out;
  std::ifstream chart(svg);
  std::string text((std::istreambuf_iterator<char>(chart)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(text.starts_with("<svg")) << text;
  EXPECT_NE(text.find(">listeners closed</text>"), std::string::npos);
  std::remove(svg.c_str());
}

TEST_P(DrainTest, ASecondSigtermDuringTheDrainIsIgnored) {
  StartLameduck({"--drain-delay", "200ms", "--drain-timeout", "10s"});
  auto client = TestClient::Connect(lameduck_.port());
  ASSERT_TRUE(client->Send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(upstream_.WaitForRequests(1, 2s));
  ASSERT_TRUE(lameduck_.Signal(SIGTERM));
  ASSERT_TRUE(lameduck_.WaitForEvent("drain.start", 2s));
  ASSERT_TRUE(lameduck_.Signal(SIGTERM));
  ASSERT_TRUE(lameduck_.WaitForEvent("signal.ignored", 2s));
  auto response = client->ReadResponse();
  ASSERT_TRUE(response) << "the second SIGTERM cut the drain short";
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(lameduck_.Wait(10s), 0);
  int drain_starts = 0;
  for (const auto& event : lameduck_.Events()) drain_starts += event["event"] == "drain.start";
  EXPECT_EQ(drain_starts, 1);
}

TEST_P(DrainTest, PostDrainStartsItAndLameduckStaysUpDrainedUntilSigterm) {
  StartLameduck({"--drain-delay", "0s", "--drain-timeout", "10s"});
  auto response = lameduck_.Admin("POST", "/drain");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 202);
  EXPECT_TRUE(lameduck_.WaitForReady(503, 2s));
  ASSERT_TRUE(lameduck_.WaitForEvent("drain.complete", 5s));
  // Drained and waiting for kubelet: still answering, not exited.
  EXPECT_FALSE(lameduck_.Wait(300ms));
  auto live = lameduck_.Admin("GET", "/live");
  ASSERT_TRUE(live);
  EXPECT_EQ(live->status, 200);
  auto status = lameduck_.Admin("GET", "/status");
  ASSERT_TRUE(status);
  auto body = nlohmann::json::parse(status->body);
  EXPECT_EQ(body["state"], "drained");
  EXPECT_EQ(body["last_drain"]["trigger"], "admin_post");
  ASSERT_TRUE(lameduck_.Signal(SIGTERM));
  EXPECT_EQ(lameduck_.Wait(2s), 0);
}

// POST /undrain in the accept grace: back in rotation, connections kept alive again, the
// waiter of the cancelled drain told so (409); a later SIGTERM drains as usual.
TEST_P(DrainTest, UndrainInTheAcceptGracePutsThePodBackInRotation) {
  StartLameduck({"--drain-delay", "3s", "--drain-timeout", "10s"});
  std::optional<HttpResponse> waited;
  std::thread waiter([&] {
    waited = lameduck_.Admin("GET", "/drain?wait=1", "User-Agent: kube-lifecycle/1.30\r\n");
  });
  auto start = lameduck_.WaitForEvent("drain.start", 3s);
  ASSERT_TRUE(start);
  EXPECT_EQ((*start)["caller"], "kube-lifecycle/1.30 from 127.0.0.1");
  auto ready = lameduck_.Admin("GET", "/ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 503);
  EXPECT_EQ(nlohmann::json::parse(ready->body)["trigger"], "admin_wait");
  EXPECT_TRUE(nlohmann::json::parse(ready->body).contains("since_ms"));
  auto undrain = lameduck_.Admin("POST", "/undrain", "Content-Length: 0\r\n");
  ASSERT_TRUE(undrain);
  EXPECT_EQ(undrain->status, 200) << undrain->body;
  waiter.join();
  ASSERT_TRUE(waited);
  EXPECT_EQ(waited->status, 409);
  EXPECT_TRUE(lameduck_.WaitForReady(200, 2s));
  ASSERT_TRUE(lameduck_.WaitForEvent("drain.cancelled", 2s));
  // Keep-alive again, and the listener never closed.
  auto client = TestClient::Connect(lameduck_.port());
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(client->Send("GET /again HTTP/1.1\r\nHost: x\r\n\r\n"));
    auto response = client->ReadResponse();
    ASSERT_TRUE(response);
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->Header("Connection"), "");
  }
  client->Close();
  for (const auto& event : lameduck_.Events()) EXPECT_NE(event["event"], "listener.closed");
  ASSERT_TRUE(lameduck_.Signal(SIGTERM));
  ASSERT_TRUE(lameduck_.WaitForEvent("listener.closed", 6s));
  auto late = lameduck_.Admin("POST", "/undrain", "Content-Length: 0\r\n");
  if (late) {  // unless lameduck already exited
    EXPECT_EQ(late->status, 409);
  }
  EXPECT_EQ(lameduck_.Wait(10s), 0);
}

TEST_P(DrainTest, GetDrainWaitBlocksUntilDoneAndEveryWaiterGetsTheSameSummary) {
  StartLameduck({"--drain-delay", "0s", "--drain-timeout", "10s"});
  auto slow = TestClient::Connect(lameduck_.port());
  ASSERT_TRUE(slow->Send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(upstream_.WaitForRequests(1, 2s));
  std::vector<std::optional<HttpResponse>> answers(3);
  std::vector<std::thread> waiters;
  auto started = std::chrono::steady_clock::now();
  for (auto& answer : answers) {
    waiters.emplace_back([&] { answer = lameduck_.Admin("GET", "/drain?wait=1"); });
  }
  auto response = slow->ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  slow->Close();
  for (auto& waiter : waiters) waiter.join();
  // They waited for the slow request (1.5 s from its start).
  EXPECT_GT(std::chrono::steady_clock::now() - started, 500ms);
  for (const auto& answer : answers) {
    ASSERT_TRUE(answer);
    EXPECT_EQ(answer->status, 200);
    EXPECT_EQ(answer->body, answers[0]->body);
    auto summary = nlohmann::json::parse(answer->body);
    EXPECT_EQ(summary["forced"], 0);
    EXPECT_EQ(summary["served_during_drain"], 1);
  }
  int drain_starts = 0;
  for (const auto& event : lameduck_.Events()) drain_starts += event["event"] == "drain.start";
  EXPECT_EQ(drain_starts, 1);
}

TEST_P(DrainTest, LameduckDrainWaitWorksOverTcpAndTheUnixSocket) {
  std::string socket_path = ::testing::TempDir() + "ld-admin-" + std::to_string(getpid());
  StartLameduck({"--drain-delay", "0s", "--admin-socket", socket_path});
  // The unix socket is private to lameduck's user.
  struct stat st {};
  ASSERT_EQ(stat(socket_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ChildProcess over_unix;
  ASSERT_TRUE(
      over_unix.Start({LameduckBinary(), "drain", "--wait", "--admin-socket", socket_path}));
  EXPECT_EQ(over_unix.Wait(10s), 0);
  auto line = over_unix.ReadLine(1s);
  ASSERT_TRUE(line);
  EXPECT_EQ(nlohmann::json::parse(*line)["trigger"], "drain_command");
  // Over TCP, the same drain is joined and its summary returned.
  ChildProcess over_tcp;
  ASSERT_TRUE(over_tcp.Start({LameduckBinary(), "drain", "--wait", "--admin",
                              "127.0.0.1:" + std::to_string(lameduck_.admin_port())}));
  EXPECT_EQ(over_tcp.Wait(10s), 0);
  auto tcp_line = over_tcp.ReadLine(1s);
  ASSERT_TRUE(tcp_line);
  EXPECT_EQ(*tcp_line, *line);
  ASSERT_TRUE(lameduck_.Signal(SIGTERM));
  EXPECT_EQ(lameduck_.Wait(2s), 0);
}

// The preStop an image without a shell can have: lameduck's drain, then the app's own hook.
TEST_P(DrainTest, LameduckDrainWaitThenRunsTheChainedCommandOnceTheDrainIsComplete) {
  StartLameduck({"--drain-delay", "0s"});
  ChildProcess prestop;
  ASSERT_TRUE(prestop.Start({LameduckBinary(), "drain", "--wait", "--admin",
                             "127.0.0.1:" + std::to_string(lameduck_.admin_port()), "--then", "--",
                             "/bin/sh", "-c", "echo app hook ran; exit 3"}));
  EXPECT_EQ(prestop.Wait(10s), 3) << "the chained command's status";
  auto summary = prestop.ReadLine(1s);
  ASSERT_TRUE(summary);
  EXPECT_EQ(nlohmann::json::parse(*summary)["trigger"], "drain_command");
  EXPECT_EQ(prestop.ReadLine(1s), "app hook ran");
  ASSERT_TRUE(lameduck_.Signal(SIGTERM));
  EXPECT_EQ(lameduck_.Wait(2s), 0);
}

// A local address that is not loopback, to be a "remote" admin client; empty if there is none.
std::string NonLoopbackAddress() {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "";
  std::string found;
  for (ifaddrs* entry = list; entry != nullptr && found.empty(); entry = entry->ifa_next) {
    if (entry->ifa_addr == nullptr || entry->ifa_addr->sa_family != AF_INET) continue;
    auto* sa = reinterpret_cast<sockaddr_in*>(entry->ifa_addr);
    char text[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &sa->sin_addr, text, sizeof(text));
    if (!std::string(text).starts_with("127.")) found = text;
  }
  freeifaddrs(list);
  return found;
}

std::optional<HttpResponse> AdminFrom(const std::string& address, int port,
                                      const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  inet_pton(AF_INET, address.c_str(), &sa.sin_addr);
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    close(fd);
    return std::nullopt;
  }
  SendAllWithTimeout(fd, request, 2s);
  std::string reply;
  char buf[4096];
  ssize_t n;
  while ((n = RecvWithTimeout(fd, buf, sizeof(buf), 2s)) > 0) reply.append(buf, n);
  close(fd);
  HttpResponse response;
  if (reply.size() < 12) return std::nullopt;
  response.status = std::stoi(reply.substr(9, 3));
  response.body = reply.substr(reply.find("\r\n\r\n") + 4);
  return response;
}

TEST_P(DrainTest, DrainFromBeyondLoopbackNeedsTheToken) {
  std::string address = NonLoopbackAddress();
  if (address.empty()) GTEST_SKIP() << "no non-loopback IPv4 address on this machine";
  std::string token_file = ::testing::TempDir() + "ld-token-" + std::to_string(getpid());
  std::ofstream(token_file) << "s3cret-token\n";
  // Without a token configured: 403, and the event names the peer.
  {
    LameduckProcess no_token;
    ASSERT_TRUE(no_token.Start({"--admin", "0.0.0.0:0", "--upstream",
                                "127.0.0.1:" + std::to_string(upstream_.port()), "--workers",
                                std::to_string(GetParam())}));
    auto denied = AdminFrom(address, no_token.admin_port(),
                            "POST /drain HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    ASSERT_TRUE(denied);
    EXPECT_EQ(denied->status, 403);
    auto warn = no_token.WaitForEvent("admin.denied", 2s);
    ASSERT_TRUE(warn);
    EXPECT_EQ((*warn)["peer"], address);
    EXPECT_EQ((*warn)["level"], "warn");
    // /ready and friends need no token.
    auto ready =
        AdminFrom(address, no_token.admin_port(), "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_TRUE(ready);
    EXPECT_NE(ready->status, 403);
  }
  LameduckProcess with_token;
  ASSERT_TRUE(
      with_token.Start({"--admin", "0.0.0.0:0", "--admin-token-file", token_file, "--drain-delay",
                        "0s", "--upstream", "127.0.0.1:" + std::to_string(upstream_.port()),
                        "--workers", std::to_string(GetParam())}));
  auto wrong = AdminFrom(address, with_token.admin_port(),
                         "POST /drain HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\n"
                         "Content-Length: 0\r\n\r\n");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  EXPECT_EQ(wrong->body.find("s3cret"), std::string::npos);
  auto right = AdminFrom(address, with_token.admin_port(),
                         "GET /drain?wait=1 HTTP/1.1\r\nHost: x\r\n"
                         "Authorization: Bearer s3cret-token\r\n\r\n");
  ASSERT_TRUE(right);
  EXPECT_EQ(right->status, 200);
  EXPECT_EQ(nlohmann::json::parse(right->body)["trigger"], "admin_wait");
  for (const auto& line : with_token.process().output()) {
    EXPECT_EQ(line.find("s3cret"), std::string::npos) << "the token leaked into the log";
  }
  unlink(token_file.c_str());
}

TEST_P(DrainTest, AdminApiAnswersUnknownPaths404AndWrongMethods405) {
  StartLameduck({});
  auto missing = lameduck_.Admin("GET", "/nope");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  auto wrong = lameduck_.Admin("POST", "/ready");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 405);
  EXPECT_EQ(wrong->Header("Allow"), "GET");
  auto get_drain = lameduck_.Admin("GET", "/drain");  // without wait=1 it must be POST
  ASSERT_TRUE(get_drain);
  EXPECT_EQ(get_drain->status, 405);
  EXPECT_TRUE(lameduck_.WaitForReady(200, 1s));  // and nothing was drained
}

TEST_P(DrainTest, MetricsUseThePrometheusTextFormat) {
  StartLameduck({});
  ASSERT_TRUE(Get(lameduck_.port(), "/a"));
  // With two workers the response may have been served by the other loop, whose report reaches
  // the main loop a moment after the client has its bytes: read again until it has.
  auto metrics = lameduck_.Admin("GET", "/metrics");
  for (auto until = std::chrono::steady_clock::now() + 2s;
       metrics &&
       metrics->body.find("lameduck_responses_total{code=\"2xx\"} 1\n") == std::string::npos &&
       std::chrono::steady_clock::now() < until;) {
    std::this_thread::sleep_for(10ms);
    metrics = lameduck_.Admin("GET", "/metrics");
  }
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_NE(metrics->Header("Content-Type").find("version=0.0.4"), std::string::npos);
  const std::string& text = metrics->body;
  EXPECT_NE(text.find("# TYPE lameduck_connections_open gauge\n"), std::string::npos);
  EXPECT_NE(text.find("lameduck_responses_total{code=\"2xx\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("lameduck_upstream_errors_total{kind=\"connect\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("lameduck_state{state=\"ready\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("lameduck_last_drain_duration_seconds 0\n"), std::string::npos);
  // Every sample line belongs to the family declared just before it.
  std::string family;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line.starts_with("# TYPE ")) {
      family = line.substr(7, line.find(' ', 7) - 7);
    } else if (!line.starts_with("#")) {
      EXPECT_TRUE(line.starts_with(family)) << line << " is outside its family " << family;
    }
  }
}

TEST(ReadinessTest, FollowsTheUpstreamReadyPathAndTheDrain) {
  std::atomic<int> health{503};
  TestUpstream upstream;
  upstream.SetHandler([&](const HttpRequest& request, UpstreamConn& conn) {
    conn.SendResponse(request.target == "/healthz" ? health.load() : 200, "h");
  });
  ASSERT_TRUE(upstream.Start());
  LameduckProcess lameduck;
  ASSERT_TRUE(lameduck.Start({"--upstream", "127.0.0.1:" + std::to_string(upstream.port()),
                              "--upstream-ready", "/healthz", "--drain-delay", "0s"}));
  auto starting = lameduck.Admin("GET", "/ready");
  ASSERT_TRUE(starting);
  EXPECT_EQ(starting->status, 503);
  EXPECT_EQ(nlohmann::json::parse(starting->body)["status"], "starting");
  health = 200;
  EXPECT_TRUE(lameduck.WaitForReady(200, 5s));
  ASSERT_TRUE(lameduck.WaitForEvent("ready", 1s));
  health = 500;
  ASSERT_TRUE(lameduck.WaitForReady(503, 5s));
  auto unready = lameduck.Admin("GET", "/ready");
  ASSERT_TRUE(unready);
  EXPECT_EQ(nlohmann::json::parse(unready->body)["status"], "upstream_unready");
  EXPECT_TRUE(lameduck.WaitForEvent("upstream.unready", 1s));
  health = 200;
  EXPECT_TRUE(lameduck.WaitForReady(200, 5s));
  ASSERT_TRUE(lameduck.Signal(SIGTERM));
  EXPECT_EQ(lameduck.Wait(5s), 0);
}

TEST(ReadinessTest, LogsTextWhenAskedAndNothingBelowTheLevel) {
  TestUpstream upstream;
  ASSERT_TRUE(upstream.Start());
  ChildProcess lameduck;
  ASSERT_TRUE(
      lameduck.Start({LameduckBinary(), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                      "--upstream", "127.0.0.1:" + std::to_string(upstream.port()), "--log-format",
                      "text", "--log-level", "warn", "--drain-delay", "0s"}));
  // Nothing at info: no start line. A drain of nothing forces nothing: silence, then exit 0.
  EXPECT_FALSE(lameduck.ReadLine(300ms));
  ASSERT_TRUE(lameduck.Signal(SIGTERM));
  EXPECT_EQ(lameduck.Wait(5s), 0);
  EXPECT_TRUE(lameduck.output().empty());
  ChildProcess text;
  ASSERT_TRUE(text.Start({LameduckBinary(), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                          "--upstream", "127.0.0.1:" + std::to_string(upstream.port()),
                          "--log-format", "text"}));
  auto line = text.ReadLine(5s);
  ASSERT_TRUE(line);
  EXPECT_NE(line->find(" info start "), std::string::npos) << *line;
  EXPECT_EQ(line->find('{'), std::string::npos) << *line;
}

// ---- launch mode ----

INSTANTIATE_TEST_SUITE_P(Workers, DrainTest, ::testing::Values(1, 2),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return info.param == 1 ? "OneWorker" : "TwoWorkers";
                         });

class LaunchTest : public ::testing::Test {};

TEST_F(LaunchTest, TheAppIsSignalledOnlyAfterTheDrainAndLameduckExitsWithItsStatus) {
  int app_port = FreePort();
  LameduckProcess lameduck;
  ASSERT_TRUE(
      lameduck.Start({"--upstream", "127.0.0.1:" + std::to_string(app_port), "--drain-delay", "0s",
                      "--drain-timeout", "10s"},
                     {SampleAppBinary(), "--listen", "127.0.0.1:" + std::to_string(app_port)}));
  ASSERT_TRUE(lameduck.WaitForReady(200));
  auto slow = TestClient::Connect(lameduck.port());
  ASSERT_TRUE(slow->Send("GET /slow?ms=1000 HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::this_thread::sleep_for(100ms);  // let the request reach the app (not an assertion)
  ASSERT_TRUE(lameduck.Signal(SIGTERM));
  auto response = slow->ReadResponse();
  ASSERT_TRUE(response) << "the app was killed under an in-flight request";
  EXPECT_EQ(response->status, 200);
  slow->Close();
  // sample_app dies of SIGTERM: 128 + 15, passed on.
  EXPECT_EQ(lameduck.Wait(10s), 143);
  std::vector<std::string> order;
  for (const auto& event : lameduck.Events()) order.push_back(event["event"]);
  auto position = [&](const std::string& name) {
    return std::find(order.begin(), order.end(), name) - order.begin();
  };
  EXPECT_LT(position("drain.complete"), position("app.signal"));
  EXPECT_LT(position("app.signal"), position("app.exit"));
  EXPECT_LT(position("app.exit"), position("exit"));
}

TEST_F(LaunchTest, AnAppThatIgnoresSigtermIsKilledAfterTheExitTimeout) {
  std::string marker = ::testing::TempDir() + "ld-trap-" + std::to_string(getpid());
  unlink(marker.c_str());
  LameduckProcess lameduck;
  ASSERT_TRUE(lameduck.Start(
      {"--upstream", "127.0.0.1:" + std::to_string(FreePort()), "--drain-delay", "0s",
       "--app-exit-timeout", "300ms"},
      {"/bin/sh", "-c", "trap '' TERM; touch " + marker + "; while true; do sleep 0.1; done"}));
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (access(marker.c_str(), F_OK) != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  unlink(marker.c_str());
  ASSERT_TRUE(lameduck.Signal(SIGTERM));
  EXPECT_EQ(lameduck.Wait(10s), 137);
  EXPECT_TRUE(lameduck.WaitForEvent("app.kill", 1s));
}

TEST_F(LaunchTest, AnAppThatDiesOnItsOwnEndsLameduckWithItsStatus) {
  LameduckProcess lameduck;
  ASSERT_TRUE(lameduck.Start({"--upstream", "127.0.0.1:" + std::to_string(FreePort())},
                             {"/bin/sh", "-c", "sleep 0.3; exit 7"}));
  EXPECT_EQ(lameduck.Wait(10s), 7);
  auto exit = lameduck.WaitForEvent("app.exit", 1s);
  ASSERT_TRUE(exit);
  EXPECT_EQ((*exit)["status"], 7);
  auto drain = lameduck.WaitForEvent("drain.start", 1s);
  ASSERT_TRUE(drain);
  EXPECT_EQ((*drain)["trigger"], "app_exit");
}

TEST_F(LaunchTest, TheExitUrlIsPostedOnceDrained) {
  TestUpstream app;
  ASSERT_TRUE(app.Start());
  LameduckProcess lameduck;
  ASSERT_TRUE(lameduck.Start({"--upstream", "127.0.0.1:" + std::to_string(app.port()),
                              "--drain-delay", "0s", "--app-exit-url",
                              "http://127.0.0.1:" + std::to_string(app.port()) + "/quit"}));
  ASSERT_TRUE(lameduck.WaitForReady(200));
  ASSERT_TRUE(lameduck.Signal(SIGTERM));
  EXPECT_EQ(lameduck.Wait(10s), 0);
  ASSERT_TRUE(app.WaitForRequests(1, 2s));
  auto received = app.received();
  ASSERT_FALSE(received.empty());
  EXPECT_EQ(received.back().method, "POST");
  EXPECT_EQ(received.back().target, "/quit");
}

TEST_F(LaunchTest, BadConfigurationExits2WithOneLineBeforeBindingAnything) {
  ChildProcess bad;
  ASSERT_TRUE(bad.Start({LameduckBinary(), "--drain-delay", "5x"}, /*capture_stderr=*/true));
  EXPECT_EQ(bad.Wait(5s), 2);
  auto line = bad.ReadLine(1s);
  ASSERT_TRUE(line);
  EXPECT_NE(line->find("--drain-delay"), std::string::npos) << *line;
  EXPECT_FALSE(bad.ReadLine(200ms));  // one line only
  // Settings that overrun the pod's termination grace: 2, with the arithmetic.
  ChildProcess overrun;
  ASSERT_TRUE(overrun.Start({LameduckBinary(), "--termination-grace", "20s"}, true));
  EXPECT_EQ(overrun.Wait(5s), 2);
  auto overrun_line = overrun.ReadLine(1s);
  ASSERT_TRUE(overrun_line);
  EXPECT_EQ(*overrun_line,
            "lameduck: --termination-grace: 20s is too short: accept grace up to 5s + drain "
            "timeout 25s + app exit timeout 10s + 2s to spare = 42s; raise "
            "terminationGracePeriodSeconds to 42 or shorten these");
  // A port in use: 2, naming the option.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
  listen(fd, 1);
  socklen_t length = sizeof(sa);
  getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &length);
  ChildProcess busy;
  ASSERT_TRUE(busy.Start({LameduckBinary(), "--listen", "127.0.0.1:0", "--admin",
                          "127.0.0.1:" + std::to_string(ntohs(sa.sin_port))},
                         /*capture_stderr=*/true));
  EXPECT_EQ(busy.Wait(5s), 2);
  auto busy_line = busy.ReadLine(1s);
  ASSERT_TRUE(busy_line);
  EXPECT_NE(busy_line->find("--admin"), std::string::npos) << *busy_line;
  close(fd);
}

}  // namespace
}  // namespace lameduck::testing
