// ReadinessChecker: asks the upstream, once a second, whether it is there: a TCP (or unix)
// connection that completes within 1 s, and, with --upstream-ready PATH, a GET of PATH that
// answers 2xx within that second. Reports each result; the DrainController decides what it means.
#pragma once

#include <uv.h>

#include <functional>
#include <string>

#include "coordinator/config/config.h"
#include "proxy/uv_handle.h"

namespace lameduck::coordinator {

class ReadinessChecker {
 public:
  static constexpr uint64_t kIntervalMs = 1000;
  static constexpr uint64_t kTimeoutMs = 1000;

  ReadinessChecker(uv_loop_t* loop, const Config& config, std::function<void(bool)> on_result);
  void Start();  // the first check now, then every kIntervalMs
  void Stop();

 private:
  void Check();
  void Done(bool healthy);
  void OnConnected(int status);
  void OnRead(ssize_t nread);

  uv_loop_t* loop_;
  const Config& config_;
  std::function<void(bool)> on_result_;
  proxy::UvHandle<uv_timer_t> interval_;
  proxy::UvHandle<uv_timer_t> timeout_;
  proxy::UvHandle<uv_tcp_t> tcp_;
  proxy::UvHandle<uv_pipe_t> pipe_;
  uv_connect_t connect_req_;
  uv_write_t write_req_;
  std::string request_;
  std::string response_;
  char buffer_[512];
  bool in_flight_ = false;
  bool stopped_ = false;
};

}  // namespace lameduck::coordinator
