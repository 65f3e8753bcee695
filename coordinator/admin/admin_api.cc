#include "coordinator/admin/admin_api.h"

#include <nlohmann/json.hpp>

namespace lameduck::coordinator {
namespace {

AdminResponse Json(int status, const nlohmann::json& body) {
  AdminResponse response;
  response.status = status;
  // Configuration strings need not be UTF-8 (a path, an APP argument): replaced, never thrown.
  response.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  return response;
}

AdminResponse MethodNotAllowed(std::string allow) {
  AdminResponse response = Json(405, {{"error", "method not allowed"}, {"allow", allow}});
  response.allow = std::move(allow);
  return response;
}

bool QueryHas(std::string_view query, std::string_view pair) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    if (query.substr(0, amp) == pair) return true;
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return false;
}

// Who asked, for the log: "kube-lifecycle/1.30 from 10.244.1.1" (kubelet's hooks).
std::string Caller(const AdminRequest& request) {
  std::string agent =
      request.user_agent.empty() ? "no User-Agent" : std::string(request.user_agent);
  return agent + " from " + std::string(request.peer);
}

}  // namespace

bool TokenMatches(std::string_view presented, std::string_view expected) {
  if (expected.empty()) return false;
  // Time depends on the presented length only, never on where the first difference is.
  unsigned char diff = presented.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < presented.size(); ++i) {
    diff |= static_cast<unsigned char>(presented[i] ^ expected[i % expected.size()]);
  }
  return diff == 0;
}

bool IsLoopback(std::string_view ip) {
  return ip.starts_with("127.") || ip == "::1" || ip.starts_with("::ffff:127.");
}

std::string AdminApi::SummaryBody(const DrainSummary& summary) {
  return summary.ToJson().dump() + "\n";
}

AdminResponse AdminApi::Handle(const AdminRequest& request, uint64_t now_ms) {
  std::string_view path = request.target;
  std::string_view query;
  if (size_t q = path.find('?'); q != std::string_view::npos) {
    query = path.substr(q + 1);
    path = path.substr(0, q);
  }
  bool get = request.method == "GET" || request.method == "HEAD";
  if (path == "/ready") {
    if (!get) return MethodNotAllowed("GET");
    return Ready(now_ms);
  }
  if (path == "/live") {
    if (!get) return MethodNotAllowed("GET");
    return Json(200, {{"status", "live"}, {"state", ToString(controller_.state())}});
  }
  if (path == "/status") {
    if (!get) return MethodNotAllowed("GET");
    return Status(now_ms);
  }
  if (path == "/metrics") {
    if (!get) return MethodNotAllowed("GET");
    AdminResponse response;
    response.content_type = "text/plain; version=0.0.4; charset=utf-8";
    response.body = MetricsText(now_ms);
    return response;
  }
  if (path == "/drain") return Drain(request, query);
  if (path == "/undrain") return Undrain(request);
  return Json(404, {{"error", "not found"},
                    {"paths", {"/ready", "/live", "/status", "/metrics", "/drain", "/undrain"}}});
}

// 503s say why: a probe's body shows in kubectl describe pod's events.
AdminResponse AdminApi::Ready(uint64_t now_ms) {
  std::string_view readiness = controller_.readiness();
  nlohmann::json body = {{"status", readiness}};
  if (readiness == "draining") {
    uint64_t start = controller_.drain_start_ms();
    body["since_ms"] = now_ms > start ? now_ms - start : 0;
    body["trigger"] = ToString(controller_.trigger());
    body["phase"] = ToString(controller_.phase());
  } else if (readiness != "ready") {
    body["upstream"] = config_.proxy.upstream.text;
  }
  return Json(readiness == "ready" ? 200 : 503, body);
}

std::optional<AdminResponse> AdminApi::Refuse(const AdminRequest& request, std::string_view path) {
  if (request.trusted_peer) return std::nullopt;
  const std::optional<std::string>& token = config_.admin_token;
  if (!token) {
    log_.Warn("admin.denied", {{"peer", request.peer},
                               {"path", path},
                               {"error",
                                "drain from a non-loopback address and no "
                                "--admin-token is configured"}});
    return Json(403, {{"error",
                       "the drain is accepted from loopback only; configure "
                       "--admin-token to allow it from elsewhere"}});
  }
  constexpr std::string_view kBearer = "Bearer ";
  std::string_view presented = request.authorization;
  if (presented.starts_with(kBearer) && TokenMatches(presented.substr(kBearer.size()), *token)) {
    return std::nullopt;
  }
  log_.Warn("admin.denied", {{"peer", request.peer},
                             {"path", path},
                             {"error", "missing or wrong Authorization: Bearer token"}});
  return Json(401, {{"error", "missing or wrong Authorization: Bearer token"}});
}

AdminResponse AdminApi::Undrain(const AdminRequest& request) {
  if (request.method != "POST") return MethodNotAllowed("POST");
  if (auto refused = Refuse(request, "/undrain")) return *refused;
  switch (controller_.CancelDrain(Caller(request))) {
    case coordinator::Undrain::kCancelled:
      return Json(200, {{"status", controller_.readiness()}, {"cancelled", true}});
    case coordinator::Undrain::kNotDraining:
      return Json(200, {{"status", controller_.readiness()}, {"cancelled", false}});
    case coordinator::Undrain::kTooLate:
      break;
    case coordinator::Undrain::kExiting:
      return Json(409, {{"error",
                         "cannot undrain: lameduck was told to exit (SIGTERM or SIGINT) or the app "
                         "has exited; the drain goes on"},
                        {"state", ToString(controller_.state())},
                        {"phase", ToString(controller_.phase())}});
  }
  return Json(409, {{"error",
                     "too late to undrain: the listeners are closed (a drain can be cancelled "
                     "only in its accept grace)"},
                    {"state", ToString(controller_.state())},
                    {"phase", ToString(controller_.phase())}});
}

AdminResponse AdminApi::Drain(const AdminRequest& request, std::string_view query) {
  bool wait = QueryHas(query, "wait=1") || QueryHas(query, "wait=true");
  // kubelet's httpGet preStop hook can only send GET: GET is accepted when it waits.
  if (request.method != "POST" && !(request.method == "GET" && wait)) {
    return MethodNotAllowed(wait ? "GET, POST" : "POST");
  }
  if (auto refused = Refuse(request, "/drain")) return *refused;
  Trigger trigger = wait ? Trigger::kAdminWait : Trigger::kAdminPost;
  if (request.user_agent.starts_with("lameduck")) trigger = Trigger::kCommand;
  controller_.OnTrigger(trigger, Caller(request));
  if (wait) {
    AdminResponse response;
    response.wait_for_drain = true;
    return response;
  }
  return Json(
      202, {{"status", ToString(controller_.state())}, {"phase", ToString(controller_.phase())}});
}

AdminResponse AdminApi::Status(uint64_t now_ms) {
  proxy::ProxyCounts counts = proxy_.counts();
  nlohmann::json body = {
      {"version", LAMEDUCK_VERSION},
      {"state", ToString(controller_.state())},
      {"phase", ToString(controller_.phase())},
      {"readiness", controller_.readiness()},
      {"uptime_ms", now_ms - start_ms_},
      {"connections", counts.connections},
      {"in_flight", counts.in_flight},
      {"idle", counts.idle},
      {"upgraded", counts.upgraded},
      {"http2_connections", counts.http2_connections},
      {"http2_streams", counts.http2_streams},
      {"long_lived", LongLivedJson(counts)},
      {"responses_total", metrics_.responses_total()},
      {"last_drain",
       controller_.last_drain() ? controller_.last_drain()->ToJson() : nlohmann::json(nullptr)},
      {"config", ToJson(config_)},
  };
  return Json(200, body);
}

std::string AdminApi::MetricsText(uint64_t now_ms) {
  Metrics::Gauges gauges;
  gauges.counts = proxy_.counts();
  gauges.state = ToString(controller_.state());
  gauges.ready = controller_.ready();
  gauges.uptime_seconds = static_cast<double>(now_ms - start_ms_) / 1000.0;
  gauges.drains_total = controller_.drains_total();
  gauges.forced_total = controller_.forced_total();
  if (const auto& last = controller_.last_drain()) {
    gauges.last_drain_seconds = static_cast<double>(last->duration_ms) / 1000.0;
    gauges.last_drain_forced = last->forced;
  }
  return metrics_.Render(gauges);
}

}  // namespace lameduck::coordinator
