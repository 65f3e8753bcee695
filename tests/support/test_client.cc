#include "tests/support/test_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

namespace lameduck::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr size_t kReadChunk = 64 * 1024;

int PollTimeout(milliseconds timeout) {
  if (timeout.count() < 0) return 0;
  if (timeout.count() > 24 * 3600 * 1000) return 24 * 3600 * 1000;
  return static_cast<int>(timeout.count());
}

// Waits until fd has `events` (or an error/hangup). false with errno = ETIMEDOUT on timeout.
bool WaitFor(int fd, short events, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    pollfd pfd{fd, events, 0};
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    // Round up so a sub-millisecond remainder still polls once instead of spinning.
    int rc = ::poll(&pfd, 1, PollTimeout(left + milliseconds(1)));
    if (rc > 0) return true;
    if (rc < 0 && errno != EINTR) return false;
    if (rc == 0 && Clock::now() >= deadline) {
      errno = ETIMEDOUT;
      return false;
    }
  }
}

std::string Printable(std::string_view bytes, size_t max) {
  std::string out;
  for (char c : bytes.substr(0, max)) {
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c >= 0x20 && c < 0x7f) {
      out += c;
    } else {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "\\x%02x", static_cast<unsigned char>(c));
      out += hex;
    }
  }
  if (bytes.size() > max) out += "...";
  return out;
}

}  // namespace

ssize_t RecvWithTimeout(int fd, char* buf, size_t max, milliseconds timeout) {
  while (true) {
    if (!WaitFor(fd, POLLIN, timeout)) return -1;
    ssize_t n = ::recv(fd, buf, max, MSG_DONTWAIT);
    if (n >= 0) return n;
    if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
    return -1;
  }
}

bool SendAllWithTimeout(int fd, std::string_view bytes, milliseconds timeout) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!WaitFor(fd, POLLOUT, timeout)) return false;
      continue;
    }
    return false;
  }
  return true;
}

void SetLingerZero(int fd) {
  linger lg{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

std::unique_ptr<TestClient> TestClient::Connect(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  return ConnectTo(fd, &addr, sizeof(addr), "127.0.0.1:" + std::to_string(port));
}

std::unique_ptr<TestClient> TestClient::ConnectUnix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    std::fprintf(stderr, "TestClient::ConnectUnix(%s): path too long\n", path.c_str());
    return nullptr;
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  return ConnectTo(fd, &addr, sizeof(addr), "unix:" + path);
}

std::unique_ptr<TestClient> TestClient::ConnectTo(int fd, const void* addr, unsigned addr_len,
                                                  const std::string& what) {
  auto fail = [&](const char* step, int err) -> std::unique_ptr<TestClient> {
    std::fprintf(stderr, "TestClient: connect to %s: %s: %s\n", what.c_str(), step,
                 std::strerror(err));
    if (fd >= 0) ::close(fd);
    return nullptr;
  };
  if (fd < 0) return fail("socket", errno);
  // Non-blocking connect so a listener that never accepts cannot stall the test.
  int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  int rc = ::connect(fd, static_cast<const sockaddr*>(addr), addr_len);
  if (rc < 0 && errno != EINPROGRESS && errno != EINTR) return fail("connect", errno);
  if (rc < 0) {
    if (!WaitFor(fd, POLLOUT, kDefaultTimeout)) return fail("connect", errno);
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return fail("connect", err);
  }
  ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);  // blocking, for tests that use fd() directly
  return std::unique_ptr<TestClient>(new TestClient(fd));
}

TestClient::~TestClient() { Close(); }

void TestClient::NoteError(const std::string& what, int err) {
  if (err == ECONNRESET || err == EPIPE) saw_reset_ = true;
  if (err == ETIMEDOUT) {
    last_error_ = what + ": timed out after " + std::to_string(timeout_.count()) + " ms";
  } else {
    last_error_ = what + ": " + std::strerror(err);
  }
}

bool TestClient::Send(std::string_view bytes) {
  if (fd_ < 0) {
    last_error_ = "Send: connection already closed by this side";
    return false;
  }
  if (SendAllWithTimeout(fd_, bytes, timeout_)) return true;
  NoteError("Send", errno);
  return false;
}

TestClient::ReadStatus TestClient::ReadSome(size_t max, milliseconds timeout) {
  if (fd_ < 0) {
    last_error_ = "connection already closed by this side";
    return ReadStatus::kError;
  }
  char buf[kReadChunk];
  ssize_t n = RecvWithTimeout(fd_, buf, std::min(max, sizeof(buf)), timeout);
  if (n > 0) {
    buffer_.append(buf, static_cast<size_t>(n));
    return ReadStatus::kData;
  }
  if (n == 0) {
    saw_eof_ = true;
    return ReadStatus::kEof;
  }
  int err = errno;
  if (err == ETIMEDOUT) return ReadStatus::kTimeout;
  if (err == ECONNRESET) saw_reset_ = true;
  errno = err;
  return ReadStatus::kError;
}

std::optional<HttpResponse> TestClient::ReadResponse(bool head_request) {
  MessageParser parser(MessageParser::Kind::kResponse);
  parser.Reset(head_request);
  std::string seen;  // the start of this response, for error messages
  while (true) {
    if (!buffer_.empty()) {
      if (seen.size() < 200) seen += buffer_.substr(0, 200 - seen.size());
      MessageParser::FeedResult fed = parser.Feed(buffer_);
      if (fed.status == MessageParser::Status::kMessageComplete) {
        buffer_.erase(0, fed.consumed);
        last_error_.clear();
        return std::move(parser.mutable_response());
      }
      if (fed.status == MessageParser::Status::kError) {
        last_error_ =
            "ReadResponse: parse error " + parser.error() + " in \"" + Printable(seen, 200) + "\"";
        buffer_.clear();
        return std::nullopt;
      }
      buffer_.clear();  // every byte went into the parser
    }
    switch (ReadSome(kReadChunk, timeout_)) {
      case ReadStatus::kData:
        continue;
      case ReadStatus::kEof:
        if (parser.Finish() == MessageParser::Status::kMessageComplete) {
          last_error_.clear();
          return std::move(parser.mutable_response());
        }
        last_error_ = parser.started()
                          ? "ReadResponse: EOF inside the response (" + parser.error() +
                                ") after \"" + Printable(seen, 200) + "\""
                          : std::string("ReadResponse: EOF before any response");
        return std::nullopt;
      case ReadStatus::kTimeout:
        last_error_ = "ReadResponse: timed out after " + std::to_string(timeout_.count()) +
                      " ms; got \"" + Printable(seen, 200) + "\"";
        return std::nullopt;
      case ReadStatus::kError:
        NoteError("ReadResponse", errno);
        if (!seen.empty()) last_error_ += " after \"" + Printable(seen, 200) + "\"";
        return std::nullopt;
    }
  }
}

std::string TestClient::ReadRaw(size_t max, milliseconds timeout) {
  if (buffer_.empty()) {
    ReadStatus status = ReadSome(max, timeout);
    if (status == ReadStatus::kError) NoteError("ReadRaw", errno);
    if (status == ReadStatus::kTimeout) last_error_ = "ReadRaw: timed out";
    if (status == ReadStatus::kEof) last_error_ = "ReadRaw: EOF";
  }
  std::string out = buffer_.substr(0, max);
  buffer_.erase(0, out.size());
  return out;
}

std::string TestClient::ReadRawExactly(size_t n, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (buffer_.size() < n) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      last_error_ = "ReadRawExactly: timed out with " + std::to_string(buffer_.size()) + " of " +
                    std::to_string(n) + " bytes";
      break;
    }
    ReadStatus status = ReadSome(n - buffer_.size(), left);
    if (status == ReadStatus::kData) continue;
    if (status == ReadStatus::kError) NoteError("ReadRawExactly", errno);
    if (status == ReadStatus::kTimeout) {
      last_error_ = "ReadRawExactly: timed out with " + std::to_string(buffer_.size()) + " of " +
                    std::to_string(n) + " bytes";
    }
    if (status == ReadStatus::kEof) last_error_ = "ReadRawExactly: EOF";
    break;
  }
  std::string out = buffer_.substr(0, n);
  buffer_.erase(0, out.size());
  return out;
}

bool TestClient::WaitForClose(milliseconds timeout) {
  buffer_.clear();
  auto deadline = Clock::now() + timeout;
  while (true) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    ReadStatus status = ReadSome(kReadChunk, std::max(left, milliseconds(0)));
    buffer_.clear();
    switch (status) {
      case ReadStatus::kData:
        continue;
      case ReadStatus::kEof:
        return true;
      case ReadStatus::kTimeout:
        last_error_ = "WaitForClose: still open after " + std::to_string(timeout.count()) + " ms";
        return false;
      case ReadStatus::kError: {
        int err = errno;
        NoteError("WaitForClose", err);
        return err == ECONNRESET || err == EPIPE;
      }
    }
  }
}

void TestClient::ShutdownWrite() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

void TestClient::Reset() {
  if (fd_ < 0) return;
  SetLingerZero(fd_);
  Close();
}

void TestClient::Close() {
  if (fd_ < 0) return;
  ::close(fd_);
  fd_ = -1;
}

std::optional<HttpResponse> Get(int port, std::string_view path) {
  auto client = TestClient::Connect(port);
  if (client == nullptr) return std::nullopt;
  std::string request = "GET " + std::string(path) +
                        " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                        "\r\nConnection: close\r\n\r\n";
  if (!client->Send(request)) {
    std::fprintf(stderr, "Get(%d, %.*s): %s\n", port, static_cast<int>(path.size()), path.data(),
                 client->last_error().c_str());
    return std::nullopt;
  }
  std::optional<HttpResponse> response = client->ReadResponse();
  if (!response) {
    std::fprintf(stderr, "Get(%d, %.*s): %s\n", port, static_cast<int>(path.size()), path.data(),
                 client->last_error().c_str());
  }
  return response;
}

std::string ReadThroughHead(int fd, std::chrono::milliseconds timeout) {
  std::string bytes;
  char buf[4096];
  while (bytes.find("\r\n\r\n") == std::string::npos) {
    ssize_t n = RecvWithTimeout(fd, buf, sizeof(buf), timeout);
    if (n <= 0) return "";
    bytes.append(buf, static_cast<size_t>(n));
  }
  return bytes;
}

}  // namespace lameduck::testing
