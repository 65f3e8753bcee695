// bench/load_generator.cc: the workers of LoadGenerator, each one keep-alive HTTP/1.1 client on
// a non-blocking socket driven by poll() with a deadline, so no call can hang past
// request_timeout. Responses are parsed with llhttp; requests have no body.
//
// What counts as what is decided in one place, Worker::Finish, from one ExchangeResult.

#include "bench/load_generator.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <random>
#include <string_view>
#include <utility>

namespace lameduck::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kReadBytes = 16 * 1024;

enum class Failure {
  kNone,     // a complete response arrived
  kRefused,  // connect refused
  kReset,    // ECONNRESET or EPIPE: the server reset the connection
  kEof,      // the server closed before the response was complete
  kTimeout,  // the deadline passed
  kOther,    // malformed response, unexpected socket error
};

Failure FailureForErrno(int error) {
  switch (error) {
    case ECONNREFUSED:
      return Failure::kRefused;
    case ECONNRESET:
    case EPIPE:
      return Failure::kReset;
    case ETIMEDOUT:
      return Failure::kTimeout;
    default:
      return Failure::kOther;
  }
}

// Milliseconds left until `deadline`, rounded up, for poll(); 0 once it has passed.
int PollTimeoutMs(Clock::time_point deadline) {
  auto left = deadline - Clock::now();
  if (left <= Clock::duration::zero()) return 0;
  return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(left).count());
}

// Waits for `events` on fd until the deadline: 1 ready, 0 deadline, -1 error (errno set).
int PollUntil(int fd, short events, Clock::time_point deadline) {
  while (true) {
    pollfd pfd{fd, events, 0};
    int rc = poll(&pfd, 1, PollTimeoutMs(deadline));
    if (rc > 0) return 1;
    if (rc == 0) {
      if (Clock::now() >= deadline) return 0;
      continue;  // poll's millisecond rounding woke us a little early
    }
    if (errno != EINTR) return -1;
  }
}

struct ExchangeResult {
  Failure failure = Failure::kNone;
  int status = 0;
  bool response_started = false;  // at least one response byte arrived
  bool keep_alive = false;        // the connection may carry the next request
};

// One connection to one endpoint, and the response parser for the exchange on it.
class Connection {
 public:
  Connection() {
    llhttp_settings_init(&settings_);
    settings_.on_headers_complete = &Connection::OnHeadersComplete;
    settings_.on_message_complete = &Connection::OnMessageComplete;
  }
  ~Connection() { Close(); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool open() const { return fd_ >= 0; }
  int port() const { return port_; }
  bool reused() const { return exchanges_ > 0; }  // this is not its first request

  // kNone when connected within the deadline.
  Failure Connect(int port, Clock::time_point deadline) {
    Close();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return Failure::kOther;
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
        int ready = PollUntil(fd, POLLOUT, deadline);
        if (ready == 0) {
          close(fd);
          return Failure::kTimeout;
        }
        socklen_t length = sizeof(error);
        if (ready < 0) {
          error = errno;
        } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) {
          error = errno;
        }
      }
    }
    if (error != 0) {
      close(fd);
      return FailureForErrno(error);
    }
    fd_ = fd;
    port_ = port;
    exchanges_ = 0;
    return Failure::kNone;
  }

  // Whether an idle connection can take a request. Like Go's net/http, which watches idle
  // connections with a background read: one the server closed (or sent something on, such as
  // a 408) is dropped before use rather than written to.
  bool StillUsable() const {
    pollfd pfd{fd_, POLLIN, 0};
    return poll(&pfd, 1, 0) == 0;
  }

  // Writes `request` and reads the whole response, all before `deadline`.
  ExchangeResult Exchange(std::string_view request, Clock::time_point deadline) {
    ExchangeResult result;
    ++exchanges_;
    // Fresh per exchange: no pipelining, so bytes after a response are never a next response.
    llhttp_init(&parser_, HTTP_RESPONSE, &settings_);
    parser_.data = this;
    status_ = 0;
    complete_ = false;
    keep_alive_ = false;

    while (!request.empty()) {
      ssize_t n = send(fd_, request.data(), request.size(), MSG_NOSIGNAL);
      if (n >= 0) {
        request.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        result.failure = FailureForErrno(errno);
        return result;
      }
      int ready = PollUntil(fd_, POLLOUT, deadline);
      if (ready <= 0) {
        result.failure = ready == 0 ? Failure::kTimeout : FailureForErrno(errno);
        return result;
      }
    }

    char buffer[kReadBytes];
    while (true) {
      int ready = PollUntil(fd_, POLLIN, deadline);
      if (ready <= 0) {
        result.failure = ready == 0 ? Failure::kTimeout : FailureForErrno(errno);
        return result;
      }
      ssize_t n = recv(fd_, buffer, sizeof(buffer), 0);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
        result.failure = FailureForErrno(errno);
        return result;
      }
      if (n == 0) {
        // EOF ends a body without Content-Length (RFC 9112 6.3); anything else is cut short.
        llhttp_errno_t err = llhttp_finish(&parser_);
        if (err == HPE_OK && complete_) {
          result.status = status_;
          result.keep_alive = false;
          return result;
        }
        result.failure = Failure::kEof;
        return result;
      }
      result.response_started = true;
      llhttp_errno_t err = llhttp_execute(&parser_, buffer, static_cast<size_t>(n));
      if (err == HPE_PAUSED && complete_) {
        result.status = status_;
        // Bytes after the response that nobody asked for: the connection's framing is lost.
        const char* end = llhttp_get_error_pos(&parser_);
        result.keep_alive = keep_alive_ && end == buffer + n;
        return result;
      }
      if (err != HPE_OK) {
        result.failure = Failure::kOther;
        return result;
      }
    }
  }

  void Close() {
    if (fd_ < 0) return;
    close(fd_);
    fd_ = -1;
  }

 private:
  static int OnHeadersComplete(llhttp_t* parser) {
    auto* self = static_cast<Connection*>(parser->data);
    self->status_ = llhttp_get_status_code(parser);
    self->keep_alive_ = llhttp_should_keep_alive(parser) != 0;
    return 0;
  }
  static int OnMessageComplete(llhttp_t* parser) {
    auto* self = static_cast<Connection*>(parser->data);
    // An interim response (100 Continue, 103 Early Hints) precedes the real one.
    if (self->status_ >= 100 && self->status_ < 200 && self->status_ != 101) return 0;
    self->complete_ = true;
    return HPE_PAUSED;
  }

  int fd_ = -1;
  int port_ = 0;
  int exchanges_ = 0;  // requests written on this connection
  llhttp_settings_t settings_;
  llhttp_t parser_;
  int status_ = 0;
  bool complete_ = false;
  bool keep_alive_ = false;
};

}  // namespace

class LoadGenerator::Worker {
 public:
  Worker(LoadGenerator& owner, unsigned seed) : owner_(owner), random_(seed) {}

  void Run() {
    while (!owner_.ShouldStop()) {
      if (connection_.open() && !connection_.StillUsable()) connection_.Close();
      int port = connection_.open() ? connection_.port()
                                    : owner_.NextEndpoint(EndpointWait::kUntilAvailable);
      if (port == 0) break;  // stopped while waiting for an endpoint
      bool failed = RunOneRequest(port) == Outcome::kFailed;
      const LoadOptions& options = owner_.options_;
      if (!owner_.SleepUnlessStopping(failed ? options.failure_pause : options.think)) break;
    }
    connection_.Close();
  }

 private:
  Outcome RunOneRequest(int port) {
    const LoadOptions& options = owner_.options_;
    bool slow = std::bernoulli_distribution(options.slow_fraction)(random_);
    std::string request = "GET /";
    if (slow) {
      std::uniform_int_distribution<int64_t> ms(options.slow_min.count(), options.slow_max.count());
      request += "slow?ms=" + std::to_string(ms(random_));
    }
    request += " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
               "\r\nUser-Agent: lameduck-loadgen\r\n";
    // A client that says close sends nothing more on the connection (RFC 9112 9.6).
    bool close = std::bernoulli_distribution(options.close_fraction)(random_);
    request += close ? "Connection: close\r\n\r\n" : "\r\n";

    owner_.CountBegun(port, slow);
    Clock::time_point deadline = Clock::now() + options.request_timeout;
    bool reused = connection_.open() && connection_.reused();
    ExchangeResult result = Attempt(port, request, deadline);
    // RFC 9112 9.3.1: a client may retry an idempotent request once when the connection closed
    // before any response came back; a reused connection may have been closed by the server
    // just as the request went out. A timeout is not retried (the request may be running).
    bool retryable = result.failure == Failure::kReset || result.failure == Failure::kEof;
    if (reused && retryable && !result.response_started) {
      owner_.CountRetry();
      connection_.Close();
      int retry_port = owner_.NextEndpoint(EndpointWait::kForRetry);
      if (retry_port == 0) {
        owner_.CountEnd(Outcome::kRerouted, Reason::kNone, 0, slow);
        return Outcome::kRerouted;
      }
      result = Attempt(retry_port, request, deadline);
    }
    if (close || result.failure != Failure::kNone || !result.keep_alive) connection_.Close();
    return Finish(result, slow);
  }

  // Connects first if there is no connection. The request text names the first port in Host;
  // on a retry to another port that is harmless (the endpoints are one service).
  ExchangeResult Attempt(int port, std::string_view request, Clock::time_point deadline) {
    if (!connection_.open()) {
      Failure failure = connection_.Connect(port, deadline);
      if (failure != Failure::kNone) return ExchangeResult{failure, 0, false, false};
      owner_.CountConnection();
    }
    return connection_.Exchange(request, deadline);
  }

  Outcome Finish(const ExchangeResult& result, bool slow) {
    Reason reason = Reason::kNone;
    switch (result.failure) {
      case Failure::kNone:
        if (result.status >= 200 && result.status < 500) {
          owner_.CountEnd(Outcome::kOk, Reason::kNone, result.status, slow);
          return Outcome::kOk;
        }
        reason =
            result.status >= 500 && result.status < 600 ? Reason::kServerError : Reason::kOther;
        break;
      case Failure::kRefused:
        reason = Reason::kRefused;
        break;
      case Failure::kReset:
        reason = Reason::kReset;
        break;
      case Failure::kEof:
        reason = Reason::kEof;
        break;
      case Failure::kTimeout:
        reason = Reason::kTimeout;
        break;
      case Failure::kOther:
        reason = Reason::kOther;
        break;
    }
    owner_.CountEnd(Outcome::kFailed, reason, result.status, slow);
    return Outcome::kFailed;
  }

  LoadGenerator& owner_;
  std::mt19937 random_;
  Connection connection_;
};

namespace {

// Values the workers can use as they are: a probability, an ordered range, no negative pauses.
LoadOptions Sanitized(LoadOptions options) {
  options.slow_fraction = std::clamp(options.slow_fraction, 0.0, 1.0);
  if (!(options.slow_fraction >= 0)) options.slow_fraction = 0;  // NaN
  options.close_fraction = std::clamp(options.close_fraction, 0.0, 1.0);
  if (!(options.close_fraction >= 0)) options.close_fraction = 0;
  options.slow_min = std::max(options.slow_min, std::chrono::milliseconds(0));
  options.slow_max = std::max(options.slow_min, options.slow_max);
  options.think = std::max(options.think, std::chrono::milliseconds(0));
  options.failure_pause = std::max(options.failure_pause, std::chrono::milliseconds(0));
  return options;
}

}  // namespace

LoadGenerator::LoadGenerator(LoadOptions options)
    : options_(Sanitized(std::move(options))), endpoints_(options_.endpoints) {}

LoadGenerator::~LoadGenerator() { Stop(); }

void LoadGenerator::Start() {
  std::lock_guard join_lock(join_mutex_);
  if (!threads_.empty()) return;
  started_at_ = Clock::now();
  std::random_device seed_source;
  unsigned base_seed = seed_source();
  for (int i = 0; i < options_.connections; ++i) {
    threads_.emplace_back(
        [this, seed = base_seed + static_cast<unsigned>(i)] { Worker(*this, seed).Run(); });
  }
}

void LoadGenerator::Stop() {
  {
    // Notified under the lock, so that a caller who learns through a socket that this returned
    // may destroy the generator: nothing touches changed_ after the unlock.
    std::lock_guard lock(mutex_);
    stopping_ = true;
    changed_.notify_all();
  }
  Wait();
}

void LoadGenerator::Wait() {
  std::lock_guard join_lock(join_mutex_);
  for (std::thread& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
}

void LoadGenerator::SetEndpoints(std::vector<int> ports) {
  std::lock_guard lock(mutex_);
  endpoints_ = std::move(ports);
  changed_.notify_all();  // under the lock: see Stop()
}

LoadStats LoadGenerator::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

bool LoadGenerator::ShouldStop() const {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return true;
  }
  return options_.max_duration.count() > 0 && Clock::now() >= started_at_ + options_.max_duration;
}

int LoadGenerator::NextEndpoint(EndpointWait wait) {
  std::unique_lock lock(mutex_);
  if (wait == EndpointWait::kUntilAvailable) {
    auto available = [this] { return stopping_ || !endpoints_.empty(); };
    if (options_.max_duration.count() > 0) {
      if (!changed_.wait_until(lock, started_at_ + options_.max_duration, available)) return 0;
    } else {
      changed_.wait(lock, available);
    }
    if (stopping_) return 0;
  }
  if (endpoints_.empty()) return 0;
  return endpoints_[next_endpoint_++ % endpoints_.size()];
}

bool LoadGenerator::SleepUnlessStopping(std::chrono::milliseconds duration) {
  std::unique_lock lock(mutex_);
  Clock::time_point until = Clock::now() + duration;
  if (options_.max_duration.count() > 0) {
    until = std::min(until, started_at_ + options_.max_duration);
  }
  changed_.wait_until(lock, until, [this] { return stopping_; });
  lock.unlock();
  return !ShouldStop();
}

void LoadGenerator::CountBegun(int port, bool slow) {
  std::lock_guard lock(mutex_);
  ++stats_.sent;
  ++stats_.by_port[port];
  if (slow) ++stats_.slow_sent;
}

void LoadGenerator::CountConnection() {
  std::lock_guard lock(mutex_);
  ++stats_.connections;
}

void LoadGenerator::CountRetry() {
  std::lock_guard lock(mutex_);
  ++stats_.retried;
}

void LoadGenerator::CountEnd(Outcome outcome, Reason reason, int status, bool slow) {
  std::lock_guard lock(mutex_);
  if (status != 0) ++stats_.statuses[status];
  switch (outcome) {
    case Outcome::kOk:
      ++stats_.ok;
      if (slow) ++stats_.slow_ok;
      return;
    case Outcome::kRerouted:
      ++stats_.rerouted;
      return;
    case Outcome::kFailed:
      break;
  }
  ++stats_.failed;
  switch (reason) {
    case Reason::kRefused:
      ++stats_.refused;
      break;
    case Reason::kReset:
      ++stats_.reset;
      break;
    case Reason::kEof:
      ++stats_.eof;
      break;
    case Reason::kTimeout:
      ++stats_.timeout;
      break;
    case Reason::kServerError:
      ++stats_.server_error;
      break;
    case Reason::kNone:
    case Reason::kOther:
      ++stats_.other;
      break;
  }
}

std::string FormatSummary(const LoadStats& stats) {
  // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) on chains of "x" + std::string.
  std::string out;
  auto add = [&out](uint64_t value, std::string_view text) {
    out += std::to_string(value);
    out += text;
  };
  add(stats.sent, " requests sent, ");
  add(stats.ok, " ok, ");
  add(stats.failed, " failed (");
  add(stats.refused, " refused, ");
  add(stats.reset, " reset, ");
  add(stats.eof, " eof, ");
  add(stats.timeout, " timeout, ");
  add(stats.server_error, " 5xx");
  if (stats.server_error > 0) {
    out += ":";
    for (const auto& [status, count] : stats.statuses) {
      if (status < 500 || status >= 600) continue;
      out += " ";
      add(count, "x");
      out += std::to_string(status);
    }
  }
  if (stats.other > 0) {
    out += ", ";
    add(stats.other, " other");
  }
  out += "); ";
  add(stats.slow_sent, " slow requests, ");
  add(stats.slow_ok, " ok; ");
  add(stats.retried, " retried");
  if (stats.rerouted > 0) {
    out += " (";
    add(stats.rerouted, " found no endpoint left: they go to another pod, not counted here)");
  }
  uint64_t ended = stats.ok + stats.failed + stats.rerouted;
  if (stats.sent > ended) {
    out += "; ";
    add(stats.sent - ended, " in flight");
  }
  return out;
}

}  // namespace lameduck::bench
