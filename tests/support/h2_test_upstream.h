// A scripted h2c (HTTP/2 over cleartext, prior knowledge) app for tests: nghttp2 in the server
// role over blocking sockets, one thread per connection, independent of the libuv code under
// test. Each complete request goes to the handler, which says how to answer: a response with
// fields, body and trailers, a trailers-only response, a reset with a code, or to wait for a gate
// first (other streams go on meanwhile). It records the requests and the most streams it ever
// had open at once on one connection, and can advertise SETTINGS_MAX_CONCURRENT_STREAMS and send
// GOAWAY after a number of requests.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/http_message.h"

namespace lameduck::testing {

class H2TestUpstream {
 public:
  struct Request {
    std::string method, path, authority, scheme;
    HeaderList headers;  // regular fields, as received
    std::string body;
    HeaderList trailers;
    int connection_id = 0;
    std::string Header(std::string_view name) const { return FindHeader(headers, name); }
  };
  struct Reply {
    int status = 200;
    HeaderList headers;
    std::string body;
    HeaderList trailers;
    bool trailers_only = false;     // one HEADERS with END_STREAM: status and headers only
    uint32_t reset_code = 0;        // nonzero: RST_STREAM with it instead of a response
    std::string gate;               // nonempty: answer only once OpenGate(gate)
    bool reset_after_head = false;  // send the head, then RST_STREAM reset_code
  };
  using Handler = std::function<Reply(const Request&)>;

  H2TestUpstream();
  ~H2TestUpstream();  // Stop()
  bool Start();       // 127.0.0.1, port 0
  void Stop();
  int port() const { return port_; }

  void SetHandler(Handler handler);  // default: 200, body "ok " + path
  void set_max_concurrent_streams(uint32_t n) { max_concurrent_streams_ = n; }
  // GOAWAY (last stream = the n-th request's) right after the n-th request on the first
  // connection; streams above it are ignored, as RFC 9113 lets a server do.
  void set_goaway_after(int n) { goaway_after_ = n; }
  void OpenGate(const std::string& name);

  int requests() const { return requests_.load(); }
  int connections() const { return connections_.load(); }
  int max_open_streams() const { return max_open_streams_.load(); }  // on any one connection
  int resets_received() const { return resets_received_.load(); }
  std::vector<Request> received() const;
  bool WaitForRequests(int n, std::chrono::milliseconds timeout);

 private:
  friend struct H2UpstreamConnection;
  void AcceptLoop();
  void Serve(int fd, int id);
  bool GateOpen(const std::string& name);

  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread accept_thread_;
  std::vector<std::thread> threads_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  Handler handler_;
  std::vector<Request> received_;
  std::set<std::string> open_gates_;
  std::vector<int> fds_;
  uint32_t max_concurrent_streams_ = 100;
  int goaway_after_ = 0;
  std::atomic<int> requests_{0};
  std::atomic<int> connections_{0};
  std::atomic<int> max_open_streams_{0};
  std::atomic<int> resets_received_{0};
};

}  // namespace lameduck::testing
