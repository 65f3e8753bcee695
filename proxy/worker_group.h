// WorkerGroup: the data plane on --workers loops. The Proxy on the main loop is worker 0: the
// admin API and the drain run beside it as they do with one worker, and with one worker it is
// all there is (no thread, no handle added). Workers 1..N-1 each run a Proxy of their own (its
// connections, pools and timers) on a loop of their own, in a thread of their own, listening
// on the same TCP ports: every listener sets SO_REUSEPORT and the kernel spreads new
// connections over them. Unix-socket listeners stay with worker 0.
//
// The coordinator drives all of them through this DrainTarget. A drain step reaches each
// worker over its uv_async_t and waits for the worker's answer (drain steps are rare; the
// workers never wait for the main loop). Their events come back to the main loop, in order, over
// a queue and one uv_async_t, and reach the ProxyEvents given here as if worker 0 had sent them.
// Each event carries its worker's counts as they were right after it (and a worker whose counts
// changed without an event sends them at the end of its loop's turn), and counts() sums them as
// of the events delivered so far: the counts the main loop sees always agree with the events it
// has heard, so a drain never ends on counts whose closes and responses its summary has not
// counted. counts() has no side effect: a handler that asks for them is never re-entered.
#pragma once

#include <uv.h>

#include <memory>
#include <mutex>
#include <vector>

#include "proxy/drain_target.h"
#include "proxy/proxy.h"
#include "proxy/proxy_events.h"
#include "proxy/proxy_options.h"
#include "proxy/result.h"
#include "proxy/uv_handle.h"

namespace lameduck::proxy {

class WorkerGroup final : public DrainTarget {
 public:
  WorkerGroup(uv_loop_t* loop, ProxyOptions options, ProxyEvents& events, int workers);
  ~WorkerGroup() override;  // Shutdown(), if it was not called
  WorkerGroup(const WorkerGroup&) = delete;
  WorkerGroup& operator=(const WorkerGroup&) = delete;

  // Binds worker 0's listeners, then starts the other workers on the ports it got (port 0
  // resolved) and waits until each has bound too. An error names the address; on failure
  // nothing is left listening.
  Result<void> Start();
  std::vector<int> listening_ports() const { return main_.listening_ports(); }
  int workers() const { return static_cast<int>(others_.size()) + 1; }
  ProxyCounts worker_counts(int worker) const;  // 0 .. workers() - 1

  // DrainTarget: each reaches every worker.
  void StopAccepting() override;
  void CloseAfterCurrentResponse() override;
  void ResumeKeepAlive() override;
  SpreadStep CloseSpread(size_t step, size_t steps) override;
  size_t ForceCloseAll() override;
  ProxyCounts counts() const override;
  ProxyCounts counts_now() override;

  // For the end: worker 0's proxy is empty. Shutdown() first ends the other workers (each
  // closes what it holds, and its thread ends) and closes this group's own handle.
  bool empty() const { return main_.empty(); }
  void Shutdown();

 private:
  class Worker;
  struct Event {
    enum class Kind : uint8_t {
      kCounts,
      kOpened,
      kClosed,
      kFinished,
      kResponse,
      kError,
      kLongLived
    };
    Kind kind;
    size_t worker;       // 1 .. workers() - 1
    ProxyCounts counts;  // the worker's, right after the event
    Protocol protocol = Protocol::kHttp1;
    int status = 0;
    ProxyError error = ProxyError::kNone;
    LongLivedKind long_lived = LongLivedKind::kWebSocket;  // kLongLived
    LongLivedEnd how = LongLivedEnd::kClean;
  };
  // fn(Proxy&) on worker 0, then on each other one (waiting for each); the sum (+=).
  template <typename Fn>
  auto OnEveryWorker(Fn fn) -> decltype(fn(std::declval<Proxy&>()));
  void Post(const Event& event);  // from a worker's thread
  static void OnEvents(uv_async_t* async);
  void Deliver();  // the queued events, in order (from OnEvents, and at Shutdown)

  uv_loop_t* loop_;
  ProxyOptions options_;
  ProxyEvents& events_;
  int worker_count_;
  Proxy main_;
  std::vector<std::unique_ptr<Worker>> others_;
  UvHandle<uv_async_t> events_async_;
  std::mutex events_mutex_;
  std::vector<Event> queued_;      // under events_mutex_
  std::vector<ProxyCounts> seen_;  // per other worker: as of its last delivered event
};

}  // namespace lameduck::proxy
