// A scripted HTTP/1.1 origin for tests: a blocking server on 127.0.0.1 port 0 (or a unix socket),
// one thread per connection, that records every request it parses and answers through a handler.
// Plain sockets and threads on purpose: it must stay independent of the libuv code under test.
// It is not a real server: no TLS, no timeouts of its own on idle connections, one request at a
// time per connection (pipelined requests wait their turn, as RFC 9112 9.3.2 requires).
//
// Threading: handlers run on the connection's thread; everything on TestUpstream is thread-safe.
// A handler must block only on its connection (UpstreamConn reads, writes, WaitForGate), so that
// Stop() can wake it by shutting the sockets down; it may use EXPECT_* (not ASSERT_* for control
// flow it relies on: that only returns from the handler).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tests/support/http_message.h"
#include "tests/support/test_client.h"  // SetLingerZero, SendAllWithTimeout for raw handlers

namespace lameduck::testing {

class TestUpstream;
namespace upstream_internal {
struct Connection;  // TestUpstream's record of a connection: its fd under a mutex, for Stop()
}  // namespace upstream_internal

// The handler's view of one accepted connection. Valid only during the handler call, and only on
// the thread that made it.
class UpstreamConn {
 public:
  static constexpr std::chrono::milliseconds kDefaultTimeout{5000};

  UpstreamConn(const UpstreamConn&) = delete;
  UpstreamConn& operator=(const UpstreamConn&) = delete;

  // --- Writing. false if the peer is gone or stopped reading for timeout(). ---
  bool Send(std::string_view raw);
  // "HTTP/1.1 <status> <reason>", the given headers, then Content-Length (unless the headers
  // have Content-Length or Transfer-Encoding) and the body. No body nor Content-Length for
  // 1xx/204/304; for a HEAD request, Content-Length of `body` but no body. Adds
  // "Connection: close" when this connection will close after the request (the request asked
  // for it, or StopServing() was called) unless the headers have a Connection field.
  bool SendResponse(int status, std::string_view body, const HeaderList& headers = {});
  // Status line and headers as given plus the blank line; nothing added. For streaming scripts.
  bool SendHead(int status, const HeaderList& headers);
  bool SendChunk(std::string_view data);  // one chunk of a chunked body; "" sends nothing
  bool SendLastChunk(const HeaderList& trailers = {});  // "0\r\n", trailers, "\r\n"

  // --- Reading. ---
  // The whole body of the current request (what was already parsed plus the rest). Needed with
  // set_call_handler_on_headers(true); otherwise the body is already in the request. nullopt on
  // EOF, timeout or a parse error. The request passed to the handler is updated too.
  std::optional<std::string> ReadBody();
  // Up to max bytes, bytes read but not parsed first (a pipelined request, or what followed an
  // upgrade request), else what one read returns within timeout. "" on timeout/EOF/error.
  std::string ReadRaw(size_t max, std::chrono::milliseconds timeout);
  // Exactly n bytes unless EOF, error or the timeout (for the whole call) comes first.
  std::string ReadRawExactly(size_t n, std::chrono::milliseconds timeout);
  // true once the peer closed (EOF or RST) within timeout; reads and discards anything first.
  bool WaitForClose(std::chrono::milliseconds timeout);

  // --- Ending the connection. ---
  void StopServing();  // after this handler returns: FIN, no more requests read
  void Close();        // FIN now (shutdown(SHUT_WR)); no more requests read
  void Reset();        // RST now (SO_LINGER 0, close); the fd is gone, further calls fail

  // Blocks until the test calls TestUpstream::OpenGate(name); false on timeout or Stop().
  bool WaitForGate(std::string_view name = "",
                   std::chrono::milliseconds timeout = std::chrono::seconds(10));

  const HttpRequest& request() const;  // the current request (empty in raw mode)
  int id() const { return id_; }       // 1-based accept order, as HttpRequest::connection_id
  int fd() const { return fd_; }       // -1 after Reset(); do not close it
  bool serving() const { return serving_; }
  void set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }
  std::chrono::milliseconds timeout() const { return timeout_; }

 private:
  friend class TestUpstream;
  UpstreamConn(TestUpstream* upstream, upstream_internal::Connection* slot);

  enum class Parsed { kHead, kMessage, kEof, kTimeout, kError };
  void ServeRequests();
  // Parses until the current request's head (or whole message) is in, reading as needed; each
  // read waits up to `timeout`.
  Parsed ParseUntil(Parsed target, std::chrono::milliseconds timeout);
  enum class ReadStatus { kData, kEof, kTimeout, kError };
  ReadStatus ReadSome(size_t max, std::chrono::milliseconds timeout);
  void Finish();  // the connection's end: RST if asked, else FIN, drain briefly, close

  TestUpstream* upstream_;
  upstream_internal::Connection* slot_;
  int id_;
  int fd_;
  bool serving_ = true;
  std::chrono::milliseconds timeout_ = kDefaultTimeout;
  std::string pending_;  // read from the socket, not yet parsed or returned
  MessageParser parser_{MessageParser::Kind::kRequest};
  size_t log_index_ = 0;  // the current request's entry in TestUpstream::received()
};

class TestUpstream {
 public:
  using Handler = std::function<void(const HttpRequest&, UpstreamConn&)>;
  // Raw mode: no parsing. The function owns the conversation; when it returns the upstream
  // closes the socket (RST if SO_LINGER 0 was set, see SetLingerZero(), else FIN).
  using RawHandler = std::function<void(int fd)>;  // must not close fd
  using RawConnHandler = std::function<void(UpstreamConn&)>;

  TestUpstream();
  ~TestUpstream();  // Stop()
  TestUpstream(const TestUpstream&) = delete;
  TestUpstream& operator=(const TestUpstream&) = delete;

  bool Start();                             // 127.0.0.1, port 0; then port()
  bool StartUnix(const std::string& path);  // removes a stale socket file first
  // Closes the listener and every connection (shutdown, so blocked handlers wake up), joins all
  // threads, removes the unix socket file. Idempotent; no restart afterwards. Never call it
  // from a handler (it joins the handler's own thread).
  void Stop();
  int port() const { return port_; }
  const std::string& unix_path() const { return unix_path_; }

  // The default handler answers 200 with body "ok " + target. Setting a handler replaces any
  // raw handler, and the other way round. Takes effect for the next request or connection.
  void SetHandler(Handler handler);
  void SetRawHandler(RawHandler handler);
  void SetRawConnHandler(RawConnHandler handler);
  // Call the handler as soon as a request head is in (body unread: use conn.ReadBody()).
  // For Expect: 100-continue scripts, which then send the 100 themselves.
  void set_call_handler_on_headers(bool on);
  // Default true: a request with "Expect: 100-continue" and a body gets "HTTP/1.1 100 Continue"
  // before the body is read, like common servers. Not done with call_handler_on_headers.
  void set_auto_continue(bool on);

  // Counters, thread-safe.
  int accepted_connections() const { return accepted_.load(); }
  int open_connections() const { return open_.load(); }  // accepted and not yet closed
  // Requests logged in received(): handler calls, plus requests whose body never completed.
  int requests() const { return requests_.load(); }
  int parse_errors() const { return parse_errors_.load(); }  // answered 400 and closed
  std::string last_parse_error() const;
  // Every request head parsed, in arrival order, logged once the request is whole (with
  // call_handler_on_headers: as soon as the head is in; the body appears once read, by
  // ReadBody() or after the handler returns). A request whose body stopped short (EOF, reset,
  // timeout()) is logged with complete == false and never reaches the handler.
  std::vector<HttpRequest> received() const;

  // false on timeout.
  bool WaitForRequests(int n, std::chrono::milliseconds timeout);         // requests() >= n
  bool WaitForAccepted(int n, std::chrono::milliseconds timeout);         // accepted >= n
  bool WaitForOpenConnections(int n, std::chrono::milliseconds timeout);  // open == n

  // Gates let a test hold handlers (UpstreamConn::WaitForGate) until it says go. A gate stays
  // open until CloseGate; Stop() releases every waiter (which then gets false).
  void OpenGate(std::string_view name = "");
  void CloseGate(std::string_view name = "");
  bool WaitForGate(std::string_view name, std::chrono::milliseconds timeout);

 private:
  friend class UpstreamConn;
  using Connection = upstream_internal::Connection;

  bool Listen(int fd, const void* addr, unsigned addr_len);
  void AcceptLoop();
  void ServeConnection(Connection* connection);
  size_t Record(const HttpRequest& request);
  void UpdateRecord(size_t index, const HttpRequest& request);
  void NoteParseError(const std::string& error);
  bool WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout);

  int listen_fd_ = -1;
  int wake_fds_[2] = {-1, -1};  // a pipe: Stop() writes to end the accept loop's poll()
  int port_ = 0;
  std::string unix_path_;
  std::thread accept_thread_;

  std::atomic<int> accepted_{0};
  std::atomic<int> open_{0};
  std::atomic<int> requests_{0};
  std::atomic<int> parse_errors_{0};

  mutable std::mutex mu_;  // guards everything below; changed_ signals any change
  std::condition_variable changed_;
  bool stopping_ = false;
  Handler handler_;
  RawConnHandler raw_handler_;
  bool call_handler_on_headers_ = false;
  bool auto_continue_ = true;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::vector<HttpRequest> received_;
  std::string last_parse_error_;
  std::map<std::string, bool, std::less<>> gates_;
};

}  // namespace lameduck::testing
