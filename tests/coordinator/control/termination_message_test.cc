#include "coordinator/control/termination_message.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace lameduck::coordinator {
namespace {

TEST(TerminationMessageTest, SaysHowTheLastDrainWent) {
  DrainSummary drain;
  drain.trigger = Trigger::kSigterm;
  drain.duration_ms = 3500;
  drain.accept_grace_ms = 3000;
  drain.connections_at_start = 4;
  drain.in_flight_at_start = 2;
  drain.served_during_drain = 6;
  drain.idle_closed = 3;
  drain.long_lived[static_cast<size_t>(proxy::LongLivedKind::kWebSocket)] = {
      .at_start = 2, .ending = 2, .clean = 2};
  EXPECT_EQ(TerminationMessage(drain, 0),
            "lameduck exited 0 after a drain (SIGTERM) of 3.5 s (accept grace 3.0 s, ended: "
            "delay): 4 connections and 2 requests in flight at its start, 6 responses served "
            "during it, 3 idle connections closed, websocket 2 ended cleanly, 0 by their peers, 0 "
            "forced; 0 connections forced at --drain-timeout.");
  drain.grace_end = GraceEnd::kQuiet;
  drain.slack_ms = 26'500;
  EXPECT_NE(TerminationMessage(drain, 0).find("(accept grace 3.0 s, ended: quiet)"),
            std::string::npos);
  EXPECT_TRUE(TerminationMessage(drain, 0).ends_with(
      " 26.5 s of the termination grace to spare after --app-exit-timeout."));
  EXPECT_EQ(TerminationMessage(std::nullopt, 2), "lameduck exited 2; no drain ran.");
}

TEST(TerminationMessageTest, IsWrittenWhereTheOptionSaysOrNowhereOutsideAPod) {
  Config config;
  if (!std::filesystem::exists(kDefaultTerminationLog)) {
    EXPECT_FALSE(TerminationLogPath(config));  // never created outside a pod
  }
  std::string path = (std::filesystem::temp_directory_path() / "termination_message_test").string();
  config.termination_log = path;
  ASSERT_EQ(TerminationLogPath(config), path);
  ASSERT_TRUE(WriteTerminationMessage(path, "drained").ok());
  std::ifstream file(path);
  std::stringstream contents;
  contents << file.rdbuf();
  EXPECT_EQ(contents.str(), "drained\n");
  std::filesystem::remove(path);
  Result<void> failed = WriteTerminationMessage("/nonexistent/dir/log", "x");
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.error().find("/nonexistent/dir/log"), std::string::npos);
}

}  // namespace
}  // namespace lameduck::coordinator
