#include "tests/support/lameduck_process.h"

#include <algorithm>
#include <thread>

namespace lameduck::testing {
namespace {

bool HasOption(const std::vector<std::string>& args, const std::string& name) {
  return std::any_of(args.begin(), args.end(), [&](const std::string& arg) {
    return arg == name || arg.starts_with(name + "=");
  });
}

std::optional<nlohmann::json> ParseEvent(const std::string& line) {
  auto json = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return std::nullopt;
  return json;
}

}  // namespace

bool LameduckProcess::Start(std::vector<std::string> args, std::vector<std::string> app) {
  std::vector<std::string> argv = {LameduckBinary()};
  if (!HasOption(args, "--listen")) args.insert(args.end(), {"--listen", "127.0.0.1:0"});
  if (!HasOption(args, "--admin")) args.insert(args.end(), {"--admin", "127.0.0.1:0"});
  argv.insert(argv.end(), args.begin(), args.end());
  if (!app.empty()) {
    argv.push_back("--");
    argv.insert(argv.end(), app.begin(), app.end());
  }
  if (!process_.Start(argv)) return false;
  auto line = process_.WaitForLine("\"event\":\"start\"", std::chrono::seconds(5));
  if (!line) return false;
  auto start = ParseEvent(*line);
  if (!start) return false;
  port_ = (*start)["listen_ports"][0].get<int>();
  admin_port_ = (*start)["admin_port"].get<int>();
  seen_ = process_.output().size();
  return true;
}

std::optional<HttpResponse> LameduckProcess::Admin(const std::string& method,
                                                   const std::string& target,
                                                   const std::string& extra_headers) {
  auto client = TestClient::Connect(admin_port_);
  if (!client) return std::nullopt;
  client->set_timeout(std::chrono::seconds(30));
  std::string request = method + " " + target + " HTTP/1.1\r\nHost: admin\r\n" + extra_headers +
                        "Connection: close\r\n\r\n";
  if (!client->Send(request)) return std::nullopt;
  return client->ReadResponse(method == "HEAD");
}

bool LameduckProcess::WaitForReady(int status, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto response = Admin("GET", "/ready");
    if (response && response->status == status) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

std::optional<nlohmann::json> LameduckProcess::WaitForEvent(const std::string& event,
                                                            std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const auto& lines = process_.output();
    for (; seen_ < lines.size(); ++seen_) {
      auto json = ParseEvent(lines[seen_]);
      if (json && (*json)["event"] == event) {
        ++seen_;
        return json;
      }
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    if (!process_.ReadLine(left)) return std::nullopt;
  }
}

::testing::AssertionResult LameduckProcess::DrainsBalance() {
  for (const nlohmann::json& event : Events()) {
    if (event["event"] != "drain.complete") continue;
    if (!event.contains("accounting")) {
      return ::testing::AssertionFailure() << "drain.complete without accounting: " << event;
    }
    const nlohmann::json& requests = event["accounting"]["requests"];
    const nlohmann::json& connections = event["accounting"]["connections"];
    auto sum = [](const nlohmann::json& bucket, std::initializer_list<const char*> keys) {
      uint64_t total = 0;
      for (const char* key : keys) total += bucket.at(key).get<uint64_t>();
      return total;
    };
    uint64_t came = sum(requests, {"in_flight_at_start", "arrived"});
    uint64_t went = sum(requests, {"completed", "completed_close", "refused", "aborted", "forced"});
    uint64_t open = sum(connections, {"open_at_start", "accepted"});
    uint64_t closed =
        sum(connections, {"after_response", "idle", "long_lived", "by_client", "forced"});
    if (came != went || open != closed || requests["balanced"] != true ||
        connections["balanced"] != true) {
      return ::testing::AssertionFailure()
             << "requests " << came << " in, " << went << " out; connections " << open << " in, "
             << closed << " out: " << event["accounting"];
    }
  }
  return ::testing::AssertionSuccess();
}

std::vector<nlohmann::json> LameduckProcess::Events() {
  // Whatever it has written by now (and everything, once it has exited).
  while (process_.ReadLine(std::chrono::milliseconds(50))) {
  }
  std::vector<nlohmann::json> events;
  for (const auto& line : process_.output()) {
    if (auto json = ParseEvent(line)) events.push_back(*json);
  }
  return events;
}

}  // namespace lameduck::testing
