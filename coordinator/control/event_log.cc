#include "coordinator/control/event_log.h"

#include <chrono>
#include <ctime>
#include <string>

namespace lameduck::coordinator {

std::string EventLog::Timestamp() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  size_t n = std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(text + n, sizeof(text) - n, ".%03dZ", static_cast<int>(ms % 1000));
  return text;
}

void EventLog::Emit(LogLevel level, std::string_view event, const nlohmann::json& fields) {
  if (!enabled(level)) return;
  std::string line;
  if (format_ == LogFormat::kJson) {
    nlohmann::ordered_json object;
    object["ts"] = Timestamp();
    object["level"] = ToString(level);
    object["event"] = event;
    if (fields.is_object()) {
      for (const auto& [key, value] : fields.items()) object[key] = value;
    }
    line = object.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else {
    line = Timestamp() + " " + std::string(ToString(level)) + " " + std::string(event);
    if (fields.is_object()) {
      for (const auto& [key, value] : fields.items()) {
        line += " " + key + "=" +
                (value.is_string()
                     ? value.get<std::string>()
                     : value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      }
    }
  }
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), out_);
  std::fflush(out_);
}

}  // namespace lameduck::coordinator
