// The event log's two formats and its level filter.
#include "coordinator/control/event_log.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <string_view>

namespace lameduck::coordinator {
namespace {

std::string Capture(LogFormat format, LogLevel level, const std::function<void(EventLog&)>& write) {
  char* buffer = nullptr;
  size_t size = 0;
  std::FILE* out = open_memstream(&buffer, &size);
  {
    EventLog log(out, format, level);
    write(log);
  }
  std::fclose(out);
  std::string text(buffer, size);
  std::free(buffer);
  return text;
}

// An RFC 3339 UTC time in milliseconds, as the log writes it; 'D' is any digit.
constexpr std::string_view kTimestamp = "DDDD-DD-DDTDD:DD:DD.DDDZ";

bool HasShape(std::string_view text, std::string_view shape) {
  if (text.size() != shape.size()) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    bool digit = text[i] >= '0' && text[i] <= '9';
    if (shape[i] == 'D' ? !digit : text[i] != shape[i]) return false;
  }
  return true;
}

TEST(EventLogTest, WritesOneFlatJsonObjectALineWithTsLevelAndEventFirst) {
  std::string text = Capture(LogFormat::kJson, LogLevel::kInfo, [](EventLog& log) {
    log.Info("drain.start", {{"trigger", "SIGTERM"}, {"in_flight", 3}});
  });
  ASSERT_EQ(std::count(text.begin(), text.end(), '\n'), 1);
  constexpr std::string_view kHead = R"({"ts":")";
  constexpr std::string_view kNext = R"(","level":"info","event":"drain.start",)";
  ASSERT_GT(text.size(), kHead.size() + kTimestamp.size() + kNext.size()) << text;
  EXPECT_TRUE(text.starts_with(kHead)) << text;
  EXPECT_TRUE(HasShape(text.substr(kHead.size(), kTimestamp.size()), kTimestamp)) << text;
  EXPECT_EQ(text.substr(kHead.size() + kTimestamp.size(), kNext.size()), kNext) << text;
  EXPECT_TRUE(text.ends_with("}\n")) << text;
  auto json = nlohmann::json::parse(text);
  EXPECT_EQ(json["trigger"], "SIGTERM");
  EXPECT_EQ(json["in_flight"], 3);
}

TEST(EventLogTest, TextFormatIsForPeople) {
  std::string text = Capture(LogFormat::kText, LogLevel::kInfo, [](EventLog& log) {
    log.Warn("drain.forced", {{"count", 2}});
  });
  ASSERT_GT(text.size(), kTimestamp.size()) << text;
  EXPECT_TRUE(HasShape(text.substr(0, kTimestamp.size()), kTimestamp)) << text;
  EXPECT_EQ(text.substr(kTimestamp.size()), " warn drain.forced count=2\n");
}

TEST(EventLogTest, DropsEventsBelowTheLevel) {
  std::string text = Capture(LogFormat::kJson, LogLevel::kWarn, [](EventLog& log) {
    log.Info("drain.progress");
    log.Error("app.signal", {{"error", "no process matched"}});
  });
  EXPECT_EQ(text.find("drain.progress"), std::string::npos);
  EXPECT_NE(text.find("\"level\":\"error\""), std::string::npos);
}

TEST(EventLogTest, InvalidUtf8CannotBreakTheLine) {
  std::string text = Capture(LogFormat::kJson, LogLevel::kInfo, [](EventLog& log) {
    log.Warn("admin.denied", {{"peer", std::string("\xff\xfe\n")}});
  });
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1);
  EXPECT_NO_THROW(nlohmann::json::parse(text));
}

}  // namespace
}  // namespace lameduck::coordinator
