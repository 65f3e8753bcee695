// tests/bench/load_generator_test.cc: LoadGenerator against bench/sample_app and against a tiny
// scripted origin in this file, which can close, reset, stall or answer 503 on a chosen request.
// The scripted origin is plain blocking sockets and threads, like the generator, and polls every
// 20 ms for Stop(): it needs no help from the code under test to end.
//
// Short durations and counts with wide margins: what is checked is how requests are counted, not
// how many a loaded machine manages.

#include "bench/load_generator.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace lameduck::bench {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Polls `condition` every 5 ms until it holds or `timeout` passes.
bool Eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  Clock::time_point deadline = Clock::now() + timeout;
  while (!condition()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

int ListenOnLoopback(int* port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(addr);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(fd, 128) != 0 || getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

// What the scripted origin does with one request.
enum class Reply {
  kOk,           // 200 "ok", keep-alive
  kOkThenClose,  // 200 "ok" with Connection: close, then FIN
  kSilentClose,  // reads the request, closes without a byte of response (FIN)
  kReset,        // reads the request, resets the connection (RST)
  kUnavailable,  // 503, keep-alive
  kNever,        // reads the request, never answers
};

class ScriptedServer {
 public:
  // connection: 1-based accept order; request: 1-based on that connection.
  using Script = std::function<Reply(int connection, int request)>;

  ScriptedServer() : script_([](int, int) { return Reply::kOk; }) {
    listen_fd_ = ListenOnLoopback(&port_);
    if (listen_fd_ >= 0) acceptor_ = std::thread([this] { Accept(); });
  }
  ~ScriptedServer() {
    stopping_ = true;
    if (acceptor_.joinable()) acceptor_.join();
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mutex_);  // not held while joining: Serve() takes it for the script
      threads.swap(connection_threads_);
    }
    for (std::thread& thread : threads) thread.join();
    if (listen_fd_ >= 0) close(listen_fd_);
  }
  ScriptedServer(const ScriptedServer&) = delete;
  ScriptedServer& operator=(const ScriptedServer&) = delete;

  bool ok() const { return listen_fd_ >= 0; }
  int port() const { return port_; }
  int connections() const { return connections_; }
  int requests() const { return requests_; }
  void SetScript(Script script) {
    std::lock_guard lock(mutex_);
    script_ = std::move(script);
  }

 private:
  void Accept() {
    while (!stopping_) {
      pollfd pfd{listen_fd_, POLLIN, 0};
      if (poll(&pfd, 1, 20) <= 0) continue;
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      int id = ++connections_;
      std::lock_guard lock(mutex_);
      connection_threads_.emplace_back([this, fd, id] { Serve(fd, id); });
    }
  }

  // Reads until a blank line ends a request head (GETs only: no bodies); false on EOF or Stop().
  bool ReadHead(int fd, std::string& buffer) {
    while (buffer.find("\r\n\r\n") == std::string::npos) {
      if (stopping_) return false;
      pollfd pfd{fd, POLLIN, 0};
      if (poll(&pfd, 1, 20) <= 0) continue;
      char chunk[4096];
      ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
      if (n <= 0) return false;
      buffer.append(chunk, static_cast<size_t>(n));
    }
    buffer.erase(0, buffer.find("\r\n\r\n") + 4);
    return true;
  }

  void Serve(int fd, int id) {
    std::string buffer;
    for (int request = 1; ReadHead(fd, buffer); ++request) {
      ++requests_;
      Reply reply;
      {
        std::lock_guard lock(mutex_);
        reply = script_(id, request);
      }
      if (reply == Reply::kOk || reply == Reply::kOkThenClose || reply == Reply::kUnavailable) {
        std::string response = reply == Reply::kUnavailable
                                   ? "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n"
                                   : "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n";
        if (reply == Reply::kOkThenClose) response += "Connection: close\r\n";
        response += "\r\nok";
        send(fd, response.data(), response.size(), MSG_NOSIGNAL);
        if (reply != Reply::kOkThenClose) continue;
      }
      if (reply == Reply::kReset) {
        linger zero{1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &zero, sizeof(zero));
      }
      if (reply == Reply::kNever) {
        while (!stopping_ && ReadHead(fd, buffer)) {
        }
      }
      break;
    }
    close(fd);
  }

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> requests_{0};
  std::mutex mutex_;  // script_, connection_threads_
  Script script_;
  std::thread acceptor_;
  std::vector<std::thread> connection_threads_;
};

// bench/sample_app on a port of its own, killed and reaped at the end of the test.
class SampleApp {
 public:
  SampleApp() {
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDERR_FILENO);
    const char* argv[] = {SAMPLE_APP_BINARY, "--listen", "127.0.0.1:0", nullptr};
    if (posix_spawn(&pid_, SAMPLE_APP_BINARY, &actions, nullptr, const_cast<char**>(argv),
                    environ) != 0) {
      pid_ = -1;
    }
    posix_spawn_file_actions_destroy(&actions);
    close(pipe_fds[1]);
    // "sample_app listening on 127.0.0.1:PORT\n", within 5 s.
    std::string line;
    Clock::time_point deadline = Clock::now() + 5s;
    while (pid_ > 0 && line.find('\n') == std::string::npos && Clock::now() < deadline) {
      pollfd pfd{pipe_fds[0], POLLIN, 0};
      if (poll(&pfd, 1, 50) <= 0) continue;
      char chunk[256];
      ssize_t n = read(pipe_fds[0], chunk, sizeof(chunk));
      if (n <= 0) break;
      line.append(chunk, static_cast<size_t>(n));
    }
    close(pipe_fds[0]);  // later writes to stderr get EPIPE (SIGPIPE is ignored there)
    size_t colon = line.rfind(':');
    if (line.find("listening on") != std::string::npos && colon != std::string::npos) {
      port_ = std::atoi(line.c_str() + colon + 1);
    }
  }
  ~SampleApp() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  SampleApp(const SampleApp&) = delete;
  SampleApp& operator=(const SampleApp&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

LoadOptions FastOptions(std::vector<int> endpoints, int connections) {
  LoadOptions options;
  options.endpoints = std::move(endpoints);
  options.connections = connections;
  options.slow_fraction = 0;
  options.think = 5ms;
  options.failure_pause = 5ms;
  options.request_timeout = 3s;
  return options;
}

void ExpectEveryRequestAccountedFor(const LoadStats& stats) {
  EXPECT_EQ(stats.sent, stats.ok + stats.failed + stats.rerouted);
  EXPECT_EQ(stats.failed, stats.refused + stats.reset + stats.eof + stats.timeout +
                              stats.server_error + stats.other);
}

size_t CountEntries(const char* directory) {
  size_t count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(directory)) ++count;
  return count;
}

// Every test ends with the threads and file descriptors it began with: workers joined, sockets
// closed, sample_app's pipe closed.
class LoadGeneratorTest : public ::testing::Test {
 protected:
  // ThreadSanitizer starts a helper thread with the process's first thread: let that happen
  // before any baseline is taken.
  static void SetUpTestSuite() {
    std::thread([] {}).join();
  }

  void SetUp() override {
    fds_at_start_ = CountEntries("/proc/self/fd");
    threads_at_start_ = CountEntries("/proc/self/task");
  }
  void TearDown() override {
    EXPECT_EQ(CountEntries("/proc/self/fd"), fds_at_start_) << "a file descriptor leaked";
    // A joined thread may linger in /proc for a moment after pthread_join returns.
    EXPECT_TRUE(
        Eventually([&] { return CountEntries("/proc/self/task") == threads_at_start_; }, 1s))
        << "a thread leaked";
  }

 private:
  size_t fds_at_start_ = 0;
  size_t threads_at_start_ = 0;
};

TEST_F(LoadGeneratorTest, KeepAliveLoadOnSampleAppAllSucceedsOnOneConnectionPerWorker) {
  SampleApp app;
  ASSERT_GT(app.port(), 0) << "sample_app did not start";
  LoadOptions options = FastOptions({app.port()}, 4);
  options.slow_fraction = 0.3;
  options.slow_min = 20ms;
  options.slow_max = 60ms;
  options.max_duration = 600ms;
  LoadGenerator generator(options);
  generator.Start();
  generator.Wait();
  LoadStats stats = generator.stats();
  EXPECT_GE(stats.sent, 20u);
  EXPECT_EQ(stats.ok, stats.sent);
  EXPECT_EQ(stats.failed, 0u);
  EXPECT_GT(stats.slow_sent, 0u);
  EXPECT_EQ(stats.slow_ok, stats.slow_sent);
  EXPECT_EQ(stats.retried, 0u);
  EXPECT_LE(stats.connections, 4u);  // keep-alive (fewer if a worker's thread started late)
  EXPECT_EQ(stats.statuses[200], stats.sent);
  ExpectEveryRequestAccountedFor(stats);
}

// --close-fraction 1: every request says Connection: close and the next goes on a new
// connection; a retry never happens (no connection is reused).
TEST_F(LoadGeneratorTest, ClientsThatCloseOpenANewConnectionForEachRequest) {
  SampleApp app;
  ASSERT_GT(app.port(), 0) << "sample_app did not start";
  LoadOptions options = FastOptions({app.port()}, 2);
  options.close_fraction = 1;
  options.max_duration = 400ms;
  LoadGenerator generator(options);
  generator.Start();
  generator.Wait();
  LoadStats stats = generator.stats();
  EXPECT_GE(stats.sent, 10u);
  EXPECT_EQ(stats.ok, stats.sent);
  EXPECT_EQ(stats.connections, stats.sent);
  EXPECT_EQ(stats.retried, 0u);
  ExpectEveryRequestAccountedFor(stats);
}

TEST_F(LoadGeneratorTest, KillingTheAppMidLoadCountsFailures) {
  SampleApp app;
  ASSERT_GT(app.port(), 0) << "sample_app did not start";
  LoadOptions options = FastOptions({app.port()}, 8);
  options.slow_fraction = 0.5;
  options.slow_min = 300ms;
  options.slow_max = 500ms;
  LoadGenerator generator(options);
  generator.Start();
  ASSERT_TRUE(Eventually([&] { return generator.stats().ok >= 16; }, 5s));
  kill(app.pid(), SIGTERM);  // sample_app has no handler: it dies with requests in flight
  ASSERT_TRUE(Eventually([&] { return generator.stats().refused >= 8; }, 5s));
  generator.Stop();
  LoadStats stats = generator.stats();
  EXPECT_GT(stats.failed, 0u);
  EXPECT_LT(stats.slow_ok, stats.slow_sent);
  ExpectEveryRequestAccountedFor(stats);
}

// A rollout done right, minus the proxy: the old app leaves the endpoint list first, and dies
// only later. Its pinned keep-alive connections then break, but no response was cut (no slow
// requests; each answer is one write) and every connection is a reused one, so each request
// that was on it is retried on the new app.
TEST_F(LoadGeneratorTest, RequestsOnTheOldAppsPinnedConnectionsAreRetriedOnTheNewOne) {
  SampleApp old_app, new_app;
  ASSERT_GT(old_app.port(), 0) << "sample_app did not start";
  ASSERT_GT(new_app.port(), 0) << "sample_app did not start";
  LoadGenerator generator(FastOptions({old_app.port()}, 4));
  generator.Start();
  ASSERT_TRUE(Eventually(
      [&] { return generator.stats().connections == 4 && generator.stats().ok >= 8; }, 5s));
  generator.SetEndpoints({new_app.port()});
  uint64_t to_old = generator.stats().by_port[old_app.port()];
  ASSERT_TRUE(
      Eventually([&] { return generator.stats().by_port[old_app.port()] >= to_old + 20; }, 5s));
  EXPECT_EQ(generator.stats().by_port[new_app.port()], 0u);  // nothing closed: all pinned

  kill(old_app.pid(), SIGTERM);
  ASSERT_TRUE(Eventually([&] { return generator.stats().by_port[new_app.port()] >= 20; }, 5s));
  generator.Stop();
  LoadStats stats = generator.stats();
  EXPECT_EQ(stats.failed, 0u);
  EXPECT_EQ(stats.ok, stats.sent);
  EXPECT_EQ(stats.connections, 8u);
}

TEST_F(LoadGeneratorTest, NewConnectionsTakeTheEndpointsRoundRobin) {
  ScriptedServer a, b;
  ASSERT_TRUE(a.ok() && b.ok());
  LoadGenerator generator(FastOptions({a.port(), b.port()}, 4));
  generator.Start();
  // Each worker's first connection, however late a loaded machine starts its thread.
  ASSERT_TRUE(Eventually([&] { return generator.stats().connections == 4; }, 5s));
  ASSERT_TRUE(Eventually([&] { return a.requests() >= 4 && b.requests() >= 4; }, 5s));
  generator.Stop();
  EXPECT_EQ(a.connections(), 2);
  EXPECT_EQ(b.connections(), 2);
  LoadStats stats = generator.stats();
  EXPECT_EQ(stats.failed, 0u);
  EXPECT_EQ(stats.by_port[a.port()] + stats.by_port[b.port()], stats.sent);
}

TEST_F(LoadGeneratorTest, OpenConnectionsStayPinnedToARemovedEndpointUntilTheServerCloses) {
  ScriptedServer a, b;
  ASSERT_TRUE(a.ok() && b.ok());
  LoadGenerator generator(FastOptions({a.port()}, 3));
  generator.Start();
  ASSERT_TRUE(Eventually([&] { return a.connections() == 3 && a.requests() >= 6; }, 5s));

  generator.SetEndpoints({b.port()});
  int a_requests = a.requests();
  ASSERT_TRUE(Eventually([&] { return a.requests() >= a_requests + 10; }, 5s))
      << "connections to the removed endpoint stopped carrying requests";
  EXPECT_EQ(b.connections(), 0);

  a.SetScript([](int, int) { return Reply::kOkThenClose; });
  ASSERT_TRUE(Eventually([&] { return b.connections() == 3 && b.requests() >= 10; }, 5s));
  generator.Stop();
  EXPECT_EQ(a.connections(), 3);
  EXPECT_EQ(b.connections(), 3);
  LoadStats stats = generator.stats();
  EXPECT_EQ(stats.failed, 0u);
  EXPECT_EQ(stats.retried, 0u);
  EXPECT_EQ(stats.ok, stats.sent);
}

TEST_F(LoadGeneratorTest, GetThatFailsOnAReusedConnectionIsRetriedOnceOnANewOne) {
  for (Reply failure : {Reply::kSilentClose, Reply::kReset}) {
    ScriptedServer server;
    ASSERT_TRUE(server.ok());
    server.SetScript([failure](int connection, int request) {
      return connection == 1 && request == 2 ? failure : Reply::kOk;
    });
    LoadGenerator generator(FastOptions({server.port()}, 1));
    generator.Start();
    ASSERT_TRUE(Eventually([&] { return generator.stats().ok >= 4; }, 5s));
    generator.Stop();
    LoadStats stats = generator.stats();
    EXPECT_EQ(stats.retried, 1u);
    EXPECT_EQ(stats.failed, 0u);
    EXPECT_EQ(stats.ok, stats.sent);
    EXPECT_EQ(stats.connections, 2u);
  }
}

TEST_F(LoadGeneratorTest, FailureOnAFreshConnectionIsNotRetried) {
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  server.SetScript([](int connection, int request) {
    return connection == 1 && request == 1 ? Reply::kSilentClose : Reply::kOk;
  });
  LoadGenerator generator(FastOptions({server.port()}, 1));
  generator.Start();
  ASSERT_TRUE(Eventually([&] { return generator.stats().ok >= 2; }, 5s));
  generator.Stop();
  LoadStats stats = generator.stats();
  EXPECT_EQ(stats.retried, 0u);
  EXPECT_EQ(stats.failed, 1u);
  EXPECT_EQ(stats.eof, 1u);
  ExpectEveryRequestAccountedFor(stats);
}

TEST_F(LoadGeneratorTest, RetryThatFailsTooIsOneFailure) {
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  server.SetScript([](int connection, int request) {
    if (connection == 1 && request == 2) return Reply::kSilentClose;
    if (connection == 2 && request == 1) return Reply::kReset;
    return Reply::kOk;
  });
  LoadGenerator generator(FastOptions({server.port()}, 1));
  generator.Start();
  ASSERT_TRUE(Eventually([&] { return generator.stats().ok >= 3; }, 5s));
  generator.Stop();
  LoadStats stats = generator.stats();
  EXPECT_EQ(stats.retried, 1u);
  EXPECT_EQ(stats.failed, 1u);
  EXPECT_EQ(stats.reset, 1u);
  ExpectEveryRequestAccountedFor(stats);
}

TEST_F(LoadGeneratorTest, RetryWithNoEndpointLeftIsCountedAsRerouted) {
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  LoadGenerator generator(FastOptions({server.port()}, 1));
  server.SetScript([&generator](int, int request) {
    if (request < 3) return Reply::kOk;
    generator.SetEndpoints({});  // kube-proxy removes the endpoint; then the server closes
    return Reply::kSilentClose;
  });
  generator.Start();
  ASSERT_TRUE(Eventually([&] { return generator.stats().rerouted == 1; }, 5s));
  generator.Stop();
  LoadStats stats = generator.stats();
  EXPECT_EQ(stats.sent, 3u);
  EXPECT_EQ(stats.ok, 2u);
  EXPECT_EQ(stats.retried, 1u);
  EXPECT_EQ(stats.failed, 0u);
  EXPECT_EQ(server.connections(), 1);
}

TEST_F(LoadGeneratorTest, ServerErrorsAreFailuresByStatusOnAKeptAliveConnection) {
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  server.SetScript([](int, int) { return Reply::kUnavailable; });
  LoadGenerator generator(FastOptions({server.port()}, 1));
  generator.Start();
  ASSERT_TRUE(Eventually([&] { return generator.stats().failed >= 3; }, 5s));
  generator.Stop();
  LoadStats stats = generator.stats();
  EXPECT_EQ(stats.failed, stats.sent);
  EXPECT_EQ(stats.server_error, stats.sent);
  EXPECT_EQ(stats.statuses[503], stats.sent);
  EXPECT_EQ(stats.connections, 1u);
}

TEST_F(LoadGeneratorTest, NoResponseWithinTheRequestTimeoutIsATimeout) {
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  server.SetScript([](int, int) { return Reply::kNever; });
  LoadOptions options = FastOptions({server.port()}, 1);
  options.request_timeout = 200ms;
  LoadGenerator generator(options);
  generator.Start();
  ASSERT_TRUE(Eventually([&] { return generator.stats().timeout >= 1; }, 5s));
  generator.Stop();
  LoadStats stats = generator.stats();
  EXPECT_EQ(stats.retried, 0u);
  EXPECT_EQ(stats.ok, 0u);
  EXPECT_EQ(stats.failed, stats.timeout);
  ExpectEveryRequestAccountedFor(stats);
}

TEST_F(LoadGeneratorTest, ConnectRefusedIsAFailure) {
  int port = 0;
  int fd = ListenOnLoopback(&port);
  ASSERT_GE(fd, 0);
  close(fd);  // nothing listens there now
  LoadGenerator generator(FastOptions({port}, 1));
  generator.Start();
  ASSERT_TRUE(Eventually([&] { return generator.stats().refused >= 2; }, 5s));
  generator.Stop();
  LoadStats stats = generator.stats();
  EXPECT_EQ(stats.failed, stats.refused);
  EXPECT_EQ(stats.connections, 0u);
  ExpectEveryRequestAccountedFor(stats);
}

TEST_F(LoadGeneratorTest, AfterAFailureAWorkerPausesForTheFailurePause) {
  int port = 0;
  int fd = ListenOnLoopback(&port);
  ASSERT_GE(fd, 0);
  close(fd);
  LoadOptions options = FastOptions({port}, 1);
  options.think = 0ms;
  options.failure_pause = 200ms;
  options.max_duration = 500ms;
  LoadGenerator generator(options);
  generator.Start();
  generator.Wait();
  LoadStats stats = generator.stats();
  EXPECT_GE(stats.refused, 1u);
  EXPECT_LE(stats.refused, 3u);  // at 0, 200 and 400 ms at the most
}

TEST_F(LoadGeneratorTest, StopLetsTheRequestInFlightFinish) {
  SampleApp app;
  ASSERT_GT(app.port(), 0) << "sample_app did not start";
  LoadOptions options = FastOptions({app.port()}, 1);
  options.slow_fraction = 1;
  options.slow_min = options.slow_max = 300ms;
  LoadGenerator generator(options);
  generator.Start();
  ASSERT_TRUE(Eventually([&] { return generator.stats().sent == 1; }, 5s));
  generator.Stop();  // asked at most a few ms into the 300 ms the answer takes
  LoadStats stats = generator.stats();
  EXPECT_EQ(stats.sent, 1u);
  EXPECT_EQ(stats.ok, 1u);
  EXPECT_EQ(stats.slow_ok, 1u);
}

TEST_F(LoadGeneratorTest, WorkersWaitWhileTheEndpointListIsEmpty) {
  ScriptedServer server;
  ASSERT_TRUE(server.ok());
  LoadGenerator generator(FastOptions({}, 2));
  generator.Start();
  std::this_thread::sleep_for(100ms);  // proving an absence: nothing may happen meanwhile
  EXPECT_EQ(generator.stats().sent, 0u);
  generator.SetEndpoints({server.port()});
  ASSERT_TRUE(Eventually([&] { return generator.stats().ok >= 4; }, 5s));
  generator.SetEndpoints({});
  generator.Stop();  // also wakes a worker waiting for an endpoint
  EXPECT_EQ(generator.stats().failed, 0u);
}

TEST_F(LoadGeneratorTest, SummaryNamesEveryReason) {
  LoadStats stats;
  stats.sent = 4211;
  stats.ok = 4211;
  stats.slow_sent = 37;
  stats.slow_ok = 37;
  EXPECT_EQ(FormatSummary(stats),
            "4211 requests sent, 4211 ok, 0 failed (0 refused, 0 reset, 0 eof, 0 timeout, 0 5xx); "
            "37 slow requests, 37 ok; 0 retried");
  stats.sent = 20;
  stats.ok = 10;
  stats.failed = 7;
  stats.refused = 2;
  stats.server_error = 4;
  stats.statuses = {{200, 10}, {502, 1}, {503, 3}};
  stats.other = 1;
  stats.retried = 3;
  stats.rerouted = 1;
  EXPECT_EQ(FormatSummary(stats),
            "20 requests sent, 10 ok, 7 failed (2 refused, 0 reset, 0 eof, 0 timeout, 4 5xx: "
            "1x502 3x503, 1 other); 37 slow requests, 37 ok; 3 retried (1 found no endpoint "
            "left: they go to another pod, not counted here); 2 in flight");
}

}  // namespace
}  // namespace lameduck::bench
