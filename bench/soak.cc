// bench/soak.cc: the `soak` command: lameduck in front of sample_app under mixed load for a long
// time, with its RSS and open file descriptors sampled every second; a flat line is the pass.
//
// It starts sample_app and lameduck on free loopback ports, measures lameduck's fd baseline, then
// runs one thread per client for the duration: keep-alive GETs (some left idle past
// --idle-timeout), connection churn (Connection: close), uploads (Content-Length and chunked),
// slow requests, downloads, client aborts (mid-body, while waiting, mid-download) and stalled
// request heads (408). Every minute (halfway, for runs under two minutes) sample_app is killed,
// alternately with SIGKILL and SIGTERM (it dies at once on either), and started again on the same
// port. After the load, the clients close and the fd count must return to the baseline; then
// lameduck gets SIGTERM and must exit 0 (under ASan, also free of leak reports).
//
// Every request is checked (status and body) and ends ok or failed, with its start and end time.
// A failure is expected only if it is a 502, a reset or a connection cut short, and the request
// overlapped a restart window: from the kill until the new app accepts, plus a grace period.
// Any other failure is a real one. Samples go to soak.csv, the plot to soak.svg, the summary to
// stdout and summary.txt, the children's output to lameduck.log and app.log, all in --out.
//
// Not a benchmark: clients are paced to stay well under saturation on a 2-CPU machine, also under
// ASan. Not a general client: 127.0.0.1 only, no pipelining, no TLS. It uses neither proxy/ nor
// coordinator/: it sees lameduck as a process, from the outside.

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

// lameduck's timeouts: short, so that the idle and stalled-head clients exercise them often.
constexpr milliseconds kHeaderTimeout{2000};
constexpr milliseconds kIdleTimeout{3000};
constexpr milliseconds kRequestTimeout{30000};  // per request, connecting included
constexpr milliseconds kRestartGap{300};        // the app is down at least this long
// After the new app accepts, failures still count as restart errors for this long: a request
// that got its 502 during the gap may take a moment to come back, more so under ASan.
constexpr milliseconds kRestartGrace{3000};
constexpr seconds kRestartEvery{60};
constexpr seconds kBaselineSamples{3};
constexpr seconds kFdSettleLimit{15};  // after the last client closed: lingering close is <= 5 s
constexpr size_t kReadBytes = 64 * 1024;
constexpr size_t kUploadMaxBytes = 1024 * 1024;
// RSS may grow by this much from the first to the last third after warm-up (see Verdict()).
constexpr int64_t kRssSlackMinKib = 1024;
constexpr double kRssSlackFraction = 0.10;

std::atomic<bool> g_interrupted{false};

// ---------------------------------------------------------------------------------------------
// Outcomes and their tally.

enum class Kind { kKeepAlive, kIdle, kChurn, kUpload, kSlow, kDownload, kAbort, kStall };
constexpr int kKinds = 8;

const char* ToString(Kind kind) {
  switch (kind) {
    case Kind::kKeepAlive:
      return "keepalive";
    case Kind::kIdle:
      return "idle";
    case Kind::kChurn:
      return "churn";
    case Kind::kUpload:
      return "upload";
    case Kind::kSlow:
      return "slow";
    case Kind::kDownload:
      return "download";
    case Kind::kAbort:
      return "abort";
    case Kind::kStall:
      return "stall";
  }
  return "?";
}

enum class Outcome {
  kOk,
  kRefused,     // connect refused (lameduck never stops listening: always a real failure)
  kReset,       // ECONNRESET or EPIPE
  kEof,         // closed before the response was complete
  kTimeout,     // no complete response within kRequestTimeout
  kBadGateway,  // 502
  kBadStatus,   // another status than the one expected
  kWrongBody,   // the expected status with a wrong body
  kOther,       // malformed response, another socket error
};
constexpr int kOutcomes = 9;

const char* ToString(Outcome outcome) {
  switch (outcome) {
    case Outcome::kOk:
      return "ok";
    case Outcome::kRefused:
      return "refused";
    case Outcome::kReset:
      return "reset";
    case Outcome::kEof:
      return "eof";
    case Outcome::kTimeout:
      return "timeout";
    case Outcome::kBadGateway:
      return "502";
    case Outcome::kBadStatus:
      return "bad-status";
    case Outcome::kWrongBody:
      return "wrong-body";
    case Outcome::kOther:
      return "other";
  }
  return "?";
}

// What an upstream restart can do to a request in flight or begun during the gap.
bool RestartCanCause(Outcome outcome) {
  return outcome == Outcome::kBadGateway || outcome == Outcome::kReset || outcome == Outcome::kEof;
}

struct Failure {
  Kind kind;
  Outcome outcome;
  Clock::time_point start;
  Clock::time_point end;
  std::string detail;  // the status or body that was wrong, for the summary
};

class Tally {
 public:
  void Record(Kind kind, Outcome outcome, Clock::time_point start, std::string detail = {}) {
    if (outcome == Outcome::kOk) {
      ok_[static_cast<int>(kind)].fetch_add(1, std::memory_order_relaxed);
      done_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    failed_.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard lock(mutex_);
    failures_.push_back({kind, outcome, start, Clock::now(), std::move(detail)});
  }
  uint64_t done() const { return done_.load(std::memory_order_relaxed); }
  uint64_t failed() const { return failed_.load(std::memory_order_relaxed); }
  uint64_t ok(Kind kind) const { return ok_[static_cast<int>(kind)].load(); }
  std::vector<Failure> failures() const {
    std::lock_guard lock(mutex_);
    return failures_;
  }

 private:
  std::array<std::atomic<uint64_t>, kKinds> ok_{};
  std::atomic<uint64_t> done_{0};
  std::atomic<uint64_t> failed_{0};
  mutable std::mutex mutex_;
  std::vector<Failure> failures_;
};

// ---------------------------------------------------------------------------------------------
// A blocking-style HTTP/1.1 client on a non-blocking socket: every wait is a poll() with a
// deadline, so nothing hangs past kRequestTimeout.

Outcome OutcomeForErrno(int error) {
  switch (error) {
    case ECONNREFUSED:
      return Outcome::kRefused;
    case ECONNRESET:
    case EPIPE:
      return Outcome::kReset;
    case ETIMEDOUT:
      return Outcome::kTimeout;
    default:
      return Outcome::kOther;
  }
}

int PollTimeoutMs(Clock::time_point deadline) {
  auto left = deadline - Clock::now();
  if (left <= Clock::duration::zero()) return 0;
  return static_cast<int>(std::chrono::ceil<milliseconds>(left).count());
}

enum class CloseMode { kGraceful, kReset };  // kReset: SO_LINGER 0, the peer gets an RST

class Client {
 public:
  Client() {
    llhttp_settings_init(&settings_);
    settings_.on_headers_complete = &Client::OnHeadersComplete;
    settings_.on_body = &Client::OnBody;
    settings_.on_message_complete = &Client::OnMessageComplete;
  }
  ~Client() { Close(CloseMode::kGraceful); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool open() const { return fd_ >= 0; }
  bool reused() const { return exchanges_ > 1; }  // the current exchange is not the first
  int status() const { return status_; }
  const std::string& body() const { return body_; }  // its first kKeptBodyBytes
  uint64_t body_bytes() const { return body_bytes_; }
  bool complete() const { return complete_; }
  bool response_started() const { return response_started_; }
  bool keep_alive() const { return keep_alive_; }

  Outcome Connect(int port, Clock::time_point deadline) {
    Close(CloseMode::kGraceful);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return Outcome::kOther;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int error = 0;
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      error = errno;
      if (error == EINPROGRESS) {
        error = 0;
        int ready = Wait(fd, POLLOUT, deadline);
        socklen_t length = sizeof(error);
        if (ready == 0) {
          error = ETIMEDOUT;
        } else if (ready < 0) {
          error = errno;
        } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) {
          error = errno;
        }
      }
    }
    if (error != 0) {
      close(fd);
      return OutcomeForErrno(error);
    }
    fd_ = fd;
    exchanges_ = 0;
    return Outcome::kOk;
  }

  // Whether an idle connection can take a request: not if the server closed it (or sent
  // something) meanwhile. Clients check this before reusing a connection, as Go's does.
  bool StillUsable() const {
    pollfd pfd{fd_, POLLIN, 0};
    return open() && poll(&pfd, 1, 0) == 0;
  }

  // Starts a new exchange on this connection: a fresh response parser (no pipelining).
  void BeginExchange() {
    ++exchanges_;
    llhttp_init(&parser_, HTTP_RESPONSE, &settings_);
    parser_.data = this;
    status_ = 0;
    body_.clear();
    body_bytes_ = 0;
    complete_ = false;
    response_started_ = false;
    keep_alive_ = false;
  }

  // Sends all of `data`, unless a complete response arrives first (then kOk with complete()).
  Outcome Send(std::string_view data, Clock::time_point deadline) {
    while (!data.empty()) {
      int ready = Wait(fd_, POLLOUT | POLLIN, deadline, &revents_);
      if (ready == 0) return Outcome::kTimeout;
      if (ready < 0) return OutcomeForErrno(errno);
      if (revents_ & POLLIN) {
        // An early answer (an error, say): read it; the rest of the request is moot.
        std::optional<Outcome> read = ReadOnce();
        if (read) return *read;
        if (complete_) return Outcome::kOk;
        continue;
      }
      ssize_t n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n >= 0) {
        data.remove_prefix(static_cast<size_t>(n));
      } else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
        return OutcomeForErrno(errno);
      }
    }
    return Outcome::kOk;
  }

  // Reads until the response is complete, or until `enough_body_bytes` of its body arrived.
  Outcome Read(Clock::time_point deadline, uint64_t enough_body_bytes = UINT64_MAX) {
    while (!complete_ && body_bytes_ < enough_body_bytes) {
      int ready = Wait(fd_, POLLIN, deadline, &revents_);
      if (ready == 0) return Outcome::kTimeout;
      if (ready < 0) return OutcomeForErrno(errno);
      if (std::optional<Outcome> read = ReadOnce()) return *read;
    }
    return Outcome::kOk;
  }

  // Waits until `until` for nothing to arrive: kOk if nothing did, otherwise what did.
  Outcome ExpectSilence(Clock::time_point until) {
    while (true) {
      int ready = Wait(fd_, POLLIN, until, &revents_);
      if (ready == 0) return Outcome::kOk;
      if (ready < 0) return OutcomeForErrno(errno);
      if (std::optional<Outcome> read = ReadOnce()) return *read;
      if (complete_) return status_ == 502 ? Outcome::kBadGateway : Outcome::kBadStatus;
    }
  }

  void Close(CloseMode mode) {
    if (fd_ < 0) return;
    if (mode == CloseMode::kReset) {
      linger option{1, 0};
      setsockopt(fd_, SOL_SOCKET, SO_LINGER, &option, sizeof(option));
    }
    close(fd_);
    fd_ = -1;
  }

 private:
  static constexpr size_t kKeptBodyBytes = 64;

  // 1 ready, 0 deadline, -1 error (errno set).
  static int Wait(int fd, short events, Clock::time_point deadline, short* revents = nullptr) {
    while (true) {
      pollfd pfd{fd, events, 0};
      int rc = poll(&pfd, 1, PollTimeoutMs(deadline));
      if (rc > 0) {
        if (revents != nullptr) *revents = pfd.revents;
        return 1;
      }
      if (rc == 0) {
        if (Clock::now() >= deadline) return 0;
        continue;  // poll's millisecond rounding woke us a little early
      }
      if (errno != EINTR) return -1;
    }
  }

  // One recv, parsed. nullopt to go on; an outcome when the exchange ended with a failure.
  std::optional<Outcome> ReadOnce() {
    char buffer[kReadBytes];
    ssize_t n = recv(fd_, buffer, sizeof(buffer), 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) return std::nullopt;
      return OutcomeForErrno(errno);
    }
    if (n == 0) {
      // EOF ends a body without Content-Length (RFC 9112 6.3); anything else is cut short.
      if (!complete_ && response_started_ && llhttp_finish(&parser_) == HPE_OK && complete_) {
        return std::nullopt;
      }
      if (complete_) return std::nullopt;
      return Outcome::kEof;
    }
    response_started_ = true;
    if (complete_) return Outcome::kOther;  // bytes after the response: none were asked for
    llhttp_errno_t err = llhttp_execute(&parser_, buffer, static_cast<size_t>(n));
    if (err == HPE_OK || (err == HPE_PAUSED && complete_)) return std::nullopt;
    return Outcome::kOther;
  }

  static int OnHeadersComplete(llhttp_t* parser) {
    static_cast<Client*>(parser->data)->status_ = llhttp_get_status_code(parser);
    return 0;
  }
  static int OnBody(llhttp_t* parser, const char* at, size_t length) {
    auto* self = static_cast<Client*>(parser->data);
    self->body_bytes_ += length;
    if (self->body_.size() < kKeptBodyBytes) {
      self->body_.append(at, std::min(length, kKeptBodyBytes - self->body_.size()));
    }
    return 0;
  }
  static int OnMessageComplete(llhttp_t* parser) {
    auto* self = static_cast<Client*>(parser->data);
    self->complete_ = true;
    self->keep_alive_ = llhttp_should_keep_alive(parser) != 0;
    return HPE_PAUSED;
  }

  int fd_ = -1;
  int exchanges_ = 0;
  short revents_ = 0;
  llhttp_settings_t settings_;
  llhttp_t parser_;
  int status_ = 0;
  std::string body_;
  uint64_t body_bytes_ = 0;
  bool complete_ = false;
  bool response_started_ = false;
  bool keep_alive_ = false;
};

// ---------------------------------------------------------------------------------------------
// The clients: one thread each, pacing themselves, until told to stop. A client finishes the
// request it has begun before it stops.

std::string g_upload_block(kUploadMaxBytes, 'u');

class Soak;

struct Request {
  std::string head{};                // up to and including the blank line
  std::string_view body{};           // sent after the head (Content-Length)
  bool chunked = false;              // body sent as 64 KiB chunks instead
  int expected_status = 200;         //
  std::string expected_prefix{};     // the response body must start with this
  int64_t expected_bytes = -1;       // or have exactly this many bytes
  bool retry_if_unanswered = false;  // idempotent: retried once if a reused connection fails
};

std::string Get(std::string_view target, bool close = false) {
  std::string head = "GET ";
  head += target;
  head += " HTTP/1.1\r\nHost: soak\r\n";
  if (close) head += "Connection: close\r\n";
  head += "\r\n";
  return head;
}

Outcome Check(const Client& client, const Request& request, std::string* detail) {
  if (client.status() != request.expected_status) {
    *detail = "status " + std::to_string(client.status());
    return client.status() == 502 ? Outcome::kBadGateway : Outcome::kBadStatus;
  }
  bool ok = request.expected_bytes >= 0
                ? client.body_bytes() == static_cast<uint64_t>(request.expected_bytes)
                : client.body().starts_with(request.expected_prefix);
  if (ok) return Outcome::kOk;
  *detail = "body of " + std::to_string(client.body_bytes()) + " bytes: " + client.body();
  return Outcome::kWrongBody;
}

// Sends `request` on `client` (connecting if needed) and reads and checks the response.
Outcome Exchange(Client& client, int port, const Request& request, std::string* detail) {
  for (int attempt = 0;; ++attempt) {
    auto deadline = Clock::now() + kRequestTimeout;
    if (!client.StillUsable()) {
      if (Outcome connected = client.Connect(port, deadline); connected != Outcome::kOk) {
        return connected;
      }
    }
    client.BeginExchange();
    Outcome outcome = client.Send(request.head, deadline);
    if (outcome == Outcome::kOk && !client.complete()) {
      if (request.chunked) {
        char size_line[32];
        for (std::string_view left = request.body; outcome == Outcome::kOk && !client.complete();) {
          if (left.empty()) {
            outcome = client.Send("0\r\n\r\n", deadline);
            break;
          }
          std::string_view chunk = left.substr(0, 64 * 1024);
          left.remove_prefix(chunk.size());
          int length = std::snprintf(size_line, sizeof(size_line), "%zx\r\n", chunk.size());
          outcome = client.Send(std::string_view(size_line, static_cast<size_t>(length)), deadline);
          if (outcome == Outcome::kOk && !client.complete()) outcome = client.Send(chunk, deadline);
          if (outcome == Outcome::kOk && !client.complete())
            outcome = client.Send("\r\n", deadline);
        }
      } else if (!request.body.empty()) {
        outcome = client.Send(request.body, deadline);
      }
    }
    if (outcome == Outcome::kOk) outcome = client.Read(deadline);
    if (outcome != Outcome::kOk) {
      bool unanswered =
          !client.response_started() && (outcome == Outcome::kReset || outcome == Outcome::kEof);
      bool retry = attempt == 0 && request.retry_if_unanswered && client.reused() && unanswered;
      client.Close(CloseMode::kGraceful);
      if (retry) continue;  // RFC 9112 9.3.1: as browsers and Go's client do
      return outcome;
    }
    if (!client.keep_alive()) client.Close(CloseMode::kGraceful);
    return Check(client, request, detail);
  }
}

class Worker {
 public:
  Worker(Kind kind, int index, int port, Tally& tally, const std::atomic<bool>& stop)
      : kind_(kind), port_(port), tally_(tally), stop_(stop), random_(1000 + index) {}

  void Run() {
    while (!stop_.load() && !g_interrupted.load()) {
      milliseconds pause = RunOnce();
      Sleep(pause);
    }
    client_.Close(CloseMode::kGraceful);
  }

 private:
  int Uniform(int min, int max) { return std::uniform_int_distribution<int>(min, max)(random_); }

  void Sleep(milliseconds duration) {
    auto until = Clock::now() + duration;
    while (Clock::now() < until && !stop_.load() && !g_interrupted.load()) {
      std::this_thread::sleep_for(
          std::min<Clock::duration>(until - Clock::now(), milliseconds(50)));
    }
  }

  void Do(const Request& request) {
    auto start = Clock::now();
    std::string detail;
    Outcome outcome = Exchange(client_, port_, request, &detail);
    tally_.Record(kind_, outcome, start, std::move(detail));
  }

  // One request of this worker's kind; returns the pause before the next.
  milliseconds RunOnce() {
    switch (kind_) {
      case Kind::kKeepAlive: {
        bool small = Uniform(0, 9) != 0;
        int n = small ? 0 : Uniform(1, 256 * 1024);
        Request request{.head = Get(small ? "/" : "/bytes?n=" + std::to_string(n)),
                        .retry_if_unanswered = true};
        if (small) request.expected_prefix = "hello\n";
        if (!small) request.expected_bytes = n;
        Do(request);
        return milliseconds(Uniform(5, 25));
      }
      case Kind::kIdle: {
        // Idle past --idle-timeout half the time: lameduck closes the connection, and the next
        // request goes on a new one (or, in the race, is retried once).
        Do({.head = Get("/"), .expected_prefix = "hello\n", .retry_if_unanswered = true});
        return Uniform(0, 1) == 0 ? kIdleTimeout + milliseconds(Uniform(100, 1000))
                                  : milliseconds(Uniform(100, 1000));
      }
      case Kind::kChurn: {
        Do({.head = Get("/", /*close=*/true), .expected_prefix = "hello\n"});
        client_.Close(Uniform(0, 9) == 0 ? CloseMode::kReset : CloseMode::kGraceful);
        return milliseconds(Uniform(10, 40));
      }
      case Kind::kUpload: {
        size_t size = static_cast<size_t>(Uniform(64 * 1024, kUploadMaxBytes));
        bool chunked = Uniform(0, 1) == 0;
        std::string head = "POST /upload HTTP/1.1\r\nHost: soak\r\n";
        head += chunked ? "Transfer-Encoding: chunked\r\n"
                        : "Content-Length: " + std::to_string(size) + "\r\n";
        head += "\r\n";
        Do({.head = std::move(head),
            .body = std::string_view(g_upload_block).substr(0, size),
            .chunked = chunked,
            .expected_prefix = std::to_string(size) + "\n"});
        return milliseconds(Uniform(50, 250));
      }
      case Kind::kSlow: {
        int ms = Uniform(100, 2000);
        Do({.head = Get("/slow?ms=" + std::to_string(ms)),
            .expected_prefix = "waited " + std::to_string(ms) + " ms\n",
            .retry_if_unanswered = true});
        return milliseconds(Uniform(0, 100));
      }
      case Kind::kDownload: {
        int n = Uniform(64 * 1024, 4 * 1024 * 1024);
        Do({.head = Get("/bytes?n=" + std::to_string(n)),
            .expected_bytes = n,
            .retry_if_unanswered = true});
        return milliseconds(Uniform(50, 250));
      }
      case Kind::kAbort:
        Abort();
        return milliseconds(Uniform(50, 200));
      case Kind::kStall:
        Stall();
        return milliseconds(Uniform(200, 1000));
    }
    return milliseconds(100);
  }

  // A client that goes away mid-exchange, on a new connection each time, in turns: in the middle
  // of an upload, while waiting for a slow answer, in the middle of a download; half of them
  // with a reset instead of a FIN. Ok when the exchange got as far as planned before the abort.
  void Abort() {
    auto start = Clock::now();
    auto deadline = start + kRequestTimeout;
    int mode = aborts_++ % 3;
    CloseMode close_mode = (aborts_ / 3) % 2 == 0 ? CloseMode::kGraceful : CloseMode::kReset;
    Outcome outcome = client_.Connect(port_, deadline);
    std::string detail;
    if (outcome == Outcome::kOk) {
      client_.BeginExchange();
      if (mode == 0) {
        size_t sent = static_cast<size_t>(Uniform(1, 256 * 1024));
        std::string head = "POST /upload HTTP/1.1\r\nHost: soak\r\nContent-Length: " +
                           std::to_string(kUploadMaxBytes) + "\r\n\r\n";
        outcome = client_.Send(head, deadline);
        if (outcome == Outcome::kOk && !client_.complete()) {
          outcome = client_.Send(std::string_view(g_upload_block).substr(0, sent), deadline);
        }
        if (outcome == Outcome::kOk && client_.complete()) {  // answered before the body ended
          outcome = Check(client_, {.expected_status = 0}, &detail);
        }
      } else if (mode == 1) {
        outcome = client_.Send(Get("/slow?ms=1000"), deadline);
        if (outcome == Outcome::kOk) {
          outcome = client_.ExpectSilence(Clock::now() + milliseconds(Uniform(10, 300)));
        }
      } else {
        outcome = client_.Send(Get("/bytes?n=" + std::to_string(16 << 20)), deadline);
        if (outcome == Outcome::kOk) outcome = client_.Read(deadline, Uniform(1, 512 * 1024));
        if (outcome == Outcome::kOk && client_.status() != 200) {
          outcome = client_.status() == 502 ? Outcome::kBadGateway : Outcome::kBadStatus;
          detail = "status " + std::to_string(client_.status());
        }
      }
    }
    client_.Close(close_mode);
    tally_.Record(Kind::kAbort, outcome, start, std::move(detail));
  }

  // A request head that never ends: lameduck must answer 408 after --header-timeout.
  void Stall() {
    auto start = Clock::now();
    auto deadline = start + kRequestTimeout;
    Outcome outcome = client_.Connect(port_, deadline);
    std::string detail;
    if (outcome == Outcome::kOk) {
      client_.BeginExchange();
      outcome = client_.Send("GET /stalled HTTP/1.1\r\nHost: soak\r\nX-Wait: ", deadline);
      if (outcome == Outcome::kOk) outcome = client_.Read(deadline);
      if (outcome == Outcome::kOk) outcome = Check(client_, {.expected_status = 408}, &detail);
      auto took = Clock::now() - start;
      if (outcome == Outcome::kOk && (took < kHeaderTimeout - milliseconds(100))) {
        outcome = Outcome::kBadStatus;
        detail = "408 too early";
      }
    }
    client_.Close(CloseMode::kGraceful);
    tally_.Record(Kind::kStall, outcome, start, std::move(detail));
  }

  const Kind kind_;
  const int port_;
  Tally& tally_;
  const std::atomic<bool>& stop_;
  std::mt19937 random_;
  Client client_;
  int aborts_ = 0;
};

// How many clients of each kind. Paced, about 400 requests a second in all on a fast machine,
// so that the soak stays far from saturation on 2 CPUs even under ASan.
constexpr std::array<std::pair<Kind, int>, kKinds> kMix = {{
    {Kind::kKeepAlive, 4},
    {Kind::kIdle, 4},
    {Kind::kChurn, 2},
    {Kind::kUpload, 2},
    {Kind::kSlow, 4},
    {Kind::kDownload, 1},
    {Kind::kAbort, 2},
    {Kind::kStall, 1},
}};

// ---------------------------------------------------------------------------------------------
// Processes and /proc.

// A port nothing listens on, below the kernel's ephemeral range (32768 and up), so that the app
// can be started again on it without colliding with the local end of a client's connection.
int PickPort(std::vector<int>& taken, std::mt19937& random) {
  for (int i = 0; i < 1000; ++i) {
    int port = std::uniform_int_distribution<int>(20000, 31999)(random);
    if (std::find(taken.begin(), taken.end(), port) != taken.end()) continue;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));  // as libuv binds
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool free = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    close(fd);
    if (free) {
      taken.push_back(port);
      return port;
    }
  }
  return 0;
}

bool Accepts(int port) {
  Client client;
  return client.Connect(port, Clock::now() + milliseconds(500)) == Outcome::kOk;
}

// The environment for lameduck and the app: ours, with ASan's quarantine of freed memory cut
// from 256 MiB to 2 MiB. Filling the default one takes minutes at this load and would look like
// a leak on the RSS curve; a small one is full within the warm-up. (Ignored by binaries built
// without ASan; use-after-free is still caught, only within a shorter window.)
std::vector<std::string> ChildEnvironment() {
  std::vector<std::string> env;
  std::string asan_options;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    std::string_view text = *entry;
    if (text.starts_with("ASAN_OPTIONS=")) {
      asan_options = std::string(text.substr(13)) + ":";
    } else {
      env.emplace_back(text);
    }
  }
  env.push_back("ASAN_OPTIONS=" + asan_options + "quarantine_size_mb=2");
  return env;
}

// Starts `argv` with stdout and stderr appended to `log`. It dies with the calling thread
// (PR_SET_PDEATHSIG), so nothing outlives a soak that crashed.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& log) {
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env = ChildEnvironment();
  std::vector<char*> envp;
  for (std::string& entry : env) envp.push_back(entry.data());
  envp.push_back(nullptr);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid != 0) return pid;
  // The child: only async-signal-safe calls from here on.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127);
  int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd >= 0) {
    dup2(fd, 1);
    dup2(fd, 2);
  }
  execve(args[0], args.data(), envp.data());
  _exit(127);
}

// Until `port` accepts, or false if `pid` exited first or `limit` passed.
bool WaitForPort(pid_t pid, int port, milliseconds limit, int* exit_status) {
  auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (waitpid(pid, exit_status, WNOHANG) == pid) return false;
    if (Accepts(port)) return true;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return false;
}

int64_t RssKib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("VmRSS:")) return std::strtoll(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

int OpenFds(pid_t pid) {
  DIR* dir = opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (dir == nullptr) return -1;
  int count = 0;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count;
}

std::string DescribeStatus(int status) {
  if (WIFEXITED(status)) return "exited " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by ") + strsignal(WTERMSIG(status));
  return "status " + std::to_string(status);
}

// ---------------------------------------------------------------------------------------------
// The soak itself.

struct Options {
  int seconds = 1800;
  std::string lameduck;
  std::string sample_app;
  std::string out = ".";
  bool quiet = false;
};

enum class Phase { kBaseline, kLoad, kCooldown };

const char* ToString(Phase phase) {
  switch (phase) {
    case Phase::kBaseline:
      return "baseline";
    case Phase::kLoad:
      return "load";
    case Phase::kCooldown:
      return "cooldown";
  }
  return "?";
}

struct Sample {
  double t_s;  // from the start of the load
  Phase phase;
  int64_t rss_kib;
  int fds;
  uint64_t requests;  // completed ok in this second
  uint64_t failures;  // failed in this second, expected or not
};

struct Restart {
  Clock::time_point kill;
  Clock::time_point ready;  // the new app accepts; time_point::max() if it never did
  int signal;
};

std::string Mib(int64_t kib) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f", static_cast<double>(kib) / 1024.0);
  return text;
}

class Soak {
 public:
  explicit Soak(Options options) : options_(std::move(options)), random_(std::random_device()()) {}

  int Run();

 private:
  bool StartApp();
  void RestartLoop();
  void TakeSample(Phase phase);
  void WriteSvg(const std::string& path, double warmup_end_s, double load_end_s) const;
  void Log(const char* format, auto... args) {
    if (options_.quiet) return;
    std::fprintf(stderr, "soak: ");
    std::fprintf(stderr, format, args...);
    std::fprintf(stderr, "\n");
  }
  double Since(Clock::time_point t) const {
    return std::chrono::duration<double>(t - load_start_).count();
  }

  const Options options_;
  std::mt19937 random_;
  int app_port_ = 0;
  int listen_port_ = 0;
  int admin_port_ = 0;
  pid_t app_pid_ = -1;  // owned by RestartLoop once the load runs
  pid_t lameduck_pid_ = -1;
  std::string lameduck_exit_;  // how it ended, if it did before we asked
  Tally tally_;
  std::atomic<bool> stop_{false};
  std::string restart_error_;  // set by RestartLoop if the app would not come back

  std::mutex restarts_mutex_;
  std::vector<Restart> restarts_;

  Clock::time_point load_start_;
  std::FILE* csv_ = nullptr;
  std::vector<Sample> samples_;
  uint64_t last_done_ = 0;
  uint64_t last_failed_ = 0;
};

bool Soak::StartApp() {
  for (int attempt = 0; attempt < 5; ++attempt) {
    app_pid_ = Spawn({options_.sample_app, "--listen", "127.0.0.1:" + std::to_string(app_port_)},
                     options_.out + "/app.log");
    int status = 0;
    if (app_pid_ > 0 && WaitForPort(app_pid_, app_port_, seconds(10), &status)) return true;
    if (app_pid_ > 0) {
      kill(app_pid_, SIGKILL);
      waitpid(app_pid_, &status, 0);
    }
    std::this_thread::sleep_for(milliseconds(200));  // the port may still be held: try again
  }
  return false;
}

// Kills and restarts the app every kRestartEvery (halfway through a run shorter than two).
void Soak::RestartLoop() {
  auto every = options_.seconds >= 2 * kRestartEvery.count()
                   ? Clock::duration(kRestartEvery)
                   : Clock::duration(seconds(options_.seconds)) / 2;
  auto next = load_start_ + every;
  int signal = SIGKILL;
  while (true) {
    while (Clock::now() < next) {
      if (stop_.load() || g_interrupted.load()) return;
      std::this_thread::sleep_for(milliseconds(20));
    }
    if (next > load_start_ + seconds(options_.seconds) - seconds(5))
      return;  // too close to the end
    Restart restart{Clock::now(), Clock::time_point::max(), signal};
    kill(app_pid_, signal);
    int status = 0;
    waitpid(app_pid_, &status, 0);
    std::this_thread::sleep_for(kRestartGap);
    bool started = StartApp();
    if (started) restart.ready = Clock::now();
    {
      std::lock_guard lock(restarts_mutex_);
      restarts_.push_back(restart);
    }
    Log("%.0f s: app sent %s (%s), back after %.0f ms", Since(restart.kill),
        signal == SIGKILL ? "SIGKILL" : "SIGTERM", DescribeStatus(status).c_str(),
        started ? std::chrono::duration<double, std::milli>(restart.ready - restart.kill).count()
                : -1.0);
    if (!started) {
      restart_error_ = "sample_app did not start again on port " + std::to_string(app_port_);
      stop_.store(true);
      return;
    }
    signal = signal == SIGKILL ? SIGTERM : SIGKILL;
    next += every;
  }
}

void Soak::TakeSample(Phase phase) {
  uint64_t done = tally_.done();
  uint64_t failed = tally_.failed();
  Sample sample{Since(Clock::now()),   phase,
                RssKib(lameduck_pid_), OpenFds(lameduck_pid_),
                done - last_done_,     failed - last_failed_};
  last_done_ = done;
  last_failed_ = failed;
  samples_.push_back(sample);
  if (csv_ != nullptr) {
    std::fprintf(csv_, "%.1f,%s,%lld,%d,%llu,%llu\n", sample.t_s, ToString(phase),
                 static_cast<long long>(sample.rss_kib), sample.fds,
                 static_cast<unsigned long long>(sample.requests),
                 static_cast<unsigned long long>(sample.failures));
    std::fflush(csv_);
  }
  int status = 0;
  if (lameduck_exit_.empty() && waitpid(lameduck_pid_, &status, WNOHANG) == lameduck_pid_) {
    lameduck_exit_ = DescribeStatus(status);
  }
}

int Soak::Run() {
  mkdir(options_.out.c_str(), 0755);
  std::vector<int> taken;
  app_port_ = PickPort(taken, random_);
  listen_port_ = PickPort(taken, random_);
  admin_port_ = PickPort(taken, random_);
  if (app_port_ == 0 || listen_port_ == 0 || admin_port_ == 0) {
    std::fprintf(stderr, "soak: found no free port\n");
    return 1;
  }
  if (!StartApp()) {
    std::fprintf(stderr, "soak: sample_app did not start; see %s/app.log\n", options_.out.c_str());
    return 1;
  }
  auto ms = [](milliseconds d) { return std::to_string(d.count()) + "ms"; };
  lameduck_pid_ =
      Spawn({options_.lameduck, "--listen", "127.0.0.1:" + std::to_string(listen_port_),
             "--upstream", "127.0.0.1:" + std::to_string(app_port_), "--admin",
             "127.0.0.1:" + std::to_string(admin_port_), "--header-timeout", ms(kHeaderTimeout),
             "--idle-timeout", ms(kIdleTimeout), "--drain-delay", "0s", "--drain-timeout", "10s"},
            options_.out + "/lameduck.log");
  int status = 0;
  if (lameduck_pid_ <= 0 || !WaitForPort(lameduck_pid_, listen_port_, seconds(10), &status)) {
    std::fprintf(stderr, "soak: lameduck did not start; see %s/lameduck.log\n",
                 options_.out.c_str());
    kill(app_pid_, SIGKILL);
    return 1;
  }
  // Our probe connection: let lameduck finish with it before measuring the baseline.
  std::this_thread::sleep_for(milliseconds(500));
  csv_ = std::fopen((options_.out + "/soak.csv").c_str(), "w");
  if (csv_ != nullptr) std::fprintf(csv_, "t_s,phase,rss_kib,fds,requests,failures\n");

  Log("lameduck pid %d on 127.0.0.1:%d in front of sample_app on 127.0.0.1:%d; %d s of load",
      static_cast<int>(lameduck_pid_), listen_port_, app_port_, options_.seconds);
  auto start = Clock::now();
  load_start_ = start + kBaselineSamples;
  for (int i = 0; i < kBaselineSamples.count(); ++i) {
    std::this_thread::sleep_until(start + seconds(i));
    TakeSample(Phase::kBaseline);
  }
  int fd_baseline = samples_.front().fds;
  for (const Sample& sample : samples_) fd_baseline = std::min(fd_baseline, sample.fds);

  // The load.
  std::this_thread::sleep_until(load_start_);
  last_done_ = tally_.done();
  std::vector<std::thread> threads;
  std::atomic<int> running{0};
  int index = 0;
  for (auto [kind, count] : kMix) {
    for (int i = 0; i < count; ++i) {
      running.fetch_add(1);
      threads.emplace_back([this, &running, kind = kind, index] {
        Worker(kind, index, listen_port_, tally_, stop_).Run();
        running.fetch_sub(1);
      });
      ++index;
    }
  }
  // The thread that spawned the app must outlive it: PR_SET_PDEATHSIG fires when it ends.
  std::atomic<bool> app_reaped{false};
  std::thread restarter([this, &app_reaped] {
    RestartLoop();
    while (!app_reaped.load()) std::this_thread::sleep_for(milliseconds(20));
  });
  auto load_end = load_start_ + seconds(options_.seconds);
  for (int i = 1; Clock::now() < load_end; ++i) {
    std::this_thread::sleep_until(std::min(load_start_ + seconds(i), load_end));
    TakeSample(Phase::kLoad);
    if (i % 10 == 0) {
      const Sample& last = samples_.back();
      Log("%d s: %llu requests, %llu failed; RSS %s MiB, %d fds", i,
          static_cast<unsigned long long>(tally_.done()),
          static_cast<unsigned long long>(tally_.failed()), Mib(last.rss_kib).c_str(), last.fds);
    }
    if (!lameduck_exit_.empty() || stop_.load() || g_interrupted.load()) break;
  }
  auto stopped_at = Clock::now();
  stop_.store(true);

  // The clients finish their requests and close; then lameduck's fds must return to baseline.
  Clock::time_point clients_closed = Clock::time_point::max();
  std::optional<double> fds_settled_s;
  for (int i = 1; i < 60 && lameduck_exit_.empty(); ++i) {
    std::this_thread::sleep_until(stopped_at + seconds(i));
    TakeSample(Phase::kCooldown);
    if (running.load() == 0 && clients_closed == Clock::time_point::max()) {
      clients_closed = Clock::now();
    }
    if (clients_closed == Clock::time_point::max()) continue;
    if (!fds_settled_s && samples_.back().fds <= fd_baseline) {
      fds_settled_s = std::chrono::duration<double>(Clock::now() - clients_closed).count();
    }
    auto since_closed = Clock::now() - clients_closed;
    if (fds_settled_s && since_closed >= seconds(static_cast<int>(*fds_settled_s) + 2)) break;
    if (since_closed > kFdSettleLimit) break;
  }
  for (std::thread& thread : threads) thread.join();
  if (csv_ != nullptr) std::fclose(csv_);

  // lameduck must drain and exit cleanly (and, under ASan, without a leak report).
  std::string lameduck_end = lameduck_exit_;
  bool lameduck_survived = lameduck_exit_.empty();
  bool lameduck_clean_exit = false;
  if (lameduck_survived) {
    kill(lameduck_pid_, SIGTERM);
    lameduck_end = "did not exit within 20 s of SIGTERM";
    for (int i = 0; i < 200; ++i) {
      if (waitpid(lameduck_pid_, &status, WNOHANG) == lameduck_pid_) {
        lameduck_clean_exit = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        lameduck_end = DescribeStatus(status) + " after SIGTERM";
        break;
      }
      std::this_thread::sleep_for(milliseconds(100));
    }
    if (lameduck_end.starts_with("did not")) {
      kill(lameduck_pid_, SIGKILL);
      waitpid(lameduck_pid_, &status, 0);
    }
  }
  kill(app_pid_, SIGKILL);
  waitpid(app_pid_, &status, 0);
  app_reaped.store(true);
  restarter.join();

  // ---- The numbers.
  std::vector<Failure> failures = tally_.failures();
  std::vector<Restart> restarts;
  {
    std::lock_guard lock(restarts_mutex_);
    restarts = restarts_;
  }
  std::array<uint64_t, kKinds> expected{};
  std::array<uint64_t, kKinds> unexpected{};
  std::array<uint64_t, kOutcomes> expected_by{};
  std::array<uint64_t, kOutcomes> unexpected_by{};
  std::vector<std::string> examples;
  for (const Failure& failure : failures) {
    bool in_window = std::any_of(restarts.begin(), restarts.end(), [&](const Restart& restart) {
      auto window_end =
          restart.ready == Clock::time_point::max() ? restart.ready : restart.ready + kRestartGrace;
      return failure.start <= window_end && failure.end >= restart.kill;
    });
    bool is_expected = in_window && RestartCanCause(failure.outcome);
    (is_expected ? expected : unexpected)[static_cast<int>(failure.kind)]++;
    (is_expected ? expected_by : unexpected_by)[static_cast<int>(failure.outcome)]++;
    if (!is_expected && examples.size() < 5) {
      char line[256];
      std::snprintf(line, sizeof(line), "  %.1f-%.1f s %s: %s %s", Since(failure.start),
                    Since(failure.end), ToString(failure.kind), ToString(failure.outcome),
                    failure.detail.c_str());
      examples.push_back(line);
    }
  }
  uint64_t total_ok = 0, total_expected = 0, total_unexpected = 0;
  for (int k = 0; k < kKinds; ++k) {
    total_ok += tally_.ok(static_cast<Kind>(k));
    total_expected += expected[k];
    total_unexpected += unexpected[k];
  }

  double load_s = std::chrono::duration<double>(stopped_at - load_start_).count();
  double warmup_s = std::max(10.0, 0.2 * options_.seconds);
  std::vector<const Sample*> steady;
  for (const Sample& sample : samples_) {
    if (sample.phase == Phase::kLoad && sample.t_s >= warmup_s && sample.rss_kib > 0) {
      steady.push_back(&sample);
    }
  }
  int64_t rss_min = 0, rss_median = 0, rss_max = 0, first_max = 0, last_max = 0;
  double slope_kib_per_min = 0;
  if (!steady.empty()) {
    std::vector<int64_t> rss;
    for (const Sample* sample : steady) rss.push_back(sample->rss_kib);
    std::sort(rss.begin(), rss.end());
    rss_min = rss.front();
    rss_median = rss[rss.size() / 2];
    rss_max = rss.back();
    double span = (load_s - warmup_s) / 3;
    double sum_t = 0, sum_r = 0, sum_tt = 0, sum_tr = 0;
    for (const Sample* sample : steady) {
      if (sample->t_s < warmup_s + span) first_max = std::max(first_max, sample->rss_kib);
      if (sample->t_s >= load_s - span) last_max = std::max(last_max, sample->rss_kib);
      double t = sample->t_s / 60, r = static_cast<double>(sample->rss_kib);
      sum_t += t, sum_r += r, sum_tt += t * t, sum_tr += t * r;
    }
    double n = static_cast<double>(steady.size());
    double denominator = n * sum_tt - sum_t * sum_t;
    if (denominator > 0) slope_kib_per_min = (n * sum_tr - sum_t * sum_r) / denominator;
  }
  // The pass: RSS after warm-up does not trend upward. The peak of the last third may exceed
  // that of the first by the slack: allocator arenas, pooled buffers and the kernel's accounting
  // of pages move by a few hundred KiB with the mix of the moment (and more under ASan, whose
  // RSS is several times larger: hence a fraction), while a leak of even 100 bytes a request is
  // over 30 MiB in a 30-minute run.
  int64_t slack_kib =
      std::max<int64_t>(kRssSlackMinKib, static_cast<int64_t>(kRssSlackFraction * first_max));
  bool rss_flat = !steady.empty() && last_max - first_max <= slack_kib;
  int fd_min = INT32_MAX, fd_max = 0;
  for (const Sample& sample : samples_) {
    if (sample.fds < 0) continue;
    fd_min = std::min(fd_min, sample.fds);
    fd_max = std::max(fd_max, sample.fds);
  }
  int fd_final = samples_.back().fds;
  bool fds_back = fds_settled_s.has_value();
  bool complete_run =
      !g_interrupted.load() && restart_error_.empty() && load_s >= options_.seconds - 1.5;
  bool pass = lameduck_survived && lameduck_clean_exit && complete_run && total_unexpected == 0 &&
              rss_flat && fds_back && total_ok > 0;

  std::ostringstream out;
  char line[512];
  auto print = [&](const char* format, auto... args) {
    std::snprintf(line, sizeof(line), format, args...);
    out << line << '\n';
  };
  int kill_count = 0, term_count = 0;
  double gap_sum_ms = 0;
  for (const Restart& restart : restarts) {
    (restart.signal == SIGKILL ? kill_count : term_count)++;
    if (restart.ready != Clock::time_point::max()) {
      gap_sum_ms += std::chrono::duration<double, std::milli>(restart.ready - restart.kill).count();
    }
  }
  print(
      "soak: %.0f s of mixed load through lameduck, %zu upstream restarts (%d SIGKILL, %d "
      "SIGTERM, back after %.0f ms on average)",
      load_s, restarts.size(), kill_count, term_count,
      restarts.empty() ? 0.0 : gap_sum_ms / static_cast<double>(restarts.size()));
  print("%-10s %10s %16s %16s", "requests", "ok", "restart errors", "unexpected");
  for (int k = 0; k < kKinds; ++k) {
    print("%-10s %10llu %16llu %16llu", ToString(static_cast<Kind>(k)),
          static_cast<unsigned long long>(tally_.ok(static_cast<Kind>(k))),
          static_cast<unsigned long long>(expected[k]),
          static_cast<unsigned long long>(unexpected[k]));
  }
  print("%-10s %10llu %16llu %16llu   (%.0f ok/s)", "total",
        static_cast<unsigned long long>(total_ok), static_cast<unsigned long long>(total_expected),
        static_cast<unsigned long long>(total_unexpected),
        static_cast<double>(total_ok) / std::max(load_s, 1.0));
  std::string reasons;
  for (int o = 1; o < kOutcomes; ++o) {
    if (expected_by[o] + unexpected_by[o] == 0) continue;
    reasons += " " + std::string(ToString(static_cast<Outcome>(o))) + " " +
               std::to_string(expected_by[o]) + "/" + std::to_string(unexpected_by[o]);
  }
  if (!reasons.empty()) print("failures by reason (restart/unexpected):%s", reasons.c_str());
  for (const std::string& example : examples) print("%s", example.c_str());
  print("RSS after warm-up (%.0f s on): min %s, median %s, max %s MiB; trend %+.0f KiB/min",
        warmup_s, Mib(rss_min).c_str(), Mib(rss_median).c_str(), Mib(rss_max).c_str(),
        slope_kib_per_min);
  print("RSS max, first third %s MiB, last third %s MiB: %+lld KiB (slack %lld KiB) %s",
        Mib(first_max).c_str(), Mib(last_max).c_str(), static_cast<long long>(last_max - first_max),
        static_cast<long long>(slack_kib), rss_flat ? "flat" : "GROWING");
  std::string settled =
      fds_back ? "back to baseline " + std::to_string(static_cast<int>(*fds_settled_s + 0.5)) +
                     " s after the clients closed"
               : "NOT back to baseline within " + std::to_string(kFdSettleLimit.count()) + " s";
  print("fds: baseline %d, min %d, max %d, final %d: %s", fd_baseline, fd_min, fd_max, fd_final,
        settled.c_str());
  print("lameduck: %s%s",
        lameduck_survived ? "up throughout the load; " : "DIED: ", lameduck_end.c_str());
  if (!restart_error_.empty()) print("%s", restart_error_.c_str());
  if (g_interrupted.load()) print("interrupted");
  print("verdict: %s", pass ? "PASS" : "FAIL");
  std::fputs(out.str().c_str(), stdout);
  if (std::FILE* summary = std::fopen((options_.out + "/summary.txt").c_str(), "w")) {
    std::fputs(out.str().c_str(), summary);
    std::fclose(summary);
  }
  WriteSvg(options_.out + "/soak.svg", warmup_s, load_s);
  return pass ? 0 : 1;
}

// RSS (MiB, left axis) and open fds (right axis) against time; warm-up shaded, restarts marked.
void Soak::WriteSvg(const std::string& path, double warmup_end_s, double load_end_s) const {
  std::FILE* svg = std::fopen(path.c_str(), "w");
  if (svg == nullptr || samples_.empty()) {
    if (svg != nullptr) std::fclose(svg);
    return;
  }
  constexpr double kWidth = 960, kHeight = 420, kLeft = 70, kRight = 70, kTop = 40, kBottom = 50;
  double t0 = samples_.front().t_s, t1 = samples_.back().t_s;
  if (t1 <= t0) t1 = t0 + 1;
  int64_t rss_top_kib = 1024;
  int fd_top = 10;
  for (const Sample& sample : samples_) {
    rss_top_kib = std::max(rss_top_kib, sample.rss_kib);
    fd_top = std::max(fd_top, sample.fds);
  }
  double rss_top = std::ceil(static_cast<double>(rss_top_kib) / 1024 * 1.25);
  double fd_axis = std::ceil(fd_top * 1.25 / 10) * 10;
  double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  auto x = [&](double t) { return kLeft + (t - t0) / (t1 - t0) * plot_w; };
  auto y_rss = [&](double mib) { return kTop + plot_h - mib / rss_top * plot_h; };
  auto y_fd = [&](double fds) { return kTop + plot_h - fds / fd_axis * plot_h; };
  bool minutes = t1 - t0 > 300;
  std::fprintf(svg,
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n"
               "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
               kWidth, kHeight);
  std::fprintf(svg,
               "<text x=\"%.0f\" y=\"22\" font-size=\"14\">lameduck soak: RSS (blue, MiB) and open "
               "fds (orange) every second; warm-up shaded, upstream restarts in red</text>\n",
               kLeft);
  std::fprintf(svg, "<rect x=\"%.1f\" y=\"%.0f\" width=\"%.1f\" height=\"%.0f\" fill=\"#eee\"/>\n",
               x(std::max(t0, 0.0)), kTop, x(warmup_end_s) - x(std::max(t0, 0.0)), plot_h);
  for (double t : {0.0, load_end_s}) {
    std::fprintf(svg, "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#888\"/>\n",
                 x(t), kTop, x(t), kTop + plot_h);
  }
  {
    std::lock_guard lock(const_cast<std::mutex&>(restarts_mutex_));
    for (const Restart& restart : restarts_) {
      double t = Since(restart.kill);
      std::fprintf(svg,
                   "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#d22\" "
                   "stroke-dasharray=\"3,3\"/>\n",
                   x(t), kTop, x(t), kTop + plot_h);
    }
  }
  // Axes, ticks and grid.
  std::fprintf(svg,
               "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
               "stroke=\"black\"/>\n",
               kLeft, kTop, plot_w, plot_h);
  for (int i = 0; i <= 5; ++i) {
    double mib = rss_top * i / 5, fds = fd_axis * i / 5;
    double y = y_rss(mib);
    std::fprintf(svg,
                 "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n"
                 "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#1f5fbf\">%.1f</text>\n"
                 "<text x=\"%.0f\" y=\"%.1f\" fill=\"#d9822b\">%.0f</text>\n",
                 kLeft, y, kLeft + plot_w, y, kLeft - 6, y + 4, mib, kLeft + plot_w + 6, y + 4,
                 fds);
  }
  double step = minutes ? 300 : 10;
  while ((t1 - t0) / step > 12) step *= 2;
  for (double t = 0; t <= t1; t += step) {
    std::fprintf(svg, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%.0f</text>\n", x(t),
                 kTop + plot_h + 16, minutes ? t / 60 : t);
  }
  std::fprintf(svg,
               "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">time since the load started "
               "(%s)</text>\n",
               kLeft + plot_w / 2, kHeight - 10, minutes ? "minutes" : "seconds");
  std::fprintf(svg,
               "<text x=\"16\" y=\"%.0f\" fill=\"#1f5fbf\" transform=\"rotate(-90 16 %.0f)\" "
               "text-anchor=\"middle\">RSS (MiB)</text>\n",
               kTop + plot_h / 2, kTop + plot_h / 2);
  std::fprintf(svg,
               "<text x=\"%.0f\" y=\"%.0f\" fill=\"#d9822b\" transform=\"rotate(90 %.0f %.0f)\" "
               "text-anchor=\"middle\">open fds</text>\n",
               kWidth - 16, kTop + plot_h / 2, kWidth - 16, kTop + plot_h / 2);
  auto polyline = [&](const char* color, auto y_of) {
    std::fprintf(svg, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.2\" points=\"",
                 color);
    for (const Sample& sample : samples_) {
      if (sample.rss_kib < 0 || sample.fds < 0) continue;
      std::fprintf(svg, "%.1f,%.1f ", x(sample.t_s), y_of(sample));
    }
    std::fprintf(svg, "\"/>\n");
  };
  polyline("#d9822b", [&](const Sample& s) { return y_fd(s.fds); });
  polyline("#1f5fbf",
           [&](const Sample& s) { return y_rss(static_cast<double>(s.rss_kib) / 1024); });
  std::fprintf(svg, "</svg>\n");
  std::fclose(svg);
}

// ---------------------------------------------------------------------------------------------

int Usage(FILE* to, int status) {
  std::fprintf(
      to,
      "usage: soak --lameduck PATH --sample-app PATH [--seconds N] [--out DIR] [--quiet]\n"
      "  lameduck in front of sample_app under mixed load (keep-alive, idle, churn, uploads,\n"
      "  slow requests, downloads, client aborts, stalled heads) with an upstream restart every\n"
      "  minute; lameduck's RSS and open fds sampled every second.\n"
      "\n"
      "  --seconds N     how long the load runs (default: 1800)\n"
      "  --out DIR       where soak.csv, soak.svg, summary.txt and the logs go (default: .)\n"
      "\n"
      "Exits 0 when the soak passed: no unexpected failure, RSS flat after warm-up, fds back to\n"
      "the baseline, lameduck up throughout and exiting 0 on SIGTERM; 1 when not; 2 for bad "
      "usage.\n");
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    bool has_value = i + 1 < argc;
    if (arg == "-h" || arg == "--help") return Usage(stdout, 0);
    if (arg == "--quiet") {
      options.quiet = true;
    } else if (arg == "--seconds" && has_value) {
      std::string_view value = argv[++i];
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), options.seconds);
      if (ec != std::errc() || end != value.data() + value.size() || options.seconds < 10) {
        std::fprintf(stderr, "soak: --seconds: want a whole number of at least 10\n");
        return 2;
      }
    } else if (arg == "--lameduck" && has_value) {
      options.lameduck = argv[++i];
    } else if (arg == "--sample-app" && has_value) {
      options.sample_app = argv[++i];
    } else if (arg == "--out" && has_value) {
      options.out = argv[++i];
    } else {
      return Usage(stderr, 2);
    }
  }
  if (options.lameduck.empty() || options.sample_app.empty()) return Usage(stderr, 2);
  std::signal(SIGPIPE, SIG_IGN);
  struct sigaction action {};
  action.sa_handler = [](int) { g_interrupted.store(true); };
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  return Soak(std::move(options)).Run();
}
