// The event log's two formats and its level filter.
#include "coordinator/event_log.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <regex>
#include <string>

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

TEST(EventLogTest, WritesOneFlatJsonObjectALineWithTsLevelAndEventFirst) {
  std::string text = Capture(LogFormat::kJson, LogLevel::kInfo, [](EventLog& log) {
    log.Info("drain.start", {{"trigger", "SIGTERM"}, {"in_flight", 3}});
  });
  ASSERT_EQ(std::count(text.begin(), text.end(), '\n'), 1);
  EXPECT_TRUE(std::regex_match(
      text, std::regex(R"(\{"ts":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z","level":"info",)"
                       R"("event":"drain.start",.*\}\n)")))
      << text;
  auto json = nlohmann::json::parse(text);
  EXPECT_EQ(json["trigger"], "SIGTERM");
  EXPECT_EQ(json["in_flight"], 3);
}

TEST(EventLogTest, TextFormatIsForPeople) {
  std::string text = Capture(LogFormat::kText, LogLevel::kInfo, [](EventLog& log) {
    log.Warn("drain.forced", {{"count", 2}});
  });
  EXPECT_TRUE(std::regex_match(text, std::regex(R"(\S+Z warn drain\.forced count=2\n)"))) << text;
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
