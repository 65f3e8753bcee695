// Proves the test harness itself: TestClient and TestUpstream talk to each other directly, with
// no proxy in between, so a failing proxy test can be trusted to be about the proxy.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "tests/support/http_message.h"
#include "tests/support/test_client.h"
#include "tests/support/test_upstream.h"

namespace lameduck::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class SupportTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(upstream_.Start()); }

  std::unique_ptr<TestClient> Connect() {
    auto client = TestClient::Connect(upstream_.port());
    EXPECT_NE(client, nullptr);
    return client;
  }

  TestUpstream upstream_;
};

TEST(HttpMessageTest, HeaderLookupIgnoresCaseAndCountsDuplicates) {
  HttpRequest request;
  request.headers = {{"X-Thing", "a"}, {"x-thing", "b"}, {"Host", "h"}};
  EXPECT_EQ(request.Header("x-THING"), "a");
  EXPECT_EQ(request.HeaderCount("X-Thing"), 2);
  EXPECT_EQ(request.Header("Missing"), "");
  EXPECT_EQ(request.HeaderCount("Missing"), 0);
}

TEST(HttpMessageTest, ParserStopsAtEachPipelinedMessage) {
  MessageParser parser(MessageParser::Kind::kRequest);
  std::string bytes = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
  MessageParser::FeedResult fed = parser.Feed(bytes);
  ASSERT_EQ(fed.status, MessageParser::Status::kMessageComplete);
  EXPECT_EQ(parser.request().target, "/a");
  parser.Reset();
  fed = parser.Feed(std::string_view(bytes).substr(fed.consumed));
  ASSERT_EQ(fed.status, MessageParser::Status::kMessageComplete);
  EXPECT_EQ(parser.request().target, "/b");
}

TEST_F(SupportTest, DefaultHandlerAnswersOkWithTarget) {
  std::optional<HttpResponse> response = Get(upstream_.port(), "/hello?x=1");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->reason, "OK");
  EXPECT_EQ(response->body, "ok /hello?x=1");
  EXPECT_EQ(response->Header("connection"), "close");
  ASSERT_EQ(upstream_.received().size(), 1u);
  EXPECT_EQ(upstream_.received()[0].method, "GET");
  EXPECT_FALSE(upstream_.received()[0].keep_alive);
  EXPECT_EQ(upstream_.received()[0].Header("host"),
            "127.0.0.1:" + std::to_string(upstream_.port()));
}

TEST_F(SupportTest, KeepAliveServesTwoRequestsOnOneConnection) {
  auto client = Connect();
  ASSERT_TRUE(client->Send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::optional<HttpResponse> first = client->ReadResponse();
  ASSERT_TRUE(first.has_value()) << client->last_error();
  ASSERT_TRUE(client->Send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::optional<HttpResponse> second = client->ReadResponse();
  ASSERT_TRUE(second.has_value()) << client->last_error();
  EXPECT_EQ(first->body, "ok /a");
  EXPECT_TRUE(upstream_.received()[0].complete);
  EXPECT_EQ(second->body, "ok /b");
  EXPECT_EQ(upstream_.accepted_connections(), 1);
  EXPECT_EQ(upstream_.requests(), 2);
  std::vector<HttpRequest> received = upstream_.received();
  ASSERT_EQ(received.size(), 2u);
  EXPECT_EQ(received[0].connection_id, 1);
  EXPECT_EQ(received[1].connection_id, 1);
}

TEST_F(SupportTest, ChunkedBodiesWithTrailersRoundTrip) {
  upstream_.SetHandler([](const HttpRequest& request, UpstreamConn& conn) {
    conn.SendHead(200, {{"Transfer-Encoding", "chunked"}, {"Trailer", "X-Sum"}});
    conn.SendChunk(request.body.substr(0, 3));
    conn.SendChunk(request.body.substr(3));
    conn.SendLastChunk({{"X-Sum", request.Trailer("x-checksum")}});
  });
  auto client = Connect();
  ASSERT_TRUE(
      client->Send("POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "4\r\nwiki\r\n5;ext=1\r\npedia\r\n0\r\nX-Checksum: 42\r\n\r\n"));
  std::optional<HttpResponse> response = client->ReadResponse();
  ASSERT_TRUE(response.has_value()) << client->last_error();
  EXPECT_TRUE(response->chunked);
  EXPECT_EQ(response->body, "wikipedia");
  EXPECT_EQ(response->Trailer("x-sum"), "42");
  std::vector<HttpRequest> received = upstream_.received();
  ASSERT_EQ(received.size(), 1u);
  EXPECT_TRUE(received[0].chunked);
  EXPECT_EQ(received[0].body, "wikipedia");
  ASSERT_EQ(received[0].trailers.size(), 1u);
  EXPECT_EQ(received[0].trailers[0].first, "X-Checksum");
}

TEST_F(SupportTest, HeadResponseHasNoBodyAndConnectionStaysUsable) {
  upstream_.SetHandler([](const HttpRequest& request, UpstreamConn& conn) {
    conn.SendResponse(200, "twelve bytes", {{"X-Method", request.method}});
  });
  auto client = Connect();
  ASSERT_TRUE(client->Send("HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::optional<HttpResponse> head = client->ReadResponse(/*head_request=*/true);
  ASSERT_TRUE(head.has_value()) << client->last_error();
  EXPECT_EQ(head->Header("Content-Length"), "12");
  EXPECT_EQ(head->body, "");
  EXPECT_EQ(client->buffered(), 0u);
  ASSERT_TRUE(client->Send("GET /g HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::optional<HttpResponse> get = client->ReadResponse();
  ASSERT_TRUE(get.has_value()) << client->last_error();
  EXPECT_EQ(get->Header("X-Method"), "GET");
  EXPECT_EQ(get->body, "twelve bytes");
}

TEST_F(SupportTest, PipelinedRequestsAreAnsweredInOrder) {
  auto client = Connect();
  ASSERT_TRUE(
      client->Send("GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
                   "POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                   "GET /3 HTTP/1.1\r\nHost: x\r\n\r\n"));
  for (const char* body : {"ok /1", "ok /2", "ok /3"}) {
    std::optional<HttpResponse> response = client->ReadResponse();
    ASSERT_TRUE(response.has_value()) << client->last_error();
    EXPECT_EQ(response->body, body);
  }
  std::vector<HttpRequest> received = upstream_.received();
  ASSERT_EQ(received.size(), 3u);
  EXPECT_EQ(received[1].body, "abc");
  EXPECT_EQ(upstream_.accepted_connections(), 1);
}

TEST_F(SupportTest, ResponsesSplitAcrossReadsAreReassembled) {
  // One byte per write: every header, the status line and chunk sizes arrive in pieces.
  upstream_.SetRawHandler([](int fd) {
    std::string response =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Long-Header: value\r\n\r\n"
        "5\r\nhello\r\n0\r\nX-T: v\r\n\r\n";
    char request[1024];
    RecvWithTimeout(fd, request, sizeof(request), 5s);
    for (char c : response) {
      SendAllWithTimeout(fd, std::string_view(&c, 1), 5s);
      std::this_thread::yield();
    }
  });
  auto client = Connect();
  ASSERT_TRUE(client->Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::optional<HttpResponse> response = client->ReadResponse();
  ASSERT_TRUE(response.has_value()) << client->last_error();
  EXPECT_EQ(response->Header("x-long-header"), "value");
  EXPECT_EQ(response->body, "hello");
  EXPECT_EQ(response->Trailer("X-T"), "v");
}

TEST_F(SupportTest, ExpectContinueHandlerRunsOnHeadThenReadsBody) {
  upstream_.set_call_handler_on_headers(true);
  upstream_.SetHandler([](const HttpRequest& request, UpstreamConn& conn) {
    EXPECT_EQ(request.body, "");  // nothing was sent yet: the client waits for the 100
    conn.Send("HTTP/1.1 100 Continue\r\n\r\n");
    std::optional<std::string> body = conn.ReadBody();
    ASSERT_TRUE(body.has_value());
    conn.SendResponse(201, "got " + *body);
  });
  auto client = Connect();
  ASSERT_TRUE(client->Send(
      "PUT /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"));
  std::optional<HttpResponse> interim = client->ReadResponse();
  ASSERT_TRUE(interim.has_value()) << client->last_error();
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(client->Send("hello"));
  std::optional<HttpResponse> final_response = client->ReadResponse();
  ASSERT_TRUE(final_response.has_value()) << client->last_error();
  EXPECT_EQ(final_response->status, 201);
  EXPECT_EQ(final_response->body, "got hello");
  ASSERT_TRUE(upstream_.WaitForRequests(1, 1s));
  EXPECT_EQ(upstream_.received()[0].body, "hello");
}

TEST_F(SupportTest, HandlerOnHeadsThatIgnoresBodyStillServesNextRequest) {
  upstream_.set_call_handler_on_headers(true);
  upstream_.SetHandler([](const HttpRequest& request, UpstreamConn& conn) {
    conn.SendResponse(200, "early " + request.target);
  });
  auto client = Connect();
  ASSERT_TRUE(client->Send("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"));
  std::optional<HttpResponse> first = client->ReadResponse();
  ASSERT_TRUE(first.has_value()) << client->last_error();
  ASSERT_TRUE(client->Send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::optional<HttpResponse> second = client->ReadResponse();
  ASSERT_TRUE(second.has_value()) << client->last_error();
  EXPECT_EQ(second->body, "early /b");
  std::vector<HttpRequest> received = upstream_.received();
  ASSERT_EQ(received.size(), 2u);
  EXPECT_EQ(received[0].body, "abc");
}

TEST_F(SupportTest, AutoContinueAnswersExpectBeforeReadingBody) {
  auto client = Connect();
  ASSERT_TRUE(client->Send(
      "POST /c HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\n"));
  std::optional<HttpResponse> interim = client->ReadResponse();
  ASSERT_TRUE(interim.has_value()) << client->last_error();
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(client->Send("hi"));
  std::optional<HttpResponse> final_response = client->ReadResponse();
  ASSERT_TRUE(final_response.has_value()) << client->last_error();
  EXPECT_EQ(final_response->status, 200);
}

TEST_F(SupportTest, InterimAndFinalResponseInOneWriteAreReadSeparately) {
  upstream_.SetHandler([](const HttpRequest&, UpstreamConn& conn) {
    conn.Send(
        "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\n"
        "Content-Length: 2\r\n\r\nok");
  });
  auto client = Connect();
  ASSERT_TRUE(client->Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::optional<HttpResponse> interim = client->ReadResponse();
  ASSERT_TRUE(interim.has_value()) << client->last_error();
  EXPECT_EQ(interim->status, 103);
  EXPECT_EQ(interim->Header("Link"), "</a>");
  std::optional<HttpResponse> final_response = client->ReadResponse();
  ASSERT_TRUE(final_response.has_value()) << client->last_error();
  EXPECT_EQ(final_response->body, "ok");
}

TEST_F(SupportTest, CloseDelimitedBodyEndsAtEof) {
  upstream_.SetRawHandler([](int fd) {
    char request[1024];
    RecvWithTimeout(fd, request, sizeof(request), 5s);
    SendAllWithTimeout(fd, "HTTP/1.1 200 OK\r\n\r\nuntil the end", 5s);
  });
  auto client = Connect();
  ASSERT_TRUE(client->Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::optional<HttpResponse> response = client->ReadResponse();
  ASSERT_TRUE(response.has_value()) << client->last_error();
  EXPECT_EQ(response->body, "until the end");
  EXPECT_FALSE(response->keep_alive);
}

TEST_F(SupportTest, TruncatedResponseFailsWithReason) {
  upstream_.SetRawHandler([](int fd) {
    char request[1024];
    RecvWithTimeout(fd, request, sizeof(request), 5s);
    SendAllWithTimeout(fd, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 5s);
  });
  auto client = Connect();
  ASSERT_TRUE(client->Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_FALSE(client->ReadResponse().has_value());
  EXPECT_NE(client->last_error().find("EOF inside the response"), std::string::npos)
      << client->last_error();
}

TEST_F(SupportTest, GarbageResponseIsAParseError) {
  upstream_.SetRawHandler([](int fd) { SendAllWithTimeout(fd, "SSH-2.0-nope\r\n", 5s); });
  auto client = Connect();
  EXPECT_FALSE(client->ReadResponse().has_value());
  EXPECT_NE(client->last_error().find("parse error"), std::string::npos) << client->last_error();
}

TEST_F(SupportTest, ResetFromHandlerIsSeenByClient) {
  upstream_.SetHandler([](const HttpRequest&, UpstreamConn& conn) { conn.Reset(); });
  auto client = Connect();
  ASSERT_TRUE(client->Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_FALSE(client->ReadResponse().has_value());
  EXPECT_TRUE(client->SawReset()) << client->last_error();
}

TEST_F(SupportTest, RawHandlerCanResetByLingerZero) {
  // The reset waits for a byte from the client: a reset right after accept can reach the client
  // while its connect() is still completing, and then it never had a connection to see reset.
  upstream_.SetRawHandler([](int fd) {
    char byte;
    RecvWithTimeout(fd, &byte, 1, 5s);
    SetLingerZero(fd);
  });
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send("x"));
  EXPECT_TRUE(client->WaitForClose(5s));
  EXPECT_TRUE(client->SawReset());
}

TEST_F(SupportTest, CloseFromHandlerSendsFin) {
  upstream_.SetHandler([](const HttpRequest&, UpstreamConn& conn) {
    conn.SendResponse(200, "bye", {{"Connection", "close"}});
    conn.Close();
  });
  auto client = Connect();
  ASSERT_TRUE(client->Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::optional<HttpResponse> response = client->ReadResponse();
  ASSERT_TRUE(response.has_value()) << client->last_error();
  EXPECT_TRUE(client->WaitForClose(5s));
  EXPECT_TRUE(client->SawEof());
  EXPECT_FALSE(client->SawReset());
  client->Close();  // the upstream lingers until the peer's FIN (or 1 s) before its close()
  EXPECT_TRUE(upstream_.WaitForOpenConnections(0, 5s));
}

TEST_F(SupportTest, UpgradeHandsTheSocketToTheHandler) {
  upstream_.SetHandler([](const HttpRequest& request, UpstreamConn& conn) {
    ASSERT_TRUE(request.upgrade);
    conn.SendResponse(101, "", {{"Connection", "Upgrade"}, {"Upgrade", "echo"}});
    while (true) {  // echo until the client closes
      std::string bytes = conn.ReadRaw(4096, 5s);
      if (bytes.empty() || !conn.Send(bytes)) break;
    }
  });
  auto client = Connect();
  ASSERT_TRUE(client->Send(
      "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nfirst"));
  std::optional<HttpResponse> response = client->ReadResponse();
  ASSERT_TRUE(response.has_value()) << client->last_error();
  EXPECT_EQ(response->status, 101);
  EXPECT_TRUE(response->upgrade);
  EXPECT_EQ(client->ReadRawExactly(5, 5s), "first");
  ASSERT_TRUE(client->Send("second"));
  EXPECT_EQ(client->ReadRawExactly(6, 5s), "second");
  client->ShutdownWrite();
  EXPECT_TRUE(client->WaitForClose(5s));
}

TEST_F(SupportTest, RawConnHandlerEchoes) {
  upstream_.SetRawConnHandler([](UpstreamConn& conn) {
    std::string bytes = conn.ReadRawExactly(4, 5s);
    conn.Send(bytes + bytes);
  });
  auto client = Connect();
  ASSERT_TRUE(client->Send("ping"));
  EXPECT_EQ(client->ReadRawExactly(8, 5s), "pingping");
  EXPECT_TRUE(client->WaitForClose(5s));
  EXPECT_EQ(upstream_.requests(), 0);
}

TEST_F(SupportTest, ClientTimesOutInsteadOfHanging) {
  upstream_.SetHandler([](const HttpRequest&, UpstreamConn&) {});  // never answers
  auto client = Connect();
  client->set_timeout(200ms);
  ASSERT_TRUE(client->Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto start = Clock::now();
  EXPECT_FALSE(client->ReadResponse().has_value());
  EXPECT_LT(Clock::now() - start, 3s);
  EXPECT_NE(client->last_error().find("timed out"), std::string::npos) << client->last_error();
  EXPECT_FALSE(client->WaitForClose(100ms));
}

TEST_F(SupportTest, MalformedRequestGets400AndIsCounted) {
  auto client = Connect();
  ASSERT_TRUE(client->Send("NOT HTTP AT ALL\r\n\r\n"));
  std::optional<HttpResponse> response = client->ReadResponse();
  ASSERT_TRUE(response.has_value()) << client->last_error();
  EXPECT_EQ(response->status, 400);
  EXPECT_EQ(upstream_.parse_errors(), 1);
  EXPECT_FALSE(upstream_.last_parse_error().empty());
  EXPECT_TRUE(client->WaitForClose(5s));
}

TEST_F(SupportTest, TruncatedRequestIsLoggedIncompleteAndNotHandled) {
  std::atomic<int> handler_calls{0};
  upstream_.SetHandler([&](const HttpRequest&, UpstreamConn&) { ++handler_calls; });
  auto client = Connect();
  ASSERT_TRUE(client->Send("POST /t HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"));
  client->Close();
  ASSERT_TRUE(upstream_.WaitForRequests(1, 5s));
  std::vector<HttpRequest> received = upstream_.received();
  EXPECT_FALSE(received[0].complete);
  EXPECT_EQ(received[0].body, "abc");
  EXPECT_EQ(handler_calls, 0);
}

TEST_F(SupportTest, GateHoldsResponseUntilOpened) {
  upstream_.SetHandler([](const HttpRequest&, UpstreamConn& conn) {
    if (conn.WaitForGate("release")) conn.SendResponse(200, "released");
  });
  auto client = Connect();
  ASSERT_TRUE(client->Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(upstream_.WaitForRequests(1, 5s));
  EXPECT_EQ(client->ReadRaw(100, 100ms), "");  // held
  upstream_.OpenGate("release");
  std::optional<HttpResponse> response = client->ReadResponse();
  ASSERT_TRUE(response.has_value()) << client->last_error();
  EXPECT_EQ(response->body, "released");
}

TEST_F(SupportTest, LargeBodiesSurvivePartialReadsAndWrites) {
  std::string big(4 * 1024 * 1024, 'x');
  for (size_t i = 0; i < big.size(); i += 997) big[i] = static_cast<char>('a' + i % 26);
  upstream_.SetHandler(
      [](const HttpRequest& request, UpstreamConn& conn) { conn.SendResponse(200, request.body); });
  auto client = Connect();
  // The upstream reads the whole request before answering, so sending first cannot deadlock.
  ASSERT_TRUE(client->Send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                           std::to_string(big.size()) + "\r\n\r\n" + big));
  std::optional<HttpResponse> response = client->ReadResponse();
  ASSERT_TRUE(response.has_value()) << client->last_error();
  EXPECT_TRUE(response->body == big);
}

TEST_F(SupportTest, OpenConnectionsDropWhenClientCloses) {
  auto client = Connect();
  ASSERT_TRUE(upstream_.WaitForOpenConnections(1, 5s));
  client->Close();
  EXPECT_TRUE(upstream_.WaitForOpenConnections(0, 5s));
  EXPECT_EQ(upstream_.accepted_connections(), 1);
}

TEST(TestUpstreamUnixTest, ServesOnUnixSocket) {
  std::string path = "/tmp/lameduck_selftest_" + std::to_string(::getpid()) + ".sock";
  TestUpstream upstream;
  ASSERT_TRUE(upstream.StartUnix(path));
  auto client = TestClient::ConnectUnix(path);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send("GET /u HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::optional<HttpResponse> response = client->ReadResponse();
  ASSERT_TRUE(response.has_value()) << client->last_error();
  EXPECT_EQ(response->body, "ok /u");
  upstream.Stop();
  EXPECT_NE(::access(path.c_str(), F_OK), 0);  // the socket file is gone
}

TEST(TestUpstreamStopTest, StopDoesNotHangOnBlockedConnections) {
  auto upstream = std::make_unique<TestUpstream>();
  upstream->set_call_handler_on_headers(true);
  upstream->SetHandler([](const HttpRequest& request, UpstreamConn& conn) {
    conn.set_timeout(std::chrono::minutes(10));
    if (request.target == "/body") conn.ReadBody();  // the body never comes
    if (request.target == "/gate") conn.WaitForGate("never", std::chrono::minutes(10));
    if (request.target == "/send") {  // the client never reads: the send buffer fills
      std::string chunk(1 << 20, 'z');
      while (conn.Send(chunk)) {
      }
    }
  });
  ASSERT_TRUE(upstream->Start());
  std::vector<std::unique_ptr<TestClient>> clients;
  for (const char* target : {"/body", "/gate", "/send"}) {
    clients.push_back(TestClient::Connect(upstream->port()));
    ASSERT_NE(clients.back(), nullptr);
    ASSERT_TRUE(clients.back()->Send(std::string("POST ") + target +
                                     " HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"));
  }
  clients.push_back(TestClient::Connect(upstream->port()));  // idle: no request at all
  ASSERT_TRUE(upstream->WaitForRequests(3, 5s));
  ASSERT_TRUE(upstream->WaitForOpenConnections(4, 5s));
  auto start = Clock::now();
  upstream.reset();
  EXPECT_LT(Clock::now() - start, 3s);
  for (auto& client : clients) EXPECT_TRUE(client->WaitForClose(5s));
}

TEST(TestUpstreamStopTest, StopDoesNotHangOnBlockedRawHandler) {
  TestUpstream upstream;
  upstream.SetRawHandler([](int fd) {
    char buf[16];
    while (RecvWithTimeout(fd, buf, sizeof(buf), std::chrono::minutes(10)) > 0) {
    }
  });
  ASSERT_TRUE(upstream.Start());
  auto client = TestClient::Connect(upstream.port());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(upstream.WaitForOpenConnections(1, 5s));
  auto start = Clock::now();
  upstream.Stop();
  EXPECT_LT(Clock::now() - start, 3s);
  EXPECT_TRUE(client->WaitForClose(5s));
  EXPECT_EQ(upstream.open_connections(), 0);
}

int OpenFdCount() {
  int count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    ++count;
  }
  return count;
}

TEST(TestUpstreamStopTest, LeavesNoFileDescriptorsBehind) {
  int before = OpenFdCount();
  {
    TestUpstream upstream;
    upstream.SetHandler([](const HttpRequest& request, UpstreamConn& conn) {
      if (request.target == "/reset") {
        conn.Reset();
      } else {
        conn.SendResponse(200, "x");
      }
    });
    ASSERT_TRUE(upstream.Start());
    for (const char* target : {"/a", "/reset", "/b"}) {
      auto client = TestClient::Connect(upstream.port());
      ASSERT_NE(client, nullptr);
      ASSERT_TRUE(client->Send(std::string("GET ") + target + " HTTP/1.1\r\nHost: x\r\n\r\n"));
      client->ReadResponse();
    }
    auto idle = TestClient::Connect(upstream.port());
    ASSERT_TRUE(upstream.WaitForAccepted(4, 5s));
  }
  EXPECT_EQ(OpenFdCount(), before);
}

TEST(TestUpstreamStopTest, StopWithoutStartAndTwiceIsFine) {
  TestUpstream never_started;
  never_started.Stop();
  TestUpstream upstream;
  ASSERT_TRUE(upstream.Start());
  upstream.Stop();
  upstream.Stop();
  EXPECT_EQ(TestClient::Connect(upstream.port()), nullptr);
}

}  // namespace
}  // namespace lameduck::testing
