// ProxyRunner: a real Proxy on its own libuv loop and thread, for tests that talk to it over
// loopback with blocking clients. Everything that touches the Proxy runs on the loop thread
// through Call(); the destructor force-closes, runs the loop until every handle is gone (a
// leaked handle makes it hang, and the test time out) and joins the thread.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <uv.h>

#include <atomic>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "proxy/proxy.h"

namespace lameduck::testing {

// Counts what the proxy reports; thread-safe reads.
class RecordingEvents : public proxy::ProxyEvents {
 public:
  void OnConnectionOpened() override { ++opened; }
  void OnConnectionClosed() override { ++closed; }
  void OnResponseComplete(int status, proxy::Protocol) override {
    std::lock_guard lock(mu_);
    ++statuses_[status];
  }
  void OnProxyError(proxy::ProxyError error) override {
    std::lock_guard lock(mu_);
    ++errors_[error];
  }
  void OnLongLivedEnded(proxy::LongLivedKind kind, proxy::LongLivedEnd how) override {
    std::lock_guard lock(mu_);
    ++long_lived_[{kind, how}];
  }
  int long_lived_count(proxy::LongLivedKind kind, proxy::LongLivedEnd how) const {
    std::lock_guard lock(mu_);
    auto it = long_lived_.find({kind, how});
    return it == long_lived_.end() ? 0 : it->second;
  }
  int status_count(int status) const {
    std::lock_guard lock(mu_);
    auto it = statuses_.find(status);
    return it == statuses_.end() ? 0 : it->second;
  }
  int error_count(proxy::ProxyError error) const {
    std::lock_guard lock(mu_);
    auto it = errors_.find(error);
    return it == errors_.end() ? 0 : it->second;
  }
  std::atomic<int> opened{0};
  std::atomic<int> closed{0};

 private:
  mutable std::mutex mu_;
  std::map<int, int> statuses_;
  std::map<proxy::ProxyError, int> errors_;
  std::map<std::pair<proxy::LongLivedKind, proxy::LongLivedEnd>, int> long_lived_;
};

class ProxyRunner {
 public:
  // Starts the proxy; check error() (empty on success) and port().
  explicit ProxyRunner(proxy::ProxyOptions options) {
    // As in lameduck's main: libuv writes with write(2), so a client that went away must be an
    // EPIPE, not a signal that ends the test process.
    signal(SIGPIPE, SIG_IGN);
    std::promise<void> started;
    thread_ = std::thread([this, options = std::move(options), &started]() mutable {
      uv_loop_init(&loop_);
      uv_async_init(&loop_, &async_, &ProxyRunner::OnAsync);
      async_.data = this;
      proxy_ = std::make_unique<proxy::Proxy>(&loop_, std::move(options), events_);
      if (Result<void> started = proxy_->Start(); started.ok()) {
        port_ = proxy_->listening_ports().at(0);
      } else {
        error_ = started.error();
      }
      started.set_value();
      uv_run(&loop_, UV_RUN_DEFAULT);  // until the destructor closes the async handle
      uv_loop_close(&loop_);
    });
    started.get_future().wait();
  }

  ~ProxyRunner() {
    // Whatever the test did, every request and connection is in exactly one ending or still
    // open (proxy/drain_target.h, ProxyTally): the drain's accounting rests on it.
    if (error_.empty()) {
      EXPECT_TRUE(TallyBalances());
    }
    Call([this] {
      proxy_->ForceCloseAll();
      proxy_->StopAccepting();
      stopping_ = true;
    });
    // The loop thread finishes closing, destroys the proxy and closes the async handle.
    Post([this] { FinishIfEmpty(); });
    thread_.join();
  }

  const std::string& error() const { return error_; }
  int port() const { return port_; }
  RecordingEvents& events() { return events_; }

  // Runs fn on the loop thread and waits for it.
  template <typename Fn>
  auto Call(Fn fn) -> decltype(fn()) {
    using R = decltype(fn());
    std::promise<R> done;
    Post([&] {
      if constexpr (std::is_void_v<R>) {
        fn();
        done.set_value();
      } else {
        done.set_value(fn());
      }
    });
    return done.get_future().get();
  }

  proxy::ProxyCounts counts() {
    return Call([this] { return proxy_->counts(); });
  }
  proxy::Proxy& proxy() { return *proxy_; }  // only inside Call()

  // Requests that arrived = those that ended, by how, + those in flight; connections accepted
  // = those that ended, by how, + those open.
  ::testing::AssertionResult TallyBalances() {
    proxy::ProxyCounts counts = this->counts();
    const proxy::ProxyTally& t = counts.tally;
    uint64_t requests_out = t.requests_ended() + counts.in_flight;
    uint64_t connections_out = t.connections_ended() + counts.connections;
    if (t.requests == requests_out && t.accepted == connections_out) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure()
           << "requests " << t.requests << " arrived, " << requests_out << " ended or in flight ("
           << t.completed << " completed, " << t.completed_close << " with close, " << t.refused
           << " refused, " << t.aborted << " aborted, " << t.requests_forced << " forced, "
           << counts.in_flight << " in flight); connections " << t.accepted << " accepted, "
           << connections_out << " ended or open (" << counts.connections << " open)";
  }

 private:
  void Post(std::function<void()> fn) {
    {
      std::lock_guard lock(mu_);
      queue_.push_back(std::move(fn));
    }
    uv_async_send(&async_);
  }

  static void OnAsync(uv_async_t* async) {
    auto* self = static_cast<ProxyRunner*>(async->data);
    std::vector<std::function<void()>> work;
    {
      std::lock_guard lock(self->mu_);
      work.swap(self->queue_);
    }
    for (auto& fn : work) fn();
  }

  void FinishIfEmpty() {
    if (!proxy_->empty()) {
      // Connections die in their close callbacks: look again on the next loop turn.
      uv_timer_init(&loop_, &retry_timer_);
      retry_timer_.data = this;
      uv_timer_start(
          &retry_timer_,
          [](uv_timer_t* t) {
            uv_close(reinterpret_cast<uv_handle_t*>(t),
                     [](uv_handle_t* h) { static_cast<ProxyRunner*>(h->data)->FinishIfEmpty(); });
          },
          1, 0);
      return;
    }
    proxy_.reset();
    uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
  }

  uv_loop_t loop_;
  uv_async_t async_;
  uv_timer_t retry_timer_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::function<void()>> queue_;
  RecordingEvents events_;
  std::unique_ptr<proxy::Proxy> proxy_;
  std::string error_;
  int port_ = -1;
  bool stopping_ = false;
};

}  // namespace lameduck::testing
