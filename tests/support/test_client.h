// A blocking HTTP/1.1 client for tests: sends raw bytes, parses responses with llhttp, and never
// waits longer than its timeout, so a broken proxy fails a test instead of hanging it.
// It does not build requests (tests write the bytes they mean), retry, or follow anything.
// One thread at a time per TestClient.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "tests/support/http_message.h"

namespace lameduck::testing {

class TestClient {
 public:
  static constexpr std::chrono::milliseconds kDefaultTimeout{5000};

  // nullptr if the connection fails within kDefaultTimeout (the reason goes to stderr).
  static std::unique_ptr<TestClient> Connect(int port);  // 127.0.0.1:port
  static std::unique_ptr<TestClient> ConnectUnix(const std::string& path);

  ~TestClient();
  TestClient(const TestClient&) = delete;
  TestClient& operator=(const TestClient&) = delete;

  // Longest wait for any single read, write or connect step. Default kDefaultTimeout.
  void set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  // Writes all bytes. false on error (reset, closed) or when the peer stops reading for timeout().
  bool Send(std::string_view bytes);

  // Reads exactly one response; bytes after it stay buffered for the next call (pipelining).
  // 1xx responses come back on their own, like any other. head_request: the request was HEAD,
  // so no body is read whatever the headers say (pass true too for a 2xx answer to CONNECT:
  // the tunnel's bytes then stay for ReadRaw()). After a 101, the bytes that follow are left
  // for ReadRaw(). nullopt on EOF, reset, timeout or parse error before the response is whole;
  // last_error() says which.
  std::optional<HttpResponse> ReadResponse(bool head_request = false);

  // Up to max bytes: buffered ones first, else what one read returns within timeout.
  // "" on timeout, EOF or error.
  std::string ReadRaw(size_t max, std::chrono::milliseconds timeout);
  // Exactly n bytes unless EOF, error or the timeout (for the whole call) comes first.
  std::string ReadRawExactly(size_t n, std::chrono::milliseconds timeout);

  // true if the peer closed (EOF or reset) within timeout; reads and discards anything first.
  bool WaitForClose(std::chrono::milliseconds timeout);

  void ShutdownWrite();  // half-close: the peer reads EOF, this side can still read
  void Reset();          // SO_LINGER 0 + close: the peer gets an RST
  void Close();          // close() now; later calls fail

  bool SawEof() const { return saw_eof_; }
  bool SawReset() const { return saw_reset_; }  // ECONNRESET or EPIPE on any read or write
  const std::string& last_error() const { return last_error_; }
  int fd() const { return fd_; }
  size_t buffered() const { return buffer_.size(); }  // received, not yet returned

 private:
  explicit TestClient(int fd) : fd_(fd) {}
  static std::unique_ptr<TestClient> ConnectTo(int fd, const void* addr, unsigned addr_len,
                                               const std::string& what);

  enum class ReadStatus { kData, kEof, kTimeout, kError };
  // One recv() of up to max bytes appended to buffer_, after waiting up to timeout for input.
  ReadStatus ReadSome(size_t max, std::chrono::milliseconds timeout);
  void NoteError(const std::string& what, int err);

  int fd_ = -1;
  std::chrono::milliseconds timeout_ = kDefaultTimeout;
  std::string buffer_;  // received, not yet consumed by a response or ReadRaw
  bool saw_eof_ = false;
  bool saw_reset_ = false;
  std::string last_error_;
};

// One request on a fresh connection: "GET path" with Host and Connection: close. On failure the
// reason goes to stderr.
std::optional<HttpResponse> Get(int port, std::string_view path);

// Blocking socket primitives with a deadline, for TestClient, TestUpstream and raw handlers.
// They retry on EINTR and never raise SIGPIPE (MSG_NOSIGNAL). `timeout` bounds each wait for the
// socket to become ready, so a peer that keeps making progress is never cut off.
//
// Like recv(): bytes read (> 0), 0 on EOF, -1 with errno set (ETIMEDOUT when nothing came).
ssize_t RecvWithTimeout(int fd, char* buf, size_t max, std::chrono::milliseconds timeout);
// Writes every byte; false with errno set (ETIMEDOUT when the peer stopped reading).
bool SendAllWithTimeout(int fd, std::string_view bytes, std::chrono::milliseconds timeout);
// Reads until a message head has ended (a blank line); returns every byte read, which may go on
// past the head. "" on EOF, error or when a single wait exceeds timeout. For raw handlers.
std::string ReadThroughHead(int fd, std::chrono::milliseconds timeout);

// SO_LINGER {on, 0}: the next close() of fd sends an RST instead of a FIN.
void SetLingerZero(int fd);

}  // namespace lameduck::testing
