#include "coordinator/control/readiness_checker.h"

namespace lameduck::coordinator {

ReadinessChecker::ReadinessChecker(uv_loop_t* loop, const Config& config,
                                   std::function<void(bool)> on_result, Timing timing)
    : loop_(loop),
      config_(config),
      on_result_(std::move(on_result)),
      timing_(timing),
      client_(loop) {}

void ReadinessChecker::Start() {
  stopped_ = false;
  interval_.Init(loop_, uv_timer_init, this);
  uv_timer_start(
      interval_.get(),
      [](uv_timer_t* t) {
        if (auto* self = static_cast<ReadinessChecker*>(t->data)) self->Check();
      },
      0, static_cast<uint64_t>(timing_.interval.count()));
}

void ReadinessChecker::Stop() {
  stopped_ = true;
  interval_.Close();
  client_.Cancel();
}

void ReadinessChecker::Check() {
  if (client_.busy() || stopped_) return;
  HttpClient::Request request;
  request.address = config_.proxy.upstream;
  request.deadline = timing_.timeout;
  // Only the status matters: the body is not read.
  request.until = ResponseParser::Until::kHead;
  if (config_.upstream_ready) {
    request.bytes = "GET " + *config_.upstream_ready +
                    " HTTP/1.1\r\nHost: localhost\r\nUser-Agent: lameduck-readiness\r\n"
                    "Connection: close\r\n\r\n";
  }  // else a connect-only probe
  client_.Start(std::move(request), [this](HttpResult result) { Done(result); });
}

void ReadinessChecker::Done(const HttpResult& result) {
  if (stopped_) return;
  bool healthy =
      result.ok() && (!config_.upstream_ready || (result.status >= 200 && result.status <= 299));
  on_result_(healthy);
}

}  // namespace lameduck::coordinator
