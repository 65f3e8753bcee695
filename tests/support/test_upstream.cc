#include "tests/support/test_upstream.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <utility>

namespace lameduck::testing {

namespace upstream_internal {

struct Connection {
  std::mutex mu;  // guards fd: Stop() shuts it down from another thread while ours may close it
  int fd = -1;
  int id = 0;
  std::thread thread;
  std::atomic<bool> done{false};  // the thread is about to return: joining it will not block
};

}  // namespace upstream_internal

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr size_t kReadChunk = 64 * 1024;
// Waiting for the next request on a kept-alive connection has no deadline of its own; Stop()
// ends the wait by shutting the socket down.
constexpr milliseconds kIdleWait = std::chrono::hours(24);
// How long the final close waits for the peer's FIN after sending ours (a lingering close,
// RFC 9112 9.6), so unread input does not turn our FIN into an RST.
constexpr milliseconds kLingerWait{1000};

const char* ReasonFor(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 417:
      return "Expectation Failed";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Status";
  }
}

std::string FormatHeaders(const HeaderList& headers) {
  std::string out;
  for (const auto& [name, value] : headers) out += name + ": " + value + "\r\n";
  return out;
}

bool ExpectsContinue(const HttpRequest& request) {
  if (request.version != "1.1") return false;  // RFC 9110 10.1.1: ignore it from HTTP/1.0
  if (!HeaderNameEquals(request.Header("Expect"), "100-continue")) return false;
  std::string length = request.Header("Content-Length");
  return request.chunked || (!length.empty() && length != "0");
}

}  // namespace

// --- UpstreamConn ---

UpstreamConn::UpstreamConn(TestUpstream* upstream, upstream_internal::Connection* slot)
    : upstream_(upstream), slot_(slot), id_(slot->id), fd_(slot->fd) {}

const HttpRequest& UpstreamConn::request() const { return parser_.request(); }

bool UpstreamConn::Send(std::string_view raw) {
  if (fd_ < 0) return false;
  return SendAllWithTimeout(fd_, raw, timeout_);
}

bool UpstreamConn::SendResponse(int status, std::string_view body, const HeaderList& headers) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + ReasonFor(status) + "\r\n";
  out += FormatHeaders(headers);
  bool bodiless = (status >= 100 && status < 200) || status == 204 || status == 304;
  bool framed =
      CountHeader(headers, "Content-Length") > 0 || CountHeader(headers, "Transfer-Encoding") > 0;
  if (!bodiless && !framed) out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  bool closing = !serving_ || (parser_.head_complete() && !parser_.request().keep_alive);
  if (closing && status >= 200 && CountHeader(headers, "Connection") == 0) {
    out += "Connection: close\r\n";
  }
  out += "\r\n";
  if (!bodiless && parser_.request().method != "HEAD") out.append(body);
  return Send(out);
}

bool UpstreamConn::SendHead(int status, const HeaderList& headers) {
  return Send("HTTP/1.1 " + std::to_string(status) + " " + ReasonFor(status) + "\r\n" +
              FormatHeaders(headers) + "\r\n");
}

bool UpstreamConn::SendChunk(std::string_view data) {
  if (data.empty()) return true;  // an empty chunk would end the body
  char size[32];
  std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
  return Send(std::string(size) + std::string(data) + "\r\n");
}

bool UpstreamConn::SendLastChunk(const HeaderList& trailers) {
  return Send("0\r\n" + FormatHeaders(trailers) + "\r\n");
}

UpstreamConn::ReadStatus UpstreamConn::ReadSome(size_t max, milliseconds timeout) {
  if (fd_ < 0) return ReadStatus::kError;
  char buf[kReadChunk];
  ssize_t n = RecvWithTimeout(fd_, buf, std::min(max, sizeof(buf)), timeout);
  if (n > 0) {
    pending_.append(buf, static_cast<size_t>(n));
    return ReadStatus::kData;
  }
  if (n == 0) return ReadStatus::kEof;
  return errno == ETIMEDOUT ? ReadStatus::kTimeout : ReadStatus::kError;
}

UpstreamConn::Parsed UpstreamConn::ParseUntil(Parsed target, milliseconds timeout) {
  while (true) {
    MessageParser::FeedResult fed = parser_.Feed(pending_);
    pending_.erase(0, fed.consumed);
    switch (fed.status) {
      case MessageParser::Status::kMessageComplete:
        return Parsed::kMessage;
      case MessageParser::Status::kHeadComplete:
        if (target == Parsed::kHead) return Parsed::kHead;
        continue;  // the next Feed() resumes into the body
      case MessageParser::Status::kError:
        return Parsed::kError;
      case MessageParser::Status::kNeedMore:
        break;
    }
    switch (ReadSome(kReadChunk, timeout)) {
      case ReadStatus::kData:
        continue;
      case ReadStatus::kEof:
        // Requests are never close-delimited; Finish() only turns a partial one into an error.
        return parser_.Finish() == MessageParser::Status::kMessageComplete ? Parsed::kMessage
                                                                           : Parsed::kEof;
      case ReadStatus::kTimeout:
        return Parsed::kTimeout;
      case ReadStatus::kError:
        return Parsed::kError;
    }
  }
}

std::optional<std::string> UpstreamConn::ReadBody() {
  if (parser_.message_complete()) return parser_.request().body;
  if (!parser_.head_complete()) return std::nullopt;  // raw mode: nothing parsed
  Parsed parsed = ParseUntil(Parsed::kMessage, timeout_);
  upstream_->UpdateRecord(log_index_, parser_.request());
  if (parsed != Parsed::kMessage) return std::nullopt;
  return parser_.request().body;
}

std::string UpstreamConn::ReadRaw(size_t max, milliseconds timeout) {
  if (pending_.empty()) ReadSome(max, timeout);
  std::string out = pending_.substr(0, max);
  pending_.erase(0, out.size());
  return out;
}

std::string UpstreamConn::ReadRawExactly(size_t n, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (pending_.size() < n) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    if (ReadSome(n - pending_.size(), left) != ReadStatus::kData) break;
  }
  std::string out = pending_.substr(0, n);
  pending_.erase(0, out.size());
  return out;
}

bool UpstreamConn::WaitForClose(milliseconds timeout) {
  pending_.clear();
  auto deadline = Clock::now() + timeout;
  while (true) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    ReadStatus status = ReadSome(kReadChunk, std::max(left, milliseconds(0)));
    pending_.clear();
    if (status == ReadStatus::kData) continue;
    if (status == ReadStatus::kEof) return true;
    if (status == ReadStatus::kTimeout) return false;
    return fd_ >= 0;  // a read error (reset) means closed; no fd (our Reset()) does not
  }
}

void UpstreamConn::StopServing() { serving_ = false; }

void UpstreamConn::Close() {
  serving_ = false;
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

void UpstreamConn::Reset() {
  serving_ = false;
  if (fd_ < 0) return;
  std::lock_guard<std::mutex> lock(slot_->mu);
  SetLingerZero(fd_);
  ::close(fd_);
  slot_->fd = -1;
  fd_ = -1;
}

bool UpstreamConn::WaitForGate(std::string_view name, milliseconds timeout) {
  return upstream_->WaitForGate(name, timeout);
}

void UpstreamConn::ServeRequests() {
  static const char kBadRequest[] =
      "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  while (serving_ && fd_ >= 0) {
    parser_.Reset(/*head_response=*/false, /*pause_after_head=*/true);
    Parsed parsed = ParseUntil(Parsed::kHead, kIdleWait);
    if (parsed == Parsed::kError && !parser_.error().empty()) {
      upstream_->NoteParseError(parser_.error());
      Send(kBadRequest);
      return;
    }
    if (parsed != Parsed::kHead && parsed != Parsed::kMessage) return;  // EOF, reset, Stop()

    TestUpstream::Handler handler;
    bool on_headers;
    bool auto_continue;
    {
      std::lock_guard<std::mutex> lock(upstream_->mu_);
      handler = upstream_->handler_;
      on_headers = upstream_->call_handler_on_headers_;
      auto_continue = upstream_->auto_continue_;
    }
    HttpRequest& request = parser_.mutable_request();
    request.connection_id = id_;
    if (!on_headers) {
      if (auto_continue && !parser_.message_complete() && ExpectsContinue(request)) {
        Send("HTTP/1.1 100 Continue\r\n\r\n");
      }
      parsed = ParseUntil(Parsed::kMessage, timeout_);
      if (parsed == Parsed::kError && !parser_.error().empty()) {
        upstream_->NoteParseError(parser_.error());
        Send(kBadRequest);
        return;
      }
      if (parsed != Parsed::kMessage) {
        upstream_->Record(request);  // truncated: logged (complete == false), not handled
        return;
      }
    }
    log_index_ = upstream_->Record(request);
    if (handler) handler(request, *this);
    if (!parser_.message_complete() && serving_ && fd_ >= 0) {
      // The handler answered without reading the body: read it, to find the next request.
      parsed = ParseUntil(Parsed::kMessage, timeout_);
      upstream_->UpdateRecord(log_index_, request);
      if (parsed != Parsed::kMessage) return;
    } else if (on_headers) {
      upstream_->UpdateRecord(log_index_, request);
    }
    if (!parser_.message_complete()) return;
    if (request.upgrade || !request.keep_alive) return;  // not HTTP any more, or asked to close
  }
}

void UpstreamConn::Finish() {
  if (fd_ < 0) return;
  linger lg{};
  socklen_t len = sizeof(lg);
  bool reset = ::getsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, &len) == 0 && lg.l_onoff != 0 &&
               lg.l_linger == 0;
  if (!reset) {
    ::shutdown(fd_, SHUT_WR);
    auto deadline = Clock::now() + kLingerWait;
    char buf[4096];
    while (true) {
      auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      if (left.count() <= 0 || RecvWithTimeout(fd_, buf, sizeof(buf), left) <= 0) break;
    }
  }
  std::lock_guard<std::mutex> lock(slot_->mu);
  ::close(fd_);
  slot_->fd = -1;
  fd_ = -1;
}

// --- TestUpstream ---

TestUpstream::TestUpstream() {
  handler_ = [](const HttpRequest& request, UpstreamConn& conn) {
    conn.SendResponse(200, "ok " + request.target);
  };
}

TestUpstream::~TestUpstream() { Stop(); }

bool TestUpstream::Start() {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return false;
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (!Listen(fd, &addr, sizeof(addr))) return false;
  sockaddr_in bound{};
  socklen_t len = sizeof(bound);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len);
  port_ = ntohs(bound.sin_port);
  return true;
}

bool TestUpstream::StartUnix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return false;
  std::memcpy(addr.sun_path, path.data(), path.size());
  ::unlink(path.c_str());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return false;
  if (!Listen(fd, &addr, sizeof(addr))) return false;
  unix_path_ = path;
  return true;
}

bool TestUpstream::Listen(int fd, const void* addr, unsigned addr_len) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (listen_fd_ >= 0 || stopping_) {
      ::close(fd);
      return false;
    }
  }
  if (::bind(fd, static_cast<const sockaddr*>(addr), addr_len) != 0 || ::listen(fd, 128) != 0 ||
      ::pipe2(wake_fds_, O_CLOEXEC) != 0) {
    std::fprintf(stderr, "TestUpstream: listen: %s\n", std::strerror(errno));
    ::close(fd);
    return false;
  }
  listen_fd_ = fd;
  accept_thread_ = std::thread(&TestUpstream::AcceptLoop, this);
  return true;
}

void TestUpstream::AcceptLoop() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fds_[0], POLLIN, 0}};
    int rc = ::poll(fds, 2, -1);
    if (rc < 0 && errno != EINTR) break;
    if (fds[1].revents != 0) break;  // Stop()
    if (rc <= 0 || fds[0].revents == 0) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;  // EAGAIN (another wakeup), ECONNABORTED, EINTR: poll again
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));  // fails harmlessly on unix
    std::vector<std::unique_ptr<Connection>> finished;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) {
        ::close(fd);
        break;
      }
      for (auto it = connections_.begin(); it != connections_.end();) {
        if ((*it)->done.load()) {
          finished.push_back(std::move(*it));
          it = connections_.erase(it);
        } else {
          ++it;
        }
      }
      auto connection = std::make_unique<Connection>();
      connection->fd = fd;
      connection->id = accepted_.load() + 1;
      ++accepted_;
      ++open_;
      connection->thread = std::thread(&TestUpstream::ServeConnection, this, connection.get());
      connections_.push_back(std::move(connection));
    }
    changed_.notify_all();
    for (auto& connection : finished) connection->thread.join();
  }
}

void TestUpstream::ServeConnection(Connection* connection) {
  {
    UpstreamConn conn(this, connection);
    RawConnHandler raw;
    {
      std::lock_guard<std::mutex> lock(mu_);
      raw = raw_handler_;
    }
    try {
      if (raw) {
        raw(conn);
      } else {
        conn.ServeRequests();
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "TestUpstream: handler threw: %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "TestUpstream: handler threw\n");
    }
    conn.Finish();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    --open_;
  }
  changed_.notify_all();
  connection->done.store(true);
}

void TestUpstream::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();  // wakes WaitForGate
  if (wake_fds_[1] >= 0) {
    char byte = 0;
    while (::write(wake_fds_[1], &byte, 1) < 0 && errno == EINTR) {
    }
  }
  if (accept_thread_.joinable()) accept_thread_.join();
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
  }
  for (int& fd : wake_fds_) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  std::vector<std::unique_ptr<Connection>> connections;
  {
    std::lock_guard<std::mutex> lock(mu_);
    connections.swap(connections_);
    for (auto& connection : connections) {
      std::lock_guard<std::mutex> fd_lock(connection->mu);
      if (connection->fd >= 0) ::shutdown(connection->fd, SHUT_RDWR);
    }
  }
  for (auto& connection : connections) {
    if (connection->thread.joinable()) connection->thread.join();
  }
  if (!unix_path_.empty()) {
    ::unlink(unix_path_.c_str());
    unix_path_.clear();
  }
}

void TestUpstream::SetHandler(Handler handler) {
  std::lock_guard<std::mutex> lock(mu_);
  if (handler) {
    handler_ = std::move(handler);
  } else {
    handler_ = [](const HttpRequest& request, UpstreamConn& conn) {
      conn.SendResponse(200, "ok " + request.target);
    };
  }
  raw_handler_ = nullptr;
}

void TestUpstream::SetRawHandler(RawHandler handler) {
  if (!handler) {
    SetRawConnHandler(nullptr);
    return;
  }
  SetRawConnHandler([handler = std::move(handler)](UpstreamConn& conn) { handler(conn.fd()); });
}

void TestUpstream::SetRawConnHandler(RawConnHandler handler) {
  std::lock_guard<std::mutex> lock(mu_);
  raw_handler_ = std::move(handler);
}

void TestUpstream::set_call_handler_on_headers(bool on) {
  std::lock_guard<std::mutex> lock(mu_);
  call_handler_on_headers_ = on;
}

void TestUpstream::set_auto_continue(bool on) {
  std::lock_guard<std::mutex> lock(mu_);
  auto_continue_ = on;
}

std::string TestUpstream::last_parse_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_parse_error_;
}

std::vector<HttpRequest> TestUpstream::received() const {
  std::lock_guard<std::mutex> lock(mu_);
  return received_;
}

size_t TestUpstream::Record(const HttpRequest& request) {
  size_t index;
  {
    std::lock_guard<std::mutex> lock(mu_);
    received_.push_back(request);
    index = received_.size() - 1;
    ++requests_;
  }
  changed_.notify_all();
  return index;
}

void TestUpstream::UpdateRecord(size_t index, const HttpRequest& request) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (index < received_.size()) received_[index] = request;
  }
  changed_.notify_all();
}

void TestUpstream::NoteParseError(const std::string& error) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    last_parse_error_ = error;
    ++parse_errors_;
  }
  changed_.notify_all();
}

bool TestUpstream::WaitUntil(const std::function<bool()>& done, milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return changed_.wait_for(lock, timeout, done);
}

bool TestUpstream::WaitForRequests(int n, milliseconds timeout) {
  return WaitUntil([&] { return requests_.load() >= n; }, timeout);
}

bool TestUpstream::WaitForAccepted(int n, milliseconds timeout) {
  return WaitUntil([&] { return accepted_.load() >= n; }, timeout);
}

bool TestUpstream::WaitForOpenConnections(int n, milliseconds timeout) {
  return WaitUntil([&] { return open_.load() == n; }, timeout);
}

void TestUpstream::OpenGate(std::string_view name) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    gates_[std::string(name)] = true;
  }
  changed_.notify_all();
}

void TestUpstream::CloseGate(std::string_view name) {
  std::lock_guard<std::mutex> lock(mu_);
  gates_[std::string(name)] = false;
}

bool TestUpstream::WaitForGate(std::string_view name, milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  auto is_open = [&] {
    auto it = gates_.find(name);
    return it != gates_.end() && it->second;
  };
  changed_.wait_for(lock, timeout, [&] { return stopping_ || is_open(); });
  return !stopping_ && is_open();
}

}  // namespace lameduck::testing
