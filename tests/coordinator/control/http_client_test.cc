// HttpClient over real loopback sockets against TestUpstream (TCP and unix): the status, head
// and body; each error a person must be able to act on (refused, timeout, malformed, closed);
// and that a cancelled or destroyed client never calls back. ResponseParser's own cases (1xx,
// close-delimited bodies, limits) are at the end, without sockets.
#include "coordinator/control/http_client.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>

#include "tests/support/child_process.h"
#include "tests/support/loop_runner.h"
#include "tests/support/test_upstream.h"

namespace lameduck::coordinator {
namespace {

using namespace std::chrono_literals;
using lameduck::testing::FreePort;
using lameduck::testing::LoopRunner;
using lameduck::testing::TestUpstream;
using lameduck::testing::UpstreamConn;

::testing::AssertionResult Contains(std::string_view text, std::string_view part) {
  if (text.find(part) != std::string_view::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

proxy::Address Tcp(int port) {
  return proxy::ParseAddress("127.0.0.1:" + std::to_string(port)).value();
}

// Reads the request, then says nothing until the client goes away.
void Silent(int fd) {
  char buffer[1024];
  while (recv(fd, buffer, sizeof(buffer), 0) > 0) {
  }
}

class HttpClientTest : public ::testing::Test {
 protected:
  HttpClient::Request Get(proxy::Address address, std::string_view target = "/hello") {
    HttpClient::Request request;
    request.address = std::move(address);
    request.bytes =
        "GET " + std::string(target) + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    request.deadline = 2s;
    return request;
  }
  HttpResult Exchange(HttpClient::Request request) {
    std::optional<HttpResult> result;
    client_.Start(std::move(request), [&](HttpResult r) { result = std::move(r); });
    EXPECT_TRUE(loop_.RunUntil([&] { return result.has_value(); }, 5s, "the client's callback"));
    return result.value_or(HttpResult{});
  }

  LoopRunner loop_;  // first: outlives the client's handles
  TestUpstream upstream_;
  HttpClient client_{loop_.loop()};
};

TEST_F(HttpClientTest, ReturnsTheStatusHeadAndBody) {
  ASSERT_TRUE(upstream_.Start());
  HttpResult result = Exchange(Get(Tcp(upstream_.port())));
  ASSERT_TRUE(result.ok()) << result.message;
  EXPECT_EQ(result.status, 200);
  EXPECT_EQ(result.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(result.head.Find("content-length"), "9");
  EXPECT_EQ(result.body, "ok /hello");
  EXPECT_FALSE(client_.busy());
}

TEST_F(HttpClientTest, ReturnsAnErrorStatusAsAResponseNotAnError) {
  upstream_.SetHandler([](const auto&, UpstreamConn& conn) { conn.SendResponse(503, "down"); });
  ASSERT_TRUE(upstream_.Start());
  HttpResult result = Exchange(Get(Tcp(upstream_.port())));
  ASSERT_TRUE(result.ok()) << result.message;
  EXPECT_EQ(result.status, 503);
  EXPECT_EQ(result.body, "down");
}

TEST_F(HttpClientTest, SpeaksOverAUnixSocket) {
  std::string path = ::testing::TempDir() + "http_client_test.sock";
  ASSERT_TRUE(upstream_.StartUnix(path));
  HttpResult result = Exchange(Get(proxy::ParseAddress("unix:" + path).value(), "/unix"));
  ASSERT_TRUE(result.ok()) << result.message;
  EXPECT_EQ(result.status, 200);
  EXPECT_EQ(result.body, "ok /unix");
}

TEST_F(HttpClientTest, ARefusedConnectionIsAConnectError) {
  HttpResult result = Exchange(Get(Tcp(FreePort())));
  EXPECT_EQ(result.error, HttpError::kConnect);
  EXPECT_TRUE(Contains(result.message, "cannot connect (connection refused)"));
}

TEST_F(HttpClientTest, AMissingUnixSocketIsAConnectError) {
  HttpResult result =
      Exchange(Get(proxy::ParseAddress("unix:" + ::testing::TempDir() + "nobody.sock").value()));
  EXPECT_EQ(result.error, HttpError::kConnect);
  EXPECT_TRUE(Contains(result.message, "cannot connect (no such file or directory)"));
}

TEST_F(HttpClientTest, ASilentServerIsATimeoutAtTheDeadline) {
  upstream_.SetRawHandler(&Silent);
  ASSERT_TRUE(upstream_.Start());
  HttpClient::Request request = Get(Tcp(upstream_.port()));
  request.deadline = 100ms;
  auto start = std::chrono::steady_clock::now();
  HttpResult result = Exchange(std::move(request));
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(result.error, HttpError::kTimeout);
  EXPECT_EQ(result.message, "no response within 100 ms");
  EXPECT_GE(took, 90ms);
  EXPECT_LT(took, 2s);
}

TEST_F(HttpClientTest, SomethingThatIsNotHttpIsMalformed) {
  upstream_.SetRawHandler([](int fd) {
    char buffer[1024];
    recv(fd, buffer, sizeof(buffer), 0);
    lameduck::testing::SendAllWithTimeout(fd, "SSH-2.0-OpenSSH_9.2\r\n\r\n", 1s);
  });
  ASSERT_TRUE(upstream_.Start());
  HttpResult result = Exchange(Get(Tcp(upstream_.port())));
  EXPECT_EQ(result.error, HttpError::kMalformed);
  EXPECT_TRUE(Contains(result.message, "answered with something that is not HTTP/1.x"));
}

TEST_F(HttpClientTest, AServerThatClosesWithoutAnsweringIsReported) {
  upstream_.SetRawHandler([](int fd) {
    char buffer[1024];
    recv(fd, buffer, sizeof(buffer), 0);
  });
  ASSERT_TRUE(upstream_.Start());
  HttpResult result = Exchange(Get(Tcp(upstream_.port())));
  EXPECT_EQ(result.error, HttpError::kClosed);
  EXPECT_EQ(result.message, "closed the connection without a response");
}

TEST_F(HttpClientTest, UntilHeadCompletesWithoutTheBody) {
  upstream_.SetHandler([](const auto&, UpstreamConn& conn) {
    conn.SendHead(200, {{"Content-Length", "100"}});  // and never the body
    conn.WaitForClose(5s);
  });
  ASSERT_TRUE(upstream_.Start());
  HttpClient::Request request = Get(Tcp(upstream_.port()));
  request.until = ResponseParser::Until::kHead;
  HttpResult result = Exchange(std::move(request));
  ASSERT_TRUE(result.ok()) << result.message;
  EXPECT_EQ(result.status, 200);
  EXPECT_EQ(result.body, "");
}

TEST_F(HttpClientTest, NoRequestBytesIsAConnectOnlyProbe) {
  ASSERT_TRUE(upstream_.Start());
  HttpClient::Request request;
  request.address = Tcp(upstream_.port());
  HttpResult result = Exchange(std::move(request));
  ASSERT_TRUE(result.ok()) << result.message;
  EXPECT_EQ(result.status, 0);
  EXPECT_TRUE(upstream_.WaitForAccepted(1, 2s));
}

TEST_F(HttpClientTest, ACancelledExchangeNeverCallsBack) {
  upstream_.SetRawHandler(&Silent);
  ASSERT_TRUE(upstream_.Start());
  bool called = false;
  HttpClient::Request request = Get(Tcp(upstream_.port()));
  request.deadline = 50ms;  // would fire during the runs below, had the exchange not been cancelled
  client_.Start(std::move(request), [&](HttpResult) { called = true; });
  ASSERT_TRUE(loop_.RunUntil([&] { return upstream_.accepted_connections() == 1; }, 2s,
                             "the upstream to accept"));
  client_.Cancel();
  EXPECT_FALSE(client_.busy());
  // The upstream sees the close; the loop runs past where a callback could have come.
  EXPECT_TRUE(loop_.RunUntil([&] { return upstream_.open_connections() == 0; }, 2s,
                             "the upstream to see the close"));
  loop_.RunFor(100ms);  // and past the 50 ms deadline that would have fired
  EXPECT_FALSE(called);
}

TEST_F(HttpClientTest, AClientDestroyedMidExchangeNeverCallsBack) {
  upstream_.SetRawHandler(&Silent);
  ASSERT_TRUE(upstream_.Start());
  bool called = false;
  auto client = std::make_unique<HttpClient>(loop_.loop());
  HttpClient::Request request = Get(Tcp(upstream_.port()));
  request.deadline = 50ms;  // would fire during the run below, had the client lived
  client->Start(std::move(request), [&](HttpResult) { called = true; });
  client.reset();
  EXPECT_TRUE(loop_.RunUntil(
      [&] { return upstream_.accepted_connections() == 1 && upstream_.open_connections() == 0; },
      2s, "the connection to come and go"));
  loop_.RunFor(100ms);  // past the deadline
  EXPECT_FALSE(called);
}

TEST_F(HttpClientTest, TheCallbackMayDestroyTheClient) {
  ASSERT_TRUE(upstream_.Start());
  auto client = std::make_unique<HttpClient>(loop_.loop());
  std::optional<int> status;
  client->Start(Get(Tcp(upstream_.port())), [&](HttpResult result) {
    status = result.status;
    client.reset();
  });
  ASSERT_TRUE(loop_.RunUntil([&] { return status.has_value(); }, 2s, "the callback"));
  EXPECT_EQ(status, 200);
  EXPECT_EQ(client, nullptr);
}

// --- ResponseParser, without sockets ---

TEST(ResponseParserTest, SkipsInterimResponses) {
  ResponseParser parser(ResponseParser::Until::kMessage);
  EXPECT_EQ(parser.Feed("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2"
                        "\r\n\r\nhi"),
            ResponseParser::State::kComplete);
  EXPECT_EQ(parser.status(), 201);
  EXPECT_EQ(parser.reason(), "Created");
  EXPECT_EQ(parser.body(), "hi");
}

TEST(ResponseParserTest, ABodyDelimitedByTheCloseCompletesAtFinish) {
  ResponseParser parser(ResponseParser::Until::kMessage);
  EXPECT_EQ(parser.Feed("HTTP/1.0 200 OK\r\n\r\nall of "), ResponseParser::State::kReading);
  EXPECT_EQ(parser.Feed("it"), ResponseParser::State::kReading);
  EXPECT_EQ(parser.Finish(), ResponseParser::State::kComplete);
  EXPECT_EQ(parser.body(), "all of it");
  EXPECT_EQ(parser.StatusLine(), "HTTP/1.0 200 OK");
}

TEST(ResponseParserTest, ACloseBeforeAnythingOrInTheMiddleIsNamed) {
  ResponseParser nothing(ResponseParser::Until::kMessage);
  EXPECT_EQ(nothing.Finish(), ResponseParser::State::kFailed);
  EXPECT_EQ(nothing.failure(), ResponseParser::Failure::kNothing);
  ResponseParser cut(ResponseParser::Until::kMessage);
  cut.Feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
  EXPECT_EQ(cut.Finish(), ResponseParser::State::kFailed);
  EXPECT_EQ(cut.failure(), ResponseParser::Failure::kTruncated);
}

TEST(ResponseParserTest, LimitsTheHeadAndTheBody) {
  ResponseParser head(ResponseParser::Until::kMessage, {.max_head_bytes = 16});
  EXPECT_EQ(head.Feed("HTTP/1.1 200 OK\r\nX-Long: 0123456789abcdef\r\n\r\n"),
            ResponseParser::State::kFailed);
  EXPECT_EQ(head.failure(), ResponseParser::Failure::kHeadTooLarge);
  ResponseParser body(ResponseParser::Until::kMessage, {.max_body_bytes = 4});
  EXPECT_EQ(body.Feed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n12345"),
            ResponseParser::State::kFailed);
  EXPECT_EQ(body.failure(), ResponseParser::Failure::kBodyTooLarge);
}

TEST(ResponseParserTest, MalformedInputCarriesLlhttpsWords) {
  ResponseParser parser(ResponseParser::Until::kMessage);
  EXPECT_EQ(parser.Feed("HTTP/1.1 abc\r\n\r\n"), ResponseParser::State::kFailed);
  EXPECT_EQ(parser.failure(), ResponseParser::Failure::kMalformed);
  EXPECT_TRUE(Contains(parser.detail(), "HPE_"));
}

}  // namespace
}  // namespace lameduck::coordinator
