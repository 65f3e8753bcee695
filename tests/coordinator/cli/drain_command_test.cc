// `lameduck drain` against a scripted fake admin server: the request it sends, how each answer
// becomes output and an exit status, and that bad usage is one line naming the option. What
// --then chains replaces the process, so those tests run the real binary as a child.
#include "coordinator/cli/drain_command.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/child_process.h"

namespace lameduck::coordinator {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Env = std::map<std::string, std::string>;
using Args = std::vector<std::string>;

::testing::AssertionResult Contains(std::string_view text, std::string_view part) {
  if (text.find(part) != std::string_view::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

std::string Response(std::string_view status, std::string_view body) {
  return "HTTP/1.1 " + std::string(status) + "\r\nContent-Type: application/json\r\n" +
         "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
         std::string(body);
}

// A one-connection admin server on its own thread, over blocking sockets: accepts, records the
// request head, waits `delay` (cut short when the test ends), answers `response` and closes.
class FakeAdmin {
 public:
  enum class Transport { kTcp, kUnix };

  explicit FakeAdmin(std::string response, Transport transport = Transport::kTcp,
                     std::chrono::milliseconds delay = 0ms)
      : response_(std::move(response)), delay_(delay) {
    if (pipe(wake_) != 0) ADD_FAILURE() << "pipe: " << std::strerror(errno);
    if (transport == Transport::kTcp) {
      listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      Bind(reinterpret_cast<sockaddr*>(&address), sizeof(address));
      socklen_t length = sizeof(address);
      getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length);
      port_ = ntohs(address.sin_port);
    } else {
      static std::atomic<int> counter{0};
      path_ = "/tmp/lameduck-drain-test-" + std::to_string(getpid()) + "-" +
              std::to_string(counter++) + ".sock";
      unlink(path_.c_str());
      listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un address{};
      address.sun_family = AF_UNIX;
      std::strncpy(address.sun_path, path_.c_str(), sizeof(address.sun_path) - 1);
      Bind(reinterpret_cast<sockaddr*>(&address), sizeof(address));
    }
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeAdmin() {
    (void)!write(wake_[1], "x", 1);
    if (thread_.joinable()) thread_.join();
    close(listen_fd_);
    close(wake_[0]);
    close(wake_[1]);
    if (!path_.empty()) unlink(path_.c_str());
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  const std::string& path() const { return path_; }
  // The request head it got. Call after a run that connected: waits for the server to finish.
  const std::string& request() {
    if (thread_.joinable()) thread_.join();
    return request_;
  }

 private:
  void Bind(sockaddr* address, socklen_t length) {
    if (bind(listen_fd_, address, length) != 0 || listen(listen_fd_, 4) != 0) {
      ADD_FAILURE() << "bind/listen: " << std::strerror(errno);
    }
  }
  // True when `fd` is readable before `timeout`; false when the test is over.
  bool WaitReadable(int fd, int timeout_ms) {
    pollfd fds[] = {{fd, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    return poll(fds, 2, timeout_ms) > 0 && fds[1].revents == 0 && fds[0].revents != 0;
  }
  void Serve() {
    if (!WaitReadable(listen_fd_, -1)) return;
    int fd = accept(listen_fd_, nullptr, nullptr);
    char buffer[4096];
    while (request_.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = read(fd, buffer, sizeof(buffer));
      if (n <= 0) break;
      request_.append(buffer, static_cast<size_t>(n));
    }
    pollfd wake{wake_[0], POLLIN, 0};
    if (poll(&wake, 1, static_cast<int>(delay_.count())) == 0) {
      (void)!write(fd, response_.data(), response_.size());
    }
    close(fd);
  }

  std::string response_;
  std::chrono::milliseconds delay_;
  int wake_[2] = {-1, -1};
  int listen_fd_ = -1;
  int port_ = 0;
  std::string path_;
  std::string request_;
  std::thread thread_;
};

struct Outcome {
  int status;
  std::string out;
  std::string err;
};

// A loopback port bound but not listening: connecting to it is refused at once.
class RefusingPort {
 public:
  RefusingPort() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&address), length) != 0) {
      ADD_FAILURE() << "bind: " << std::strerror(errno);
    }
    getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    address_ = "127.0.0.1:" + std::to_string(ntohs(address.sin_port));
  }
  ~RefusingPort() { close(fd_); }
  const std::string& address() const { return address_; }

 private:
  int fd_ = -1;
  std::string address_;
};

Outcome Drain(const Args& args, const Env& env = {}) {
  char* out_text = nullptr;
  char* err_text = nullptr;
  size_t out_size = 0;
  size_t err_size = 0;
  std::FILE* out = open_memstream(&out_text, &out_size);
  std::FILE* err = open_memstream(&err_text, &err_size);
  int status = RunDrainCommand(args, env, out, err);
  std::fclose(out);
  std::fclose(err);
  Outcome outcome{status, std::string(out_text, out_size), std::string(err_text, err_size)};
  std::free(out_text);
  std::free(err_text);
  return outcome;
}

TEST(DrainCommandTest, PostsDrainWithoutAuthorizationAndPrintsTheAnswer) {
  FakeAdmin admin(Response("202 Accepted", R"({"status":"draining"})"));
  Outcome run = Drain({"--admin", admin.address()});
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, "{\"status\":\"draining\"}\n");
  EXPECT_EQ(run.err, "");
  std::string request = admin.request();
  EXPECT_TRUE(request.starts_with("POST /drain HTTP/1.1\r\n")) << request;
  EXPECT_TRUE(Contains(request, "\r\nHost: lameduck\r\n"));
  EXPECT_TRUE(Contains(request, "\r\nUser-Agent: lameduck-drain/"));  // the drain.start trigger
  EXPECT_TRUE(Contains(request, "\r\nContent-Length: 0\r\n"));
  EXPECT_TRUE(Contains(request, "\r\nConnection: close\r\n"));
  EXPECT_FALSE(Contains(request, "Authorization"));
}

TEST(DrainCommandTest, WaitAsksForDrainWaitAndPrintsTheSummary) {
  const std::string summary = R"({"duration_ms":5012,"forced":0})";
  FakeAdmin admin(Response("200 OK", summary));
  Outcome run = Drain({"--wait", "--admin=" + admin.address()});
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, summary + "\n");
  EXPECT_TRUE(admin.request().starts_with("POST /drain?wait=1 HTTP/1.1\r\n"));
}

TEST(DrainCommandTest, SendsTheTokenAsBearer) {
  FakeAdmin admin(Response("202 Accepted", "{}"));
  Outcome run = Drain({"--admin", admin.address(), "--token=s3cret"});
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_TRUE(Contains(admin.request(), "\r\nAuthorization: Bearer s3cret\r\n"));
}

TEST(DrainCommandTest, TakesTheTokenFromLameduckAdminToken) {
  FakeAdmin admin(Response("202 Accepted", "{}"));
  Outcome run = Drain({"--admin", admin.address()}, {{"LAMEDUCK_ADMIN_TOKEN", "from-env"}});
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_TRUE(Contains(admin.request(), "\r\nAuthorization: Bearer from-env\r\n"));
}

TEST(DrainCommandTest, UnauthorizedExitsOneWithTheStatusAndNeverTheToken) {
  FakeAdmin admin(Response("401 Unauthorized", R"({"error":"bad token"})"));
  Outcome run = Drain({"--admin", admin.address(), "--token", "s3cret"});
  EXPECT_EQ(run.status, 1);
  EXPECT_EQ(run.out, "");
  EXPECT_TRUE(Contains(run.err, R"(lameduck drain: 401 Unauthorized: {"error":"bad token"})"));
  EXPECT_FALSE(Contains(run.err, "s3cret"));
  EXPECT_EQ(run.err.find('\n'), run.err.size() - 1) << "one line: " << run.err;
}

TEST(DrainCommandTest, ForbiddenAndServerErrorsExitOneWithTheStatus) {
  for (std::string status : {"403 Forbidden", "500 Internal Server Error"}) {
    SCOPED_TRACE(status);
    FakeAdmin admin(Response(status, "no\r\nway"));
    Outcome run = Drain({"--admin", admin.address()});
    EXPECT_EQ(run.status, 1);
    EXPECT_TRUE(Contains(run.err, "lameduck drain: " + status + ": no way"));
  }
}

TEST(DrainCommandTest, ReadsAChunkedAnswer) {
  FakeAdmin admin(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n");
  Outcome run = Drain({"--admin", admin.address(), "--wait"});
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, "{\"a\":1}\n");
}

TEST(DrainCommandTest, ReadsAnAnswerEndedByTheServerClosing) {
  FakeAdmin admin("HTTP/1.1 202 Accepted\r\nConnection: close\r\n\r\n{\"status\":\"draining\"}");
  Outcome run = Drain({"--admin", admin.address()});
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, "{\"status\":\"draining\"}\n");
}

TEST(DrainCommandTest, ServerClosingWithoutAnswerExitsOne) {
  FakeAdmin admin("");
  Outcome run = Drain({"--admin", admin.address()});
  EXPECT_EQ(run.status, 1);
  EXPECT_TRUE(Contains(run.err, "closed the connection without answering"));
}

TEST(DrainCommandTest, ConnectionRefusedExitsOneNamingTheAddress) {
  RefusingPort port;
  const std::string& target = port.address();
  Outcome run = Drain({"--admin", target});
  EXPECT_EQ(run.status, 1);
  EXPECT_TRUE(Contains(run.err, "lameduck drain: cannot connect to " + target +
                                    ": Connection refused (is lameduck running with --admin " +
                                    target + "?)"));
}

TEST(DrainCommandTest, GivesUpWhenNoAnswerWithinTimeout) {
  FakeAdmin admin(Response("200 OK", "{}"), FakeAdmin::Transport::kTcp, 60s);
  Clock::time_point start = Clock::now();
  Outcome run = Drain({"--admin", admin.address(), "--wait", "--timeout", "300ms"});
  EXPECT_EQ(run.status, 1);
  EXPECT_EQ(run.err, "lameduck drain: no answer within 300ms\n");
  EXPECT_LT(Clock::now() - start, 5s);
}

TEST(DrainCommandTest, TalksToTheUnixSocket) {
  FakeAdmin admin(Response("202 Accepted", "{}"), FakeAdmin::Transport::kUnix);
  Outcome run = Drain({"--admin-socket", admin.path()}, {{"LAMEDUCK_ADMIN", "127.0.0.1:1"}});
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_TRUE(admin.request().starts_with("POST /drain HTTP/1.1\r\n"));
}

TEST(DrainCommandTest, TakesTheUnixSocketFromTheEnvironment) {
  FakeAdmin admin(Response("202 Accepted", "{}"), FakeAdmin::Transport::kUnix);
  Outcome run = Drain({}, {{"LAMEDUCK_ADMIN_SOCKET", "unix:" + admin.path()}});
  EXPECT_EQ(run.status, 0) << run.err;
}

TEST(DrainCommandTest, WildcardAdminAddressMeansLoopback) {
  FakeAdmin admin(Response("202 Accepted", "{}"));
  Outcome run = Drain({}, {{"LAMEDUCK_ADMIN", "0.0.0.0:" + std::to_string(admin.port())}});
  EXPECT_EQ(run.status, 0) << run.err;
}

TEST(DrainCommandTest, BadUsageExitsTwoNamingTheOption) {
  struct Case {
    Args args;
    std::string named;
  };
  for (const Case& c : std::vector<Case>{
           {{"--bogus"}, "unknown option --bogus"},
           {{"--timeout", "soon"}, "--timeout"},
           {{"--timeout=5"}, "--timeout"},
           {{"--admin", "127.0.0.1:9", "--admin-socket", "/tmp/x"}, "--admin and --admin-socket"},
           {{"--admin", "nowhere"}, "--admin"},
           {{"--token"}, "--token: missing value"},
           {{"--wait=yes"}, "--wait"},
       }) {
    SCOPED_TRACE(c.args[0]);
    Outcome run = Drain(c.args);
    EXPECT_EQ(run.status, 2);
    EXPECT_TRUE(Contains(run.err, "lameduck drain: " + c.named));
    EXPECT_EQ(run.err.find('\n'), run.err.size() - 1) << "one line: " << run.err;
  }
}

TEST(DrainCommandTest, HelpPrintsUsageAndExitsZero) {
  Outcome run = Drain({"--help"});
  EXPECT_EQ(run.status, 0);
  EXPECT_TRUE(Contains(run.out, "Usage: lameduck drain"));
  EXPECT_TRUE(Contains(run.out, "0 means no limit"));
  EXPECT_TRUE(Contains(run.out, "--then -- CMD [ARGS...]"));
  EXPECT_TRUE(Contains(run.out, "CMD runs even when the drain failed"));
  EXPECT_TRUE(Contains(run.out, "--then-sleep DUR"));
}

// The chained command in these is a path that does not exist, so that a parser bug letting one
// through fails the test (exit 127) instead of replacing the test process.
TEST(DrainCommandTest, ThenUsageErrorsExitTwoNamingTheOption) {
  const std::string hook = "/nonexistent/lameduck-test-hook";
  struct Case {
    Args args;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {{"--then"}, "--then: must be followed by -- CMD [ARGS...]"},
           {{"--wait", "--then", hook}, "--then: must be followed by -- CMD [ARGS...]"},
           {{"--then", "--wait", "--", hook}, "--then: must be followed by -- CMD [ARGS...]"},
           {{"--wait", "--then", "--"}, "--then: no command after --"},
           {{"--wait", "--", hook}, "\"--\" only comes after --then"},
           {{"--then=x", "--", hook}, "--then: takes no value"},
           {{"--then-sleep", "1s", "--then", "--", hook},
            "--then and --then-sleep: give one of them, not both"},
           {{"--then-sleep", "soon"}, "--then-sleep: "},
           {{"--then-sleep", "5"}, "--then-sleep: "},
           {{"--then-sleep"}, "--then-sleep: missing value"},
       }) {
    SCOPED_TRACE(::testing::PrintToString(c.args));
    Outcome run = Drain(c.args);
    EXPECT_EQ(run.status, 2);
    EXPECT_EQ(run.out, "");
    EXPECT_TRUE(Contains(run.err, "lameduck drain: " + c.message));
    EXPECT_EQ(run.err.find('\n'), run.err.size() - 1) << "one line: " << run.err;
  }
}

TEST(DrainCommandTest, ThenSleepSleepsAfterTheDrainAndExitsWithItsStatus) {
  FakeAdmin admin(Response("202 Accepted", R"({"status":"draining"})"));
  Clock::time_point start = Clock::now();
  Outcome run = Drain({"--admin", admin.address(), "--then-sleep", "200ms"});
  Clock::duration took = Clock::now() - start;
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, "{\"status\":\"draining\"}\n");
  EXPECT_GE(took, 200ms);
  EXPECT_LT(took, 10s);
}

TEST(DrainCommandTest, ThenSleepSleepsEvenWhenTheDrainFails) {
  RefusingPort port;
  Clock::time_point start = Clock::now();
  Outcome run = Drain({"--admin", port.address(), "--then-sleep=200ms"});
  EXPECT_EQ(run.status, 1);
  EXPECT_TRUE(Contains(run.err, "lameduck drain: cannot connect to " + port.address()));
  EXPECT_GE(Clock::now() - start, 200ms);
}

// `lameduck drain ARGS` as a child process, its stdout and stderr in one pipe (so in the order
// written) read to the end.
struct ChildRun {
  std::optional<int> status;
  std::vector<std::string> lines;
};

ChildRun RunLameduckDrain(const Args& args) {
  lameduck::testing::ChildProcess child;
  std::vector<std::string> argv = {lameduck::testing::LameduckBinary(), "drain"};
  argv.insert(argv.end(), args.begin(), args.end());
  if (!child.Start(argv, /*capture_stderr=*/true)) {
    ADD_FAILURE() << "cannot start " << argv[0];
    return {};
  }
  while (child.ReadLine(10s)) {
  }
  return {child.Wait(10s), child.output()};
}

TEST(DrainCommandTest, ThenRunsTheCommandAfterTheAnswerAndExitsWithItsStatus) {
  // The answer comes late, so a command started before it would print first.
  FakeAdmin admin(Response("200 OK", R"({"duration_ms":12})"), FakeAdmin::Transport::kTcp, 300ms);
  ChildRun run = RunLameduckDrain({"--admin", admin.address(), "--wait", "--then", "--", "/bin/sh",
                                   "-c", "echo hook ran; exit 7"});
  EXPECT_EQ(run.status, 7);
  EXPECT_EQ(run.lines, (std::vector<std::string>{R"({"duration_ms":12})", "hook ran"}));
  EXPECT_TRUE(admin.request().starts_with("POST /drain?wait=1 HTTP/1.1\r\n"));
}

TEST(DrainCommandTest, ThenRunsTheCommandEvenWhenTheDrainFails) {
  RefusingPort port;
  ChildRun run = RunLameduckDrain(
      {"--admin", port.address(), "--wait", "--then", "--", "/bin/sh", "-c", "echo hook ran"});
  EXPECT_EQ(run.status, 0) << "the command's status, not the drain's";
  ASSERT_EQ(run.lines.size(), 2u) << ::testing::PrintToString(run.lines);
  EXPECT_TRUE(Contains(run.lines[0], "lameduck drain: cannot connect to " + port.address()));
  EXPECT_EQ(run.lines[1], "hook ran");
}

TEST(DrainCommandTest, ThenPassesEverythingAfterTheDoubleDashToTheCommandVerbatim) {
  FakeAdmin admin(Response("202 Accepted", R"({"status":"draining"})"));
  ChildRun run = RunLameduckDrain({"--admin", admin.address(), "--then", "--", "/bin/sh", "-c",
                                   R"(printf '[%s]' "$@"; echo)", "sh", "--wait", "two words",
                                   "--help", "--", "--then-sleep", "1s", ""});
  EXPECT_EQ(run.status, 0);
  EXPECT_EQ(run.lines, (std::vector<std::string>{R"({"status":"draining"})",
                                                 "[--wait][two words][--help][--][--then-sleep]"
                                                 "[1s][]"}));
  // Without --wait of its own, the drain was only started: the command runs after the 202.
  EXPECT_TRUE(admin.request().starts_with("POST /drain HTTP/1.1\r\n"));
}

TEST(DrainCommandTest, ThenCommandThatCannotRunExits127WithOneLine) {
  FakeAdmin admin(Response("202 Accepted", R"({"status":"draining"})"));
  ChildRun run =
      RunLameduckDrain({"--admin", admin.address(), "--then", "--", "/nonexistent/hook", "x"});
  EXPECT_EQ(run.status, 127);
  EXPECT_EQ(run.lines, (std::vector<std::string>{
                           R"({"status":"draining"})",
                           R"(lameduck drain: --then: cannot run "/nonexistent/hook": No such )"
                           "file or directory"}));
}

}  // namespace
}  // namespace lameduck::coordinator
