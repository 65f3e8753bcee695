// HTTP/2 end to end: the real lameduck binary with real HTTP/2 clients (curl
// --http2-prior-knowledge, nghttp and h2load from Debian's nghttp2-client) in front of the
// sample app (HTTP/1.1) and of an h2c app, and the drain seen from an HTTP/2 client: SIGTERM,
// two GOAWAYs, the open stream finished, exit 0 and a drain log that counts HTTP/2.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "tests/support/child_process.h"
#include "tests/support/h2_test_client.h"
#include "tests/support/h2_test_upstream.h"
#include "tests/support/lameduck_process.h"

namespace lameduck::testing {
namespace {

using namespace std::chrono_literals;

// The program's path on PATH; "" if it is not installed.
std::string Which(const std::string& program) {
  CompletedProcess found = RunToCompletion({"/bin/sh", "-c", "command -v " + program}, "", 10s);
  if (found.status != 0) return "";
  while (!found.out.empty() && found.out.back() == '\n') found.out.pop_back();
  return found.out;
}
bool Have(const std::string& program) { return !Which(program).empty(); }

class Http2EndToEnd : public ::testing::Test {
 protected:
  // lameduck in front of the sample app (HTTP/1.1), with HTTP/2 clients translated.
  void StartWithSampleApp(std::vector<std::string> extra = {}) {
    int app_port = FreePort();
    ASSERT_TRUE(
        app_.Start({SampleAppBinary(), "--listen", "127.0.0.1:" + std::to_string(app_port)}));
    std::vector<std::string> args = {"--upstream", "127.0.0.1:" + std::to_string(app_port),
                                     "--upstream-protocol", "http1"};
    args.insert(args.end(), extra.begin(), extra.end());
    ASSERT_TRUE(lameduck_.Start(args));
    ASSERT_TRUE(lameduck_.WaitForReady(200));
  }
  std::string Url(const std::string& path) {
    return "http://127.0.0.1:" + std::to_string(lameduck_.port()) + path;
  }

  ChildProcess app_;
  LameduckProcess lameduck_;
};

TEST_F(Http2EndToEnd, CurlWithPriorKnowledgeAndHttp1OnTheSamePort) {
  if (!Have("curl")) GTEST_SKIP() << "curl is not installed (scripts/setup installs it)";
  StartWithSampleApp();
  CompletedProcess h2 = RunToCompletion({Which("curl"), "-sS", "--http2-prior-knowledge", "-o", "-",
                                         "-w", " %{http_version} %{http_code}", Url("/")},
                                        "", 30s);
  ASSERT_EQ(h2.status, 0) << h2.err;
  EXPECT_EQ(h2.out, "hello\n 2 200");
  CompletedProcess h1 = RunToCompletion(
      {Which("curl"), "-sS", "-o", "-", "-w", " %{http_version} %{http_code}", Url("/")}, "", 30s);
  ASSERT_EQ(h1.status, 0) << h1.err;
  EXPECT_EQ(h1.out, "hello\n 1.1 200");
  CompletedProcess upload =
      RunToCompletion({Which("curl"), "-sS", "--http2-prior-knowledge", "--data-binary",
                       std::string(100000, 'u'), Url("/upload")},
                      "", 30s);
  ASSERT_EQ(upload.status, 0) << upload.err;
  EXPECT_NE(upload.out.find("100000"), std::string::npos) << upload.out;
}

TEST_F(Http2EndToEnd, NghttpGetsTheResponse) {
  if (!Have("nghttp")) GTEST_SKIP() << "nghttp is not installed (nghttp2-client; scripts/setup)";
  StartWithSampleApp();
  CompletedProcess run = RunToCompletion({Which("nghttp"), "-nv", Url("/bytes?n=100000")}, "", 30s);
  ASSERT_EQ(run.status, 0) << run.out << run.err;
  EXPECT_NE(run.out.find(":status: 200"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("recv DATA frame"), std::string::npos);
}

TEST_F(Http2EndToEnd, H2loadManyStreamsOnFewConnectionsNoneFails) {
  if (!Have("h2load")) GTEST_SKIP() << "h2load is not installed (nghttp2-client; scripts/setup)";
  StartWithSampleApp();
  CompletedProcess run =
      RunToCompletion({Which("h2load"), "-n", "2000", "-c", "4", "-m", "16", Url("/")}, "", 60s);
  ASSERT_EQ(run.status, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, "
                         "0 errored"),
            std::string::npos)
      << run.out;
}

TEST_F(Http2EndToEnd, H2loadThroughToAnH2cApp) {
  if (!Have("h2load")) GTEST_SKIP() << "h2load is not installed (nghttp2-client; scripts/setup)";
  H2TestUpstream app;
  ASSERT_TRUE(app.Start());
  ASSERT_TRUE(lameduck_.Start({"--upstream", "127.0.0.1:" + std::to_string(app.port())}));
  ASSERT_TRUE(lameduck_.WaitForReady(200));
  CompletedProcess run =
      RunToCompletion({Which("h2load"), "-n", "2000", "-c", "4", "-m", "16", Url("/")}, "", 60s);
  ASSERT_EQ(run.status, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("2000 succeeded, 0 failed, 0 errored"), std::string::npos) << run.out;
  EXPECT_LE(app.connections(), 2) << "the streams of 4 clients share the app connection";
}

TEST_F(Http2EndToEnd, CurlOverHttp1AndHttp2ToAnH2cOnlyApp) {
  if (!Have("curl")) GTEST_SKIP() << "curl is not installed (scripts/setup installs it)";
  H2TestUpstream app;  // speaks h2c only; answers "ok PATH" without a length
  ASSERT_TRUE(app.Start());
  ASSERT_TRUE(lameduck_.Start(
      {"--upstream", "127.0.0.1:" + std::to_string(app.port()), "--upstream-protocol", "h2c"}));
  ASSERT_TRUE(lameduck_.WaitForReady(200));
  for (std::string version : {"--http1.1", "--http2-prior-knowledge"}) {
    CompletedProcess run = RunToCompletion(
        {Which("curl"), "-sS", version, "-o", "-", "-w", " %{http_version} %{http_code}",
         "--data-binary", "body", "-H", "Transfer-Encoding: chunked", Url("/p")},
        "", 30s);
    ASSERT_EQ(run.status, 0) << version << ": " << run.err;
    EXPECT_EQ(run.out, version == "--http1.1" ? "ok /p 1.1 200" : "ok /p 2 200") << version;
  }
  auto received = app.received();
  ASSERT_EQ(received.size(), 2u);
  for (const auto& request : received) EXPECT_EQ(request.body, "body");
}

TEST_F(Http2EndToEnd, SigtermDrainsAnHttp2ClientWithTwoGoaways) {
  StartWithSampleApp({"--drain-delay", "300ms", "--drain-timeout", "10s"});
  auto client = H2TestClient::Connect(lameduck_.port());
  ASSERT_NE(client, nullptr);
  int32_t slow = client->Submit("GET", "/slow?ms=1500");
  client->Pump(200ms);  // the stream is open at the app
  ASSERT_TRUE(lameduck_.Signal(SIGTERM));
  ASSERT_TRUE(client->WaitForGoaways(2, 5s));
  EXPECT_EQ(client->goaways()[0].last_stream_id, (1u << 31) - 1);
  EXPECT_EQ(client->goaways()[1].last_stream_id, slow);
  ASSERT_TRUE(client->WaitFor(slow, 5s));
  EXPECT_EQ(client->response(slow).status, 200);
  EXPECT_TRUE(client->WaitForClose(5s));
  EXPECT_EQ(lameduck_.Wait(10s), 0);
  EXPECT_TRUE(lameduck_.DrainsBalance());
  auto start = lameduck_.WaitForEvent("drain.start", 1s);
  ASSERT_TRUE(start);
  EXPECT_EQ((*start)["http2_connections"], 1);
  EXPECT_EQ((*start)["http2_streams"], 1);
  auto complete = lameduck_.WaitForEvent("drain.complete", 1s);
  ASSERT_TRUE(complete);
  EXPECT_EQ((*complete)["forced"], 0);
  EXPECT_EQ((*complete)["http2_connections_at_start"], 1);
}

TEST_F(Http2EndToEnd, TheDeadlineResetsOpenStreamsAndCountsThemForced) {
  StartWithSampleApp({"--drain-delay", "100ms", "--drain-timeout", "700ms"});
  auto client = H2TestClient::Connect(lameduck_.port());
  ASSERT_NE(client, nullptr);
  int32_t a = client->Submit("GET", "/slow?ms=5000");
  int32_t b = client->Submit("GET", "/slow?ms=5000");
  client->Pump(200ms);
  ASSERT_TRUE(lameduck_.Signal(SIGTERM));
  client->WaitForClose(5s);
  EXPECT_NE(client->response(a).status, 200);
  EXPECT_NE(client->response(b).status, 200);
  auto forced = lameduck_.WaitForEvent("drain.forced", 5s);
  ASSERT_TRUE(forced);
  EXPECT_EQ((*forced)["count"], 2) << "two streams cut short";
  lameduck_.Wait(10s);
  EXPECT_TRUE(lameduck_.DrainsBalance());
}

}  // namespace
}  // namespace lameduck::testing
