// bench/load_generator.h: steady HTTP/1.1 load that behaves like Kubernetes clients behind
// kube-proxy, and counts honestly what the server did to it.
//
// Each worker thread is one keep-alive client (plain blocking-style sockets with poll deadlines;
// no libuv, so it stays independent of the code it measures). kube-proxy is modelled by an
// endpoint list of 127.0.0.1 ports that may change at run time: each NEW connection takes the
// next endpoint of the CURRENT list (round robin across workers), while an open connection stays
// pinned to its endpoint even after the endpoint is removed (conntrack), until the server closes
// it. With the list empty, a worker that needs a new connection waits: in a cluster its traffic
// would now go to other pods, which this generator does not model.
//
// Not a benchmark: the load is paced by a think time and is meant to be steady, not saturating.
// Not a general client: GET only, no pipelining, no TLS, 127.0.0.1 only.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace lameduck::bench {

struct LoadOptions {
  std::vector<int> endpoints;  // 127.0.0.1 ports; SetEndpoints() changes them later
  int connections = 16;        // worker threads, one keep-alive connection each
  // The share of requests that are GET /slow?ms=N, N uniform in [slow_min, slow_max].
  double slow_fraction = 0.1;
  std::chrono::milliseconds slow_min{1000};
  std::chrono::milliseconds slow_max{2000};
  // The share of requests sent with `Connection: close`, the client's next one on a new
  // connection (to whichever endpoint is next): clients that do not keep connections, the churn
  // that tells a draining pod whether its routers still send it anything.
  double close_fraction = 0;
  std::chrono::milliseconds think{10};  // pause after each request, per worker
  // Pause after a failed request instead. Clients back off rather than spin: a refused connect
  // takes microseconds, and without this a dead endpoint would be hit ten times as often as a
  // live one, and the failure count would measure the loop's speed instead of the server.
  std::chrono::milliseconds failure_pause{100};
  // From the start of a request (connecting included, a retry included) to its complete response.
  std::chrono::milliseconds request_timeout{10000};
  // Zero: until Stop(). Otherwise no request starts later than this after Start().
  std::chrono::milliseconds max_duration{0};
};

// Every request ends in exactly one of ok, failed or rerouted, once the workers have stopped:
// sent == ok + failed + rerouted. In-flight requests are counted in sent only.
struct LoadStats {
  uint64_t sent = 0;  // requests begun: written, or failed while connecting
  uint64_t ok = 0;    // complete response with status 200-499
  uint64_t failed = 0;
  // Why requests failed; these add up to failed.
  uint64_t refused = 0;       // connect refused
  uint64_t reset = 0;         // connection reset (at connect, while sending or waiting)
  uint64_t eof = 0;           // the server closed before the response was complete
  uint64_t timeout = 0;       // no complete response within request_timeout
  uint64_t server_error = 0;  // complete response with status 500-599
  uint64_t other = 0;         // malformed response, a status outside 200-599, another socket error
  // GETs that failed on a reused keep-alive connection before any response byte, and were sent
  // once more on a new connection (RFC 9112 9.3.1). Their outcome is that of the second attempt.
  uint64_t retried = 0;
  // Retries that found the endpoint list empty: in a cluster they go to another pod. Counted
  // apart from ok and failed, because this generator cannot say how they would have ended.
  uint64_t rerouted = 0;
  uint64_t slow_sent = 0;
  uint64_t slow_ok = 0;
  uint64_t connections = 0;          // connections opened (connect succeeded)
  std::map<int, uint64_t> statuses;  // complete responses by status code
  std::map<int, uint64_t> by_port;   // requests begun, by endpoint port
};

class LoadGenerator {
 public:
  using Options = LoadOptions;
  using Stats = LoadStats;

  explicit LoadGenerator(LoadOptions options);
  ~LoadGenerator();  // Stop()
  LoadGenerator(const LoadGenerator&) = delete;
  LoadGenerator& operator=(const LoadGenerator&) = delete;

  void Start();  // starts the workers; once only
  // Asks the workers to stop, then joins them. A worker first finishes the request it has begun
  // (bounded by request_timeout), never abandoning one. Idempotent.
  void Stop();
  // Joins the workers without asking them to stop: returns once max_duration has passed and the
  // last requests have ended. With max_duration zero, returns only after Stop() from elsewhere.
  void Wait();
  // The kube-proxy view from now on; open connections are not affected.
  void SetEndpoints(std::vector<int> ports);
  LoadStats stats() const;  // a consistent snapshot; thread-safe

 private:
  class Worker;
  friend class Worker;

  enum class Outcome { kOk, kFailed, kRerouted };
  enum class Reason { kNone, kRefused, kReset, kEof, kTimeout, kServerError, kOther };

  // The port for a new connection, waiting while the list is empty; 0 when told to stop first
  // (or, with kForRetry, at once if the list is empty).
  enum class EndpointWait { kUntilAvailable, kForRetry };
  int NextEndpoint(EndpointWait wait);
  // Sleeps up to `duration`; false if stopping (or past max_duration) meanwhile.
  bool SleepUnlessStopping(std::chrono::milliseconds duration);
  bool ShouldStop() const;  // stop asked or max_duration passed: begin no new request

  void CountBegun(int port, bool slow);
  void CountConnection();
  void CountRetry();
  void CountEnd(Outcome outcome, Reason reason, int status, bool slow);

  const LoadOptions options_;
  std::chrono::steady_clock::time_point started_at_;

  mutable std::mutex mutex_;  // guards everything below
  std::condition_variable changed_;
  std::vector<int> endpoints_;
  uint64_t next_endpoint_ = 0;
  bool stopping_ = false;
  LoadStats stats_;

  std::mutex join_mutex_;  // Stop() and Wait() may race to join
  std::vector<std::thread> threads_;
};

// "4211 requests sent, 4211 ok, 0 failed (0 refused, 0 reset, 0 eof, 0 timeout, 0 5xx); 37 slow
// requests, 37 ok; 0 retried", naming other statuses, errors and reroutes when there are any.
std::string FormatSummary(const LoadStats& stats);

}  // namespace lameduck::bench
