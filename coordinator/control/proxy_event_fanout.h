// ProxyEventFanout: the proxy reports to one ProxyEvents; this passes each event on, in a fixed
// order, to those that hear it: Metrics counts first, then the DrainController decides (a close
// may end the drain, and the drain's summary reads the counters). Nothing else hears the proxy.
#pragma once

#include "coordinator/control/drain_controller.h"
#include "coordinator/control/metrics.h"
#include "proxy/proxy_events.h"

namespace lameduck::coordinator {

class ProxyEventFanout final : public proxy::ProxyEvents {
 public:
  // Both may be built after this (main builds the proxy before the controller that drives it);
  // no event arrives before the loop runs.
  ProxyEventFanout(Metrics& metrics, DrainController& controller)
      : metrics_(metrics), controller_(controller) {}

  void OnConnectionOpened() override {
    metrics_.OnConnectionOpened();
    controller_.OnConnectionOpened();
  }
  void OnConnectionClosed() override { controller_.OnConnectionClosed(); }
  void OnConnectionFinished() override { controller_.OnConnectionFinished(); }
  void OnResponseComplete(int status, proxy::Protocol protocol) override {
    metrics_.OnResponseComplete(status, protocol);
  }
  void OnProxyError(proxy::ProxyError error) override { metrics_.OnProxyError(error); }
  void OnLongLivedEnded(proxy::LongLivedKind kind, proxy::LongLivedEnd how) override {
    metrics_.OnLongLivedEnded(kind, how);
    controller_.OnLongLivedEnded(kind, how);
  }

 private:
  Metrics& metrics_;
  DrainController& controller_;
};

}  // namespace lameduck::coordinator
