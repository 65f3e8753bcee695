// EventLog: the one writer of lameduck's event log. One flat object per line on stdout: JSON
// (nlohmann/json) by default, or "ts level event key=value ..." for people. Event names are the
// stable ones of DESIGN.md ("Event log"). Not an access log: requests are never logged one by one.
#pragma once

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string_view>

#include "coordinator/config/config.h"

namespace lameduck::coordinator {

class EventLog {
 public:
  EventLog(std::FILE* out, LogFormat format, LogLevel level)
      : out_(out), format_(format), level_(level) {}

  // `fields` must be a JSON object (or null); its keys follow ts, level and event.
  void Emit(LogLevel level, std::string_view event, const nlohmann::json& fields = {});
  void Info(std::string_view event, const nlohmann::json& fields = {}) {
    Emit(LogLevel::kInfo, event, fields);
  }
  void Warn(std::string_view event, const nlohmann::json& fields = {}) {
    Emit(LogLevel::kWarn, event, fields);
  }
  void Error(std::string_view event, const nlohmann::json& fields = {}) {
    Emit(LogLevel::kError, event, fields);
  }
  bool enabled(LogLevel level) const { return level >= level_; }

  // RFC 3339 UTC with milliseconds: 2026-11-25T16:04:05.123Z
  static std::string Timestamp();

 private:
  std::FILE* out_;
  LogFormat format_;
  LogLevel level_;
};

}  // namespace lameduck::coordinator
