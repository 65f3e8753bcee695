// `lameduck report`: a drain's timeline and chart from the event log, over a log in the exact
// form lameduck writes (lines as a real drain logged them), and over bad input.
#include "coordinator/cli/report.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace lameduck::coordinator {
namespace {

::testing::AssertionResult Contains(std::string_view text, std::string_view part) {
  if (text.find(part) != std::string_view::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

// A drain as lameduck logged it (trimmed of fields the report does not use), behind a
// `kubectl logs --timestamps` prefix on one line and with a stray non-JSON line.
constexpr std::string_view kLog =
    R"({"ts":"2026-12-07T20:49:01.682Z","level":"info","event":"start","version":"0.1.0"}
{"ts":"2026-12-07T20:49:01.690Z","level":"info","event":"ready","upstream":"127.0.0.1:13001"}
{"ts":"2026-12-07T20:49:04.683Z","level":"info","event":"drain.start","arrival_rate":78.2,"budget_ms":40000,"caller":"kube-lifecycle/1.30 from 10.0.0.7","connections":16,"deadline_ms":15000,"drain_delay_max_ms":8000,"drain_delay_ms":1000,"drain_timeout_ms":15000,"http2_connections":0,"http2_streams":0,"idle":0,"in_flight":16,"long_lived":{"grpc_stream":0,"sse":0,"upgrade":0,"websocket":2},"quiet_needed_ms":1767,"trigger":"admin_wait"}
2026-12-07T20:49:05.183455Z {"ts":"2026-12-07T20:49:05.183Z","level":"info","event":"drain.progress","connections":14,"elapsed_ms":500,"idle":0,"in_flight":12,"long_lived":{"websocket":2},"phase":"accept_grace","upgraded":2}
a line that is not JSON
{"ts":"2026-12-07T20:49:07.950Z","level":"info","event":"listener.closed","after_ms":3267,"arrival_rate":78.2,"arrivals":104,"quiet_ms":1768,"quiet_needed_ms":1767,"reason":"quiet"}
{"ts":"2026-12-07T20:49:08.950Z","level":"info","event":"idle.closed","count":3,"spread_ms":1000}
{"ts":"2026-12-07T20:49:09.007Z","level":"info","event":"drain.complete","accept_grace":{"arrival_rate":78.2,"arrivals":104,"ended":"quiet","quiet_needed_ms":1767},"accept_grace_ms":3267,"awaiting_fin":0,"budget_ms":40000,"connections_at_start":16,"deadline_ms":15000,"duration_ms":4324,"forced":0,"idle_closed":3,"in_flight_at_start":16,"in_flight_wait_ms":1057,"long_lived":{"websocket":{"at_start":2,"by_peer":0,"clean":2,"ending":2,"forced":0}},"accounting":{"requests":{"in_flight_at_start":16,"arrived":104,"completed":0,"completed_close":118,"refused":0,"aborted":2,"forced":0,"balanced":true},"connections":{"open_at_start":16,"accepted":104,"after_response":115,"idle":3,"long_lived":2,"by_client":0,"forced":0,"balanced":true}},"served_during_drain":120,"slack_ms":25676,"spread_ms":1000,"trigger":"admin_wait"}
{"ts":"2026-12-07T20:49:09.008Z","level":"info","event":"app.signal","mode":"launch","pids":[10597],"signal":"SIGTERM"}
{"ts":"2026-12-07T20:49:09.010Z","level":"info","event":"app.exit","pid":10597,"status":0}
{"ts":"2026-12-07T20:49:09.011Z","level":"info","event":"exit","status":0}
)";

TEST(ReportTest, TellsTheDrainAsATimelineFromTheTrigger) {
  std::istringstream in{std::string(kLog)};
  std::vector<DrainRecord> drains = ReadDrains(in);
  ASSERT_EQ(drains.size(), 1u);
  ASSERT_EQ(drains[0].events.size(), 8u);  // from drain.start on; start and ready are before it
  EXPECT_EQ(drains[0].events[1].at_ms, 500);
  std::string timeline = FormatTimeline(drains[0], 1);
  EXPECT_TRUE(Contains(timeline,
                       "drain 1: admin_wait at 2026-12-07T20:49:04.683Z, by kube-lifecycle/1.30 "
                       "from 10.0.0.7\n"));
  EXPECT_TRUE(Contains(timeline,
                       "   +0.000s  drain starts: 16 connections (0 idle), 16 requests in flight; "
                       "long-lived: websocket 2; /ready answers 503\n"));
  EXPECT_TRUE(Contains(timeline,
                       "accept grace 1s to 8s on evidence: 78.2 new connections/s before the "
                       "drain, needs 1.767s of quiet\n"));
  EXPECT_TRUE(Contains(timeline, "deadline 15s (termination grace 40s)\n"));
  EXPECT_TRUE(Contains(timeline, "   +0.500s  accept_grace: 14 connections (0 idle), 12 requests"));
  EXPECT_TRUE(Contains(timeline,
                       "   +3.267s  listeners closed: the accept grace ended on quiet; 104 new "
                       "connections during it, none in its last 1.768s (1.767s needed)\n"));
  EXPECT_TRUE(Contains(timeline, "   +4.267s  3 idle connections closed, spread over 1s\n"));
  EXPECT_TRUE(
      Contains(timeline, "   +4.324s  drain complete: 120 responses served during it, 0 forced\n"));
  EXPECT_TRUE(Contains(timeline, "   +4.325s  app told to exit: SIGTERM to [10597] (launch)\n"));
  EXPECT_TRUE(Contains(timeline, "   +4.328s  lameduck exits: status 0\n"));
  EXPECT_TRUE(Contains(timeline,
                       "  phases: accept grace 3.267s (quiet) | in-flight wait 1.057s | total "
                       "4.324s\n"));
  EXPECT_TRUE(Contains(timeline,
                       "  budget: termination grace 40s, deadline 15s; slack 25.676s beyond "
                       "--app-exit-timeout\n"));
  EXPECT_TRUE(Contains(timeline,
                       "  requests: 16 in flight + 104 arrived = 0 completed + 118 with "
                       "Connection: close + 0 refused + 2 aborted + 0 forced (balanced)\n"));
  EXPECT_TRUE(Contains(timeline,
                       "  connections: 16 open + 104 accepted = 115 closed after a response + 3 "
                       "idle + 2 long-lived + 0 by the client + 0 forced (balanced)\n"));
  EXPECT_TRUE(Contains(
      timeline, "  websocket: 2 at the start, 2 ended cleanly, 0 by their peers, 0 forced\n"));
}

TEST(ReportTest, DrawsTheDrainWithItsPhasesAndMarks) {
  std::istringstream in{std::string(kLog)};
  std::string svg = DrawSvg(ReadDrains(in).at(0));
  EXPECT_TRUE(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
  EXPECT_TRUE(svg.ends_with("</svg>\n"));
  EXPECT_TRUE(Contains(svg, ">accept grace (quiet)</text>"));
  EXPECT_TRUE(Contains(svg, ">listeners closed</text>"));
  EXPECT_TRUE(Contains(svg, ">complete</text>"));
  EXPECT_FALSE(Contains(svg, ">forced"));
  // Two step series: connections 16 -> 14 -> 0 and requests 16 -> 12 -> 0 over 4.328 s.
  size_t first = svg.find("<polyline");
  ASSERT_NE(first, std::string::npos);
  EXPECT_NE(svg.find("<polyline", first + 1), std::string::npos);
  // Every element opened is closed: as many '<' as '>'.
  EXPECT_EQ(std::count(svg.begin(), svg.end(), '<'), std::count(svg.begin(), svg.end(), '>'));
}

// What people put in headers cannot break the chart: the caller is escaped.
TEST(ReportTest, EscapesTextFromTheLogInTheChart) {
  std::istringstream in{
      R"({"ts":"2026-12-07T20:49:04.683Z","level":"info","event":"drain.start","trigger":"<b>&","connections":1,"in_flight":1}
{"ts":"2026-12-07T20:49:05.683Z","level":"warn","event":"drain.forced","count":1}
)"};
  std::vector<DrainRecord> drains = ReadDrains(in);
  ASSERT_EQ(drains.size(), 1u);
  std::string svg = DrawSvg(drains[0]);
  EXPECT_TRUE(Contains(svg, "(&lt;b&gt;&amp;)"));
  EXPECT_TRUE(Contains(svg, ">forced 1</text>"));
  EXPECT_TRUE(Contains(FormatTimeline(drains[0], 1), "FORCED: 1 connection cut at the deadline"));
  EXPECT_TRUE(Contains(FormatTimeline(drains[0], 1), "(the log ends before the drain did)"));
}

// A log is input: fields missing, of the wrong type or absurd in size change the words, never
// crash the report or make it loop.
TEST(ReportTest, SurvivesFieldsThatAreMissingWrongOrAbsurd) {
  std::istringstream in{
      R"({"ts":"2026-12-07T20:49:04.683Z","event":"drain.start","drain_delay_max_ms":1e300,"connections":"many","in_flight":-1e308,"long_lived":{"websocket":1e300,"sse":"x"}}
{"ts":"2026-12-07T20:49:03.000Z","event":"drain.progress","connections":1e300}
{"ts":"2026-12-07T20:49:05.683Z","event":"listener.closed","quiet_ms":5,"reason":7}
{"ts":"9999-12-31T23:59:59.999Z","event":"drain.complete","accounting":{"requests":3},"accept_grace":[],"long_lived":{"sse":5}}
{"ts":"not a time","event":"exit"}
{"ts":"29771176493306944-12-07T20:49:04.683Z","event":"drain.progress"}
{"ts":"2026-13-07T20:49:04.683Z","event":"drain.progress"}
{"ts":"2026-12-07T20:49:04.68Z","event":"drain.progress"}
{"ts":"2026-12-07T20:49:04.683+01:00","event":"drain.progress"}
)"};
  std::vector<DrainRecord> drains = ReadDrains(in);
  ASSERT_EQ(drains.size(), 1u);
  EXPECT_EQ(drains[0].events.size(), 4u);  // the lines without a time are not events
  std::string timeline = FormatTimeline(drains[0], 1);
  EXPECT_TRUE(Contains(timeline, "no traffic to judge silence by"));
  EXPECT_TRUE(Contains(timeline, "none in its last 5ms\n"));
  EXPECT_TRUE(Contains(timeline, "(DOES NOT BALANCE"));
  std::string svg = DrawSvg(drains[0]);
  EXPECT_TRUE(svg.ends_with("</svg>\n"));
  EXPECT_LT(svg.size(), 20'000u);
}

TEST(ReportTest, ReportsEveryDrainAndDrawsTheLast) {
  std::string two = std::string(kLog) + std::string(kLog);
  std::istringstream in(two);
  std::ostringstream out, err;
  std::string svg_path = ::testing::TempDir() + "lameduck-report-test.svg";
  std::filesystem::remove(svg_path);
  EXPECT_EQ(RunReport({"-", "--svg", svg_path}, in, out, err), 0) << err.str();
  EXPECT_TRUE(Contains(out.str(), "drain 1: admin_wait"));
  EXPECT_TRUE(Contains(out.str(), "\ndrain 2: admin_wait"));
  std::ifstream svg(svg_path);
  std::string text((std::istreambuf_iterator<char>(svg)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(text.starts_with("<svg"));
  std::filesystem::remove(svg_path);
}

TEST(ReportTest, SaysWhyWhenThereIsNothingToReport) {
  std::istringstream text_log("2026-12-07T20:49:04.683Z info drain.start trigger=SIGTERM\n");
  std::ostringstream out, err;
  EXPECT_EQ(RunReport({}, text_log, out, err), 1);
  EXPECT_EQ(err.str(),
            "lameduck report: no drain in the log (no drain.start event; the report reads the "
            "JSON log, --log-format json)\n");
  std::istringstream empty;
  std::ostringstream out2, err2;
  EXPECT_EQ(RunReport({"/nonexistent/log"}, empty, out2, err2), 1);
  EXPECT_EQ(err2.str(), "lameduck report: cannot read \"/nonexistent/log\"\n");
  std::ostringstream out3, err3;
  EXPECT_EQ(RunReport({"--color"}, empty, out3, err3), 2);
  EXPECT_TRUE(Contains(err3.str(), "unknown option \"--color\""));
  std::ostringstream out4, err4;
  EXPECT_EQ(RunReport({"--svg"}, empty, out4, err4), 2);
  EXPECT_TRUE(Contains(err4.str(), "--svg: missing value"));
  std::ostringstream out5, err5;
  EXPECT_EQ(RunReport({"a.log", "b.log"}, empty, out5, err5), 2);
}

}  // namespace
}  // namespace lameduck::coordinator
