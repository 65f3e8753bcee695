// ReadinessChecker: asks the upstream, once a second, whether it is there: a TCP (or unix)
// connection that completes within 1 s, and, with --upstream-ready PATH, a GET of PATH that
// answers 2xx within that second. Reports each result; the DrainController decides what it means.
// The exchange itself is HttpClient's.
#pragma once

#include <uv.h>

#include <chrono>
#include <functional>
#include <string>

#include "coordinator/config/config.h"
#include "coordinator/control/http_client.h"
#include "proxy/uv_handle.h"

namespace lameduck::coordinator {

struct ReadinessTiming {
  std::chrono::milliseconds interval{1000};  // from one check's start to the next
  std::chrono::milliseconds timeout{1000};   // for one check, connect and answer
};

class ReadinessChecker {
 public:
  using Timing = ReadinessTiming;

  ReadinessChecker(uv_loop_t* loop, const Config& config, std::function<void(bool)> on_result,
                   Timing timing = {});
  void Start();  // the first check now, then every interval
  void Stop();   // no result is reported after this

 private:
  void Check();
  void Done(const HttpResult& result);

  uv_loop_t* loop_;
  const Config& config_;
  std::function<void(bool)> on_result_;
  Timing timing_;
  proxy::UvHandle<uv_timer_t> interval_;
  HttpClient client_;
  bool stopped_ = false;
};

}  // namespace lameduck::coordinator
