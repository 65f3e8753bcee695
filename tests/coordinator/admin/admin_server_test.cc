// AdminServer in-process, over real loopback and unix sockets on the test's own loop: how it
// carries one request per connection (split across writes, pipelined, HEAD, too large, garbage),
// the /drain?wait=1 waiters (answered together, dropped when they reset, answered after a
// half-close), the unix socket's mode, and its connection cap. What each path answers is
// admin_api_test.cc's business; the eviction policy's own cases are admin_eviction_test.cc's.
//
// The clients run on the loop's thread: connecting and sending a few bytes complete in the
// kernel, and reads never block (RawClient polls), so a test is RunUntil over what the client
// has received, with no second thread and no sleep.
#include "coordinator/admin/admin_server.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/app/app_supervisor.h"
#include "tests/support/fake_drain_target.h"
#include "tests/support/http_message.h"
#include "tests/support/loop_runner.h"

namespace lameduck::coordinator {
namespace {

using namespace std::chrono_literals;
using lameduck::testing::HttpResponse;
using lameduck::testing::LoopRunner;
using lameduck::testing::MessageParser;
using nlohmann::json;

constexpr std::string_view kGetReady = "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n";
constexpr std::string_view kWaitForDrain = "GET /drain?wait=1 HTTP/1.1\r\nHost: x\r\n\r\n";

// One client connection, driven from the loop's thread. Sends block (a test sends a few KiB at
// most, which the kernel takes at once); reads never do: Poll() takes what has arrived.
class RawClient {
 public:
  static std::unique_ptr<RawClient> Tcp(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));  // each Send its own segment
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<uint16_t>(port));
    // Completes in the kernel (the listen backlog), without the server's loop turning.
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      ADD_FAILURE() << "connect to 127.0.0.1:" << port << ": " << std::strerror(errno);
    }
    return std::unique_ptr<RawClient>(new RawClient(fd));
  }
  static std::unique_ptr<RawClient> Unix(const std::string& path) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    path.copy(address.sun_path, sizeof(address.sun_path) - 1);
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      ADD_FAILURE() << "connect to " << path << ": " << std::strerror(errno);
    }
    return std::unique_ptr<RawClient>(new RawClient(fd));
  }
  ~RawClient() { Close(); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  void Send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ADD_FAILURE() << "send: " << std::strerror(errno);
        return;
      }
      bytes.remove_prefix(static_cast<size_t>(n));
    }
  }
  void ShutdownWrite() { shutdown(fd_, SHUT_WR); }
  void Reset() {  // the server reads ECONNRESET, not EOF
    linger lg{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    Close();
  }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  // Everything received so far.
  const std::string& received() {
    Poll();
    return received_;
  }
  // The server closed its side (EOF, or a reset after its answer).
  bool closed() {
    Poll();
    return closed_;
  }

 private:
  explicit RawClient(int fd) : fd_(fd) {}

  void Poll() {
    char buffer[4096];
    while (fd_ >= 0 && !closed_) {
      ssize_t n = recv(fd_, buffer, sizeof(buffer), MSG_DONTWAIT);
      if (n > 0) {
        received_.append(buffer, static_cast<size_t>(n));
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return;
      } else {
        closed_ = true;  // 0 (EOF) or an error such as ECONNRESET
      }
    }
  }

  int fd_;
  std::string received_;
  bool closed_ = false;
};

// The first response in `bytes`, and how many bytes it took.
struct Parsed {
  std::optional<HttpResponse> response;
  size_t consumed = 0;
};
Parsed ParseResponse(std::string_view bytes, bool head_request = false) {
  MessageParser parser(MessageParser::Kind::kResponse);
  parser.Reset(head_request);
  MessageParser::FeedResult result = parser.Feed(bytes);
  if (result.status != MessageParser::Status::kMessageComplete) return {};
  return {parser.response(), result.consumed};
}

class AdminServerTest : public ::testing::Test {
 protected:
  // As in lameduck's main: a write to a client that went away must be an EPIPE, not the end of
  // the test process.
  static void SetUpTestSuite() { signal(SIGPIPE, SIG_IGN); }

  AdminServerTest() : log_file_(open_memstream(&log_text_, &log_size_)) {
    config_.drain_delay = 0ms;
    // One connection the fake proxy never finishes: a drain ends when the test says so.
    target_.open.connections = 1;
    log_ = std::make_unique<EventLog>(log_file_, LogFormat::kJson, LogLevel::kDebug);
    app_ = std::make_unique<AppSupervisor>(loop_.loop(), config_, *log_);
    controller_ =
        std::make_unique<DrainController>(loop_.loop(), config_, target_, metrics_, *log_, *app_);
    controller_->OnUpstreamCheck(true);  // /ready answers 200
    api_ = std::make_unique<AdminApi>(config_, *controller_, target_, metrics_, *log_, 0);
    server_ = std::make_unique<AdminServer>(loop_.loop(), *api_, *controller_);
  }
  ~AdminServerTest() override {
    server_.reset();
    api_.reset();
    controller_.reset();
    app_.reset();
    log_.reset();
    std::fclose(log_file_);
    std::free(log_text_);
  }

  void SetUp() override {
    Result<void> listening = server_->ListenTcp(proxy::ParseAddress("127.0.0.1:0").value());
    ASSERT_TRUE(listening.ok()) << listening.error();
  }

  // Nothing may be left open: the LoopRunner's destructor then fails on a leaked handle.
  void TearDown() override {
    server_->Close();
    server_->CloseAll();
    EXPECT_TRUE(RunUntil([&] { return server_->empty(); }, "every admin connection closed"));
  }

  ::testing::AssertionResult RunUntil(const std::function<bool()>& done, std::string_view what) {
    return loop_.RunUntil(done, 5s, what);
  }

  std::unique_ptr<RawClient> Connect() { return RawClient::Tcp(server_->tcp_port()); }

  // Sends `request` on a fresh connection; everything the server sent until it closed.
  std::string Exchange(std::string_view request) {
    std::unique_ptr<RawClient> client = Connect();
    client->Send(request);
    EXPECT_TRUE(RunUntil([&] { return client->closed(); }, "the server to close"));
    return client->received();
  }

  // Drain requests the API has taken (the first starts the drain, the others join it): each
  // of them is waiting for the drain once its line is logged.
  size_t DrainRequestsTaken() {
    std::fflush(log_file_);
    std::string_view log(log_text_, log_size_);
    size_t count = 0;
    for (std::string_view event : {R"("event":"drain.start")", R"("event":"drain.join")"}) {
      for (size_t at = log.find(event); at != std::string_view::npos;
           at = log.find(event, at + 1)) {
        ++count;
      }
    }
    return count;
  }

  // The fake proxy's last connection goes: the drain completes and its waiters are answered.
  void FinishDrain() {
    target_.open.connections = 0;
    controller_->OnConnectionClosed();
  }

  LoopRunner loop_;  // first: outlives every handle below
  Config config_;
  testing::FakeDrainTarget target_;
  Metrics metrics_;
  char* log_text_ = nullptr;
  size_t log_size_ = 0;
  std::FILE* log_file_;
  std::unique_ptr<EventLog> log_;
  std::unique_ptr<AppSupervisor> app_;
  std::unique_ptr<DrainController> controller_;
  std::unique_ptr<AdminApi> api_;
  std::unique_ptr<AdminServer> server_;
};

TEST_F(AdminServerTest, AnswersGetReadyWith200AndCloses) {
  std::string bytes = Exchange(kGetReady);
  Parsed parsed = ParseResponse(bytes);
  ASSERT_TRUE(parsed.response) << bytes;
  EXPECT_EQ(parsed.response->status, 200);
  EXPECT_EQ(json::parse(parsed.response->body)["status"], "ready");
  EXPECT_EQ(parsed.response->Header("connection"), "close");
  EXPECT_EQ(parsed.response->Header("cache-control"), "no-store");
  EXPECT_EQ(parsed.consumed, bytes.size());
}

TEST_F(AdminServerTest, AnswersARequestThatArrivesOneByteAtATime) {
  std::unique_ptr<RawClient> client = Connect();
  for (size_t i = 0; i + 1 < kGetReady.size(); ++i) {
    client->Send(kGetReady.substr(i, 1));
    uv_run(loop_.loop(), UV_RUN_NOWAIT);  // the server reads this byte on its own
    ASSERT_EQ(client->received(), "") << "answered before the head was whole, at byte " << i;
  }
  client->Send(kGetReady.substr(kGetReady.size() - 1));
  ASSERT_TRUE(RunUntil([&] { return client->closed(); }, "the answer and the close"));
  Parsed parsed = ParseResponse(client->received());
  ASSERT_TRUE(parsed.response) << client->received();
  EXPECT_EQ(parsed.response->status, 200);
}

// One request per connection: the bytes after the first request are never read as a request.
TEST_F(AdminServerTest, AnswersOnlyTheFirstOfTwoPipelinedRequestsWithConnectionClose) {
  std::string bytes = Exchange(std::string(kGetReady) + "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
  Parsed parsed = ParseResponse(bytes);
  ASSERT_TRUE(parsed.response) << bytes;
  EXPECT_EQ(parsed.response->status, 200);
  EXPECT_EQ(parsed.response->Header("connection"), "close");
  EXPECT_EQ(parsed.consumed, bytes.size()) << "a second response followed: " << bytes;
}

TEST_F(AdminServerTest, AnswersHeadWithTheHeadersOfGetAndNoBody) {
  std::string bytes = Exchange("HEAD /ready HTTP/1.1\r\nHost: x\r\n\r\n");
  Parsed parsed = ParseResponse(bytes, /*head_request=*/true);
  ASSERT_TRUE(parsed.response) << bytes;
  EXPECT_EQ(parsed.response->status, 200);
  std::string get_body = json({{"status", "ready"}}).dump() + "\n";
  EXPECT_EQ(parsed.response->Header("content-length"), std::to_string(get_body.size()));
  EXPECT_EQ(parsed.consumed, bytes.size()) << "a body followed the head: " << bytes;
  EXPECT_TRUE(bytes.ends_with("\r\n\r\n"));
}

TEST_F(AdminServerTest, AnswersAHeadOverTheLimitWith431AndCloses) {
  std::string request =
      "GET /ready HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(AdminServer::kMaxHeadBytes, 'a') +
      "\r\n\r\n";
  std::string bytes = Exchange(request);
  Parsed parsed = ParseResponse(bytes);
  ASSERT_TRUE(parsed.response) << bytes;
  EXPECT_EQ(parsed.response->status, 431);
  EXPECT_EQ(json::parse(parsed.response->body)["error"], "request head too large");
}

TEST_F(AdminServerTest, AnswersAPostWithABodyToAGetOnlyPathWith405AndAllow) {
  std::string bytes = Exchange("POST /ready HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
  Parsed parsed = ParseResponse(bytes);
  ASSERT_TRUE(parsed.response) << bytes;
  EXPECT_EQ(parsed.response->status, 405);
  EXPECT_EQ(parsed.response->Header("allow"), "GET");
}

TEST_F(AdminServerTest, AnswersGarbageWith400AndCloses) {
  std::string bytes = Exchange("SSH-2.0-OpenSSH_9.2\r\n\r\n");
  Parsed parsed = ParseResponse(bytes);
  ASSERT_TRUE(parsed.response) << bytes;
  EXPECT_EQ(parsed.response->status, 400);
  EXPECT_EQ(json::parse(parsed.response->body)["error"], "malformed request");
  EXPECT_EQ(parsed.response->Header("connection"), "close");
}

// One HTTP/1 stack: the admin port refuses what the data plane refuses, with the same status.
TEST_F(AdminServerTest, AppliesTheDataPlanesRequestChecks) {
  struct Case {
    const char* request;
    int status;
  };
  for (const Case& c : {Case{"GET  /ready HTTP/1.1\r\nHost: x\r\n\r\n", 400},
                        Case{"GET /ready HTTP/1.1\r\n\r\n", 400},  // no Host (RFC 9112 3.2)
                        Case{"GET /ready HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400},
                        Case{"CONNECT x:1 HTTP/1.1\r\nHost: x\r\n\r\n", 405}}) {
    std::string bytes = Exchange(c.request);
    Parsed parsed = ParseResponse(bytes);
    ASSERT_TRUE(parsed.response) << c.request << " -> " << bytes;
    EXPECT_EQ(parsed.response->status, c.status) << c.request;
    EXPECT_EQ(parsed.response->Header("connection"), "close");
  }
}

TEST_F(AdminServerTest, AnswersAnUnknownPathWith404) {
  Parsed parsed = ParseResponse(Exchange("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(parsed.response);
  EXPECT_EQ(parsed.response->status, 404);
}

TEST_F(AdminServerTest, AnswersEveryDrainWaiterWithTheSummaryWhenTheDrainCompletes) {
  std::vector<std::unique_ptr<RawClient>> waiters;
  for (int i = 0; i < 3; ++i) {
    waiters.push_back(Connect());
    waiters.back()->Send(kWaitForDrain);
  }
  ASSERT_TRUE(RunUntil([&] { return DrainRequestsTaken() == 3; }, "three drain requests"));
  for (auto& waiter : waiters) EXPECT_EQ(waiter->received(), "") << "answered before the drain";
  FinishDrain();
  ASSERT_TRUE(RunUntil(
      [&] {
        for (auto& waiter : waiters) {
          if (!waiter->closed()) return false;
        }
        return true;
      },
      "every waiter answered"));
  for (auto& waiter : waiters) {
    Parsed parsed = ParseResponse(waiter->received());
    ASSERT_TRUE(parsed.response) << waiter->received();
    EXPECT_EQ(parsed.response->status, 200);
    json summary = json::parse(parsed.response->body);
    EXPECT_EQ(summary["trigger"], "admin_wait");
    EXPECT_EQ(summary["exit_status"], 0);
  }
}

// A waiter's close is an EOF like a half-close (TCP cannot tell them apart): its answer is
// written into the void at the end of the drain, and hurts no one.
TEST_F(AdminServerTest, AWaiterThatClosesDoesNotKeepTheOthersFromTheirSummary) {
  std::unique_ptr<RawClient> leaver = Connect();
  std::unique_ptr<RawClient> stayer = Connect();
  leaver->Send(kWaitForDrain);
  stayer->Send(kWaitForDrain);
  ASSERT_TRUE(RunUntil([&] { return DrainRequestsTaken() == 2; }, "both drain requests"));
  leaver->Close();
  FinishDrain();
  ASSERT_TRUE(RunUntil([&] { return stayer->closed(); }, "the staying waiter's answer"));
  Parsed parsed = ParseResponse(stayer->received());
  ASSERT_TRUE(parsed.response) << stayer->received();
  EXPECT_EQ(parsed.response->status, 200);
  EXPECT_TRUE(RunUntil([&] { return server_->empty(); }, "both connections closed"));
}

TEST_F(AdminServerTest, AWaiterThatResetsIsClosedWithoutWaitingForTheDrain) {
  std::unique_ptr<RawClient> waiter = Connect();
  waiter->Send(kWaitForDrain);
  ASSERT_TRUE(RunUntil([&] { return DrainRequestsTaken() == 1; }, "the drain request"));
  waiter->Reset();
  EXPECT_TRUE(RunUntil([&] { return server_->empty(); }, "the reset waiter's connection closed"));
  EXPECT_EQ(controller_->state(), State::kDraining);
}

// RFC 9112 9.6: a client that half-closes after a complete request still gets its response.
TEST_F(AdminServerTest, AWaiterThatHalfClosesAfterItsRequestStillGetsTheSummary) {
  std::unique_ptr<RawClient> waiter = Connect();
  waiter->Send(kWaitForDrain);
  waiter->ShutdownWrite();
  ASSERT_TRUE(RunUntil([&] { return DrainRequestsTaken() == 1; }, "the drain request"));
  loop_.RunFor(50ms);  // the server reads the EOF meanwhile
  ASSERT_FALSE(waiter->closed()) << "closed on the client's half-close, unanswered";
  FinishDrain();
  ASSERT_TRUE(RunUntil([&] { return waiter->closed(); }, "the answer and the close"));
  Parsed parsed = ParseResponse(waiter->received());
  ASSERT_TRUE(parsed.response) << waiter->received();
  EXPECT_EQ(parsed.response->status, 200);
  EXPECT_EQ(json::parse(parsed.response->body)["trigger"], "admin_wait");
}

TEST_F(AdminServerTest, AnswersAGetThatHalfClosesAfterItsRequest) {
  std::unique_ptr<RawClient> client = Connect();
  client->Send(kGetReady);
  client->ShutdownWrite();
  ASSERT_TRUE(RunUntil([&] { return client->closed(); }, "the answer and the close"));
  Parsed parsed = ParseResponse(client->received());
  ASSERT_TRUE(parsed.response) << client->received();
  EXPECT_EQ(parsed.response->status, 200);
}

// Made by a temporary directory of its own, removed with it.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern = "/tmp/admin_server_test.XXXXXX";
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~ScratchDir() {
    if (!path_.empty()) rmdir(path_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST_F(AdminServerTest, CreatesTheUnixSocketWithMode0600) {
  ScratchDir dir;
  ASSERT_FALSE(dir.path().empty());
  std::string path = dir.path() + "/admin.sock";
  Result<void> listening = server_->ListenUnix(path);
  ASSERT_TRUE(listening.ok()) << listening.error();
  struct stat info {};
  ASSERT_EQ(stat(path.c_str(), &info), 0);
  EXPECT_TRUE(S_ISSOCK(info.st_mode));
  EXPECT_EQ(info.st_mode & 0777, 0600);
  server_->Close();  // removes the socket file, so the directory can go
}

// --admin-socket naming a file that is not a socket fails to bind; the file must survive it
// (closing the listener removes only a socket file this server created).
TEST_F(AdminServerTest, AFailedUnixListenLeavesAFileThatIsNotASocketAlone) {
  ScratchDir dir;
  ASSERT_FALSE(dir.path().empty());
  std::string path = dir.path() + "/precious.conf";
  {
    std::ofstream file(path);
    file << "precious\n";
  }
  Result<void> listening = server_->ListenUnix(path);
  ASSERT_FALSE(listening.ok());
  EXPECT_NE(listening.error().find("cannot bind"), std::string::npos) << listening.error();
  server_->Close();
  struct stat info {};
  EXPECT_EQ(stat(path.c_str(), &info), 0) << "the file was deleted";
  EXPECT_TRUE(S_ISREG(info.st_mode));
  unlink(path.c_str());
}

TEST_F(AdminServerTest, AnswersOverTheUnixSocket) {
  ScratchDir dir;
  ASSERT_FALSE(dir.path().empty());
  std::string path = dir.path() + "/admin.sock";
  ASSERT_TRUE(server_->ListenUnix(path).ok());
  std::unique_ptr<RawClient> client = RawClient::Unix(path);
  client->Send(kGetReady);
  ASSERT_TRUE(RunUntil([&] { return client->closed(); }, "the answer and the close"));
  Parsed parsed = ParseResponse(client->received());
  ASSERT_TRUE(parsed.response) << client->received();
  EXPECT_EQ(parsed.response->status, 200);
  server_->Close();
}

// Over the cap, the oldest connection that has sent nothing for the silent grace goes first:
// before an older slowloris connection, and never the probe that pushed the count over.
TEST_F(AdminServerTest, OverTheCapClosesTheOldestSilentConnectionAndAnswersTheProbe) {
  std::unique_ptr<RawClient> slowloris = Connect();
  slowloris->Send("GET /ready HTTP/1.1\r\n");
  std::vector<std::unique_ptr<RawClient>> silent;
  for (size_t i = 1; i < AdminServer::kMaxConnections; ++i) {
    silent.push_back(Connect());
    uv_run(loop_.loop(), UV_RUN_NOWAIT);  // accepted now: its silence counts from here
  }
  uv_run(loop_.loop(), UV_RUN_NOWAIT);
  // The state the policy looks at: every silent connection silent for the whole grace.
  uint64_t accepted_by_ms = uv_now(loop_.loop());
  ASSERT_TRUE(
      RunUntil([&] { return uv_now(loop_.loop()) >= accepted_by_ms + AdminServer::kSilentGraceMs; },
               "the silent grace to pass"));
  std::unique_ptr<RawClient> probe = Connect();
  probe->Send(kGetReady);
  ASSERT_TRUE(RunUntil([&] { return probe->closed(); }, "the probe's answer"));
  Parsed parsed = ParseResponse(probe->received());
  ASSERT_TRUE(parsed.response) << probe->received();
  EXPECT_EQ(parsed.response->status, 200);
  EXPECT_TRUE(RunUntil([&] { return silent.front()->closed(); }, "the oldest silent one closed"));
  EXPECT_FALSE(slowloris->closed());
  for (size_t i = 1; i < silent.size(); ++i) EXPECT_FALSE(silent[i]->closed()) << i;
}

}  // namespace
}  // namespace lameduck::coordinator
