// HttpClient: one HTTP/1.x request on the loop, to a TCP or unix address, under one deadline:
// connect, write the request, parse the response (ResponseParser), call back once with the
// status, head and body, or with an error a person can act on (refused, timeout, malformed).
// The coordinator's one HTTP client: the upstream readiness check and the --app-exit-url POST.
//
// One exchange at a time; no keep-alive, redirects, retries, name resolution or TLS. The
// request bytes are the caller's, whole (it says Connection: close). Errors do not name the
// address: the caller names what it asked ("--app-exit-url URL: " + message).
//
// The close contract: the socket lives in an Exchange that is freed only in the socket's close
// callback; Cancel() and the destructor detach it, and no callback reaches the owner after that.
#pragma once

#include <uv.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "coordinator/control/response_parser.h"
#include "proxy/address.h"
#include "proxy/message_head.h"

namespace lameduck::coordinator {

enum class HttpError {
  kNone,
  kConnect,    // the connection failed: refused, unreachable, no such socket file
  kSend,       // the request could not be written
  kTimeout,    // the deadline passed first
  kClosed,     // the peer closed or reset before a whole response
  kMalformed,  // what came back is not an HTTP/1.x response, or passed a limit
};
std::string_view ToString(HttpError error);

struct HttpResult {
  HttpError error = HttpError::kNone;
  std::string message;      // empty on success; else what went wrong, for a person
  int status = 0;           // the response's; 0 without one (and for a connect-only probe)
  std::string status_line;  // "HTTP/1.1 200 OK", as received
  proxy::HeadCollector head;
  std::string body;  // empty with ResponseParser::Until::kHead
  bool ok() const { return error == HttpError::kNone; }
};

class HttpClient {
 public:
  struct Request {
    proxy::Address address;
    // The whole request, head and body. Empty: a reachability probe, done once connected.
    std::string bytes;
    std::chrono::milliseconds deadline{1000};  // from Start to the response
    ResponseParser::Until until = ResponseParser::Until::kMessage;
    ResponseParser::Limits limits;
  };
  using Callback = std::function<void(HttpResult)>;

  explicit HttpClient(uv_loop_t* loop) : loop_(loop) {}
  ~HttpClient() { Cancel(); }
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Starts the exchange; a call while one is under way cancels that one first. `done` runs
  // once, from the loop, or before Start returns if the socket cannot even be made. It may
  // destroy the client.
  void Start(Request request, Callback done);
  void Cancel();  // idempotent; `done` will not run
  bool busy() const { return exchange_ != nullptr; }

 private:
  class Exchange;
  friend class Exchange;

  uv_loop_t* loop_;
  Exchange* exchange_ = nullptr;  // the one under way; it owns itself until its socket closed
  Callback done_;
};

}  // namespace lameduck::coordinator
