// HTTP/2 clients to an h2c app through the real Proxy over loopback (--upstream-protocol auto):
// streams multiplexed onto a shared upstream pool under the app's SETTINGS_MAX_CONCURRENT_STREAMS,
// trailers both ways, the app's GOAWAY and REFUSED_STREAM retried, its resets passed on, the
// gRPC-shaped errors, flow control both ways. One behaviour per test.
#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <chrono>
#include <string>
#include <thread>

#include "proxy/proxy.h"
#include "tests/support/h2_test_client.h"
#include "tests/support/h2_test_upstream.h"
#include "tests/support/proxy_runner.h"
#include "tests/support/test_client.h"

namespace lameduck::testing {
namespace {

using namespace std::chrono_literals;
using proxy::ProxyError;
using Reply = H2TestUpstream::Reply;
using Request = H2TestUpstream::Request;

class Http2UpstreamTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(app_.Start()); }

  proxy::ProxyOptions Options() {
    proxy::ProxyOptions options;
    options.listen = {proxy::ParseAddress("127.0.0.1:0").value()};
    options.upstream = proxy::ParseAddress("127.0.0.1:" + std::to_string(app_.port())).value();
    return options;  // upstream_protocol auto: HTTP/2 clients go over h2c
  }
  ProxyRunner& StartProxy(proxy::ProxyOptions options) {
    runner_ = std::make_unique<ProxyRunner>(std::move(options));
    EXPECT_EQ(runner_->error(), "");
    return *runner_;
  }
  ProxyRunner& StartProxy() { return StartProxy(Options()); }
  std::unique_ptr<H2TestClient> Connect() {
    auto client = H2TestClient::Connect(runner_->port());
    EXPECT_NE(client, nullptr);
    return client;
  }
  static HeaderList Grpc() { return {{"content-type", "application/grpc"}, {"te", "trailers"}}; }
  static std::string Message(std::string_view payload) {
    std::string framed(5, '\0');
    framed[4] = static_cast<char>(payload.size());
    return framed + std::string(payload);
  }

  H2TestUpstream app_;
  std::unique_ptr<ProxyRunner> runner_;
};

TEST_F(Http2UpstreamTest, AGrpcCallCrossesWithItsTrailersBothWays) {
  app_.SetHandler([](const Request& request) {
    Reply reply;
    reply.headers = {{"content-type", "application/grpc"}};
    reply.body = request.body;  // echo
    reply.trailers = {{"grpc-status", "0"}, {"grpc-message", "fine"}};
    return reply;
  });
  StartProxy();
  auto client = Connect();
  int32_t id =
      client->Submit("POST", "/pkg.Echo/Say", Grpc(), std::nullopt, /*more_body=*/true, "svc.test");
  client->SendBody(id, Message("hello"), true, {{"x-client-trailer", "t"}});
  ASSERT_TRUE(client->WaitFor(id));
  const auto& response = client->response(id);
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, Message("hello"));
  EXPECT_EQ(response.Trailer("grpc-status"), "0");
  EXPECT_EQ(response.Trailer("grpc-message"), "fine");
  EXPECT_EQ(response.reset_code, 0u);
  ASSERT_EQ(app_.received().size(), 1u);
  Request seen = app_.received()[0];
  EXPECT_EQ(seen.method, "POST");
  EXPECT_EQ(seen.path, "/pkg.Echo/Say");
  EXPECT_EQ(seen.authority, "svc.test");
  EXPECT_EQ(seen.scheme, "http");
  EXPECT_EQ(seen.Header("te"), "trailers");
  EXPECT_EQ(seen.Header("x-forwarded-for"), "127.0.0.1");
  EXPECT_EQ(seen.Header("x-forwarded-proto"), "http");
  EXPECT_EQ(seen.Header("transfer-encoding"), "");
  EXPECT_EQ(FindHeader(seen.trailers, "x-client-trailer"), "t");
}

TEST_F(Http2UpstreamTest, StreamsOfManyClientsShareOneAppConnection) {
  StartProxy();
  std::vector<std::unique_ptr<H2TestClient>> clients;
  for (int c = 0; c < 3; ++c) clients.push_back(Connect());
  std::vector<std::pair<int, int32_t>> ids;
  for (int c = 0; c < 3; ++c) {
    for (int i = 0; i < 10; ++i)
      ids.emplace_back(c, clients[c]->Submit("GET", "/c" + std::to_string(c)));
  }
  for (auto [c, id] : ids) {
    ASSERT_TRUE(clients[c]->WaitFor(id));
    EXPECT_EQ(clients[c]->response(id).status, 200);
    EXPECT_EQ(clients[c]->response(id).body, "ok /c" + std::to_string(c));
  }
  EXPECT_EQ(app_.requests(), 30);
  EXPECT_EQ(app_.connections(), 1);
}

TEST_F(Http2UpstreamTest, TheAppsConcurrencyLimitOpensMoreConnections) {
  app_.set_max_concurrent_streams(4);
  app_.SetHandler([](const Request&) {
    Reply reply;
    reply.gate = "go";
    reply.body = "done";
    return reply;
  });
  StartProxy();
  auto client = Connect();
  // One request first, so that the app's SETTINGS are in before the rest.
  app_.OpenGate("go");
  int32_t first = client->Submit("GET", "/first");
  ASSERT_TRUE(client->WaitFor(first));
  app_.SetHandler([](const Request&) {
    Reply reply;
    reply.gate = "later";
    reply.body = "done";
    return reply;
  });
  std::vector<int32_t> ids;
  for (int i = 0; i < 12; ++i) ids.push_back(client->Submit("GET", "/s"));
  ASSERT_TRUE(app_.WaitForRequests(13, 5s));
  EXPECT_LE(app_.max_open_streams(), 4);
  EXPECT_GE(app_.connections(), 3);
  app_.OpenGate("later");
  for (int32_t id : ids) {
    ASSERT_TRUE(client->WaitFor(id));
    EXPECT_EQ(client->response(id).status, 200);
  }
}

TEST_F(Http2UpstreamTest, StreamsTheAppsGoawayLeftUnprocessedAreRetriedOnANewConnection) {
  app_.set_goaway_after(1);
  app_.SetHandler([](const Request& request) {
    Reply reply;
    reply.gate = request.path == "/first" ? "" : "";
    reply.body = "ok " + request.path;
    return reply;
  });
  StartProxy();
  auto client = Connect();
  std::vector<int32_t> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(client->Submit("GET", "/r" + std::to_string(i)));
  for (size_t i = 0; i < ids.size(); ++i) {
    ASSERT_TRUE(client->WaitFor(ids[i])) << i;
    EXPECT_EQ(client->response(ids[i]).status, 200) << i;
    EXPECT_EQ(client->response(ids[i]).body, "ok /r" + std::to_string(i));
  }
  EXPECT_GE(app_.connections(), 2) << "the retired connection takes no new stream";
}

TEST_F(Http2UpstreamTest, ARefusedStreamIsRetriedOnceEvenForAPost) {
  std::atomic<int> calls{0};
  app_.SetHandler([&calls](const Request& request) {
    Reply reply;
    if (calls++ == 0) {
      reply.reset_code = NGHTTP2_REFUSED_STREAM;
    } else {
      reply.body = "got " + request.body;
    }
    return reply;
  });
  StartProxy();
  auto client = Connect();
  int32_t id = client->Submit("POST", "/once", {{"content-length", "4"}}, std::string("data"));
  ASSERT_TRUE(client->WaitFor(id));
  EXPECT_EQ(client->response(id).status, 200);
  EXPECT_EQ(client->response(id).body, "got data");
  EXPECT_EQ(app_.requests(), 2);
}

TEST_F(Http2UpstreamTest, AResetFromTheAppMidResponseReachesTheClientWithItsCode) {
  app_.SetHandler([](const Request&) {
    Reply reply;
    reply.reset_after_head = true;
    reply.reset_code = NGHTTP2_ENHANCE_YOUR_CALM;
    return reply;
  });
  StartProxy();
  auto client = Connect();
  int32_t id = client->Submit("GET", "/calm");
  ASSERT_TRUE(client->WaitFor(id));
  EXPECT_EQ(client->response(id).reset_code, static_cast<uint32_t>(NGHTTP2_ENHANCE_YOUR_CALM));
}

TEST_F(Http2UpstreamTest, AResetBeforeTheHeadIsUnavailableForGrpcAnd502Otherwise) {
  app_.SetHandler([](const Request&) {
    Reply reply;
    reply.reset_code = NGHTTP2_INTERNAL_ERROR;
    return reply;
  });
  StartProxy();
  auto client = Connect();
  int32_t grpc = client->Submit("POST", "/pkg.S/M", Grpc(), Message("x"));
  int32_t plain = client->Submit("GET", "/plain");
  ASSERT_TRUE(client->WaitFor(grpc));
  ASSERT_TRUE(client->WaitFor(plain));
  EXPECT_EQ(client->response(grpc).status, 200);
  EXPECT_EQ(client->response(grpc).Field("grpc-status"), "14");
  EXPECT_EQ(client->response(plain).status, 502);
}

TEST_F(Http2UpstreamTest, AnAppTooSlowForTheUpstreamTimeoutIsDeadlineExceeded) {
  app_.SetHandler([](const Request&) {
    Reply reply;
    reply.gate = "never";
    return reply;
  });
  auto options = Options();
  options.upstream_timeout = 200ms;
  StartProxy(options);
  auto client = Connect();
  int32_t id = client->Submit("POST", "/pkg.S/Slow", Grpc(), Message("x"));
  ASSERT_TRUE(client->WaitFor(id));
  EXPECT_EQ(client->response(id).Field("grpc-status"), "4");
  EXPECT_NE(client->response(id).Field("grpc-message").find("upstream-timeout"), std::string::npos);
  EXPECT_TRUE(app_.resets_received() >= 1 || app_.connections() >= 1);
}

TEST_F(Http2UpstreamTest, AnAppThatIsDownIsUnavailable) {
  app_.Stop();
  StartProxy();
  auto client = Connect();
  int32_t id = client->Submit("POST", "/pkg.S/M", Grpc(), Message("x"));
  ASSERT_TRUE(client->WaitFor(id));
  EXPECT_EQ(client->response(id).status, 200);
  EXPECT_EQ(client->response(id).Field("grpc-status"), "14");
}

TEST_F(Http2UpstreamTest, LargeBodiesFlowBothWaysThroughTheWindows) {
  app_.SetHandler([](const Request& request) {
    Reply reply;
    reply.body = request.body + request.body;
    return reply;
  });
  StartProxy();
  auto client = Connect();
  std::string body(2 * 1024 * 1024 + 3, 'u');
  int32_t id = client->Submit("POST", "/big", {}, body);
  ASSERT_TRUE(client->WaitFor(id, 30s));
  EXPECT_EQ(client->response(id).status, 200);
  EXPECT_EQ(client->response(id).body.size(), 2 * body.size());
  EXPECT_EQ(client->response(id).body, body + body);
}

TEST_F(Http2UpstreamTest, AClientResetCancelsTheAppsStream) {
  app_.SetHandler([](const Request&) {
    Reply reply;
    reply.gate = "never";
    return reply;
  });
  StartProxy();
  auto client = Connect();
  int32_t id = client->Submit("GET", "/abandoned");
  ASSERT_TRUE(app_.WaitForRequests(1, 5s));
  client->ResetStream(id);
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (app_.resets_received() == 0 && std::chrono::steady_clock::now() < deadline) {
    client->Pump(10ms);
  }
  EXPECT_EQ(app_.resets_received(), 1);
  EXPECT_TRUE(client->WaitFor(id, 1s) || client->response(id).closed);
  // The shared connection goes on.
  app_.SetHandler([](const Request&) { return Reply{}; });
  int32_t next = client->Submit("GET", "/next");
  ASSERT_TRUE(client->WaitFor(next));
  EXPECT_EQ(client->response(next).status, 200);
  EXPECT_EQ(app_.connections(), 1);
}

TEST_F(Http2UpstreamTest, TheDrainRetiresIdleAppConnections) {
  StartProxy();
  auto client = Connect();
  int32_t id = client->Submit("GET", "/a");
  ASSERT_TRUE(client->WaitFor(id));
  runner_->Call([this] { runner_->proxy().CloseIdleConnections(); });
  EXPECT_TRUE(client->WaitForClose(5s));
  client.reset();  // its FIN: lameduck's side stops lingering at once (else after 5 s)
  // Everything closes: the proxy holds nothing open (ProxyRunner's teardown would hang if not).
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline &&
         !runner_->Call([this] { return runner_->proxy().empty(); })) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(runner_->Call([this] { return runner_->proxy().empty(); }));
}

// ---- HTTP/1.1 clients to an h2c app (--upstream-protocol h2c) ----

proxy::ProxyOptions H2cOnly(proxy::ProxyOptions options) {
  options.upstream_protocol = proxy::UpstreamProtocol::kH2c;
  return options;
}

TEST_F(Http2UpstreamTest, AnHttp1ClientReachesAnH2cAppAndKeepsItsConnection) {
  app_.SetHandler([](const Request& request) {
    Reply reply;
    reply.headers = {{"content-length", "7"}, {"x-app", "yes"}};
    reply.body = "hello\n" + std::string(request.path == "/a" ? "a" : "b");
    return reply;
  });
  StartProxy(H2cOnly(Options()));
  auto client = TestClient::Connect(runner_->port());
  ASSERT_NE(client, nullptr);
  for (const char* path : {"/a", "/b"}) {
    ASSERT_TRUE(
        client->Send(std::string("GET ") + path + " HTTP/1.1\r\nHost: example.test\r\n\r\n"));
    auto response = client->ReadResponse();
    ASSERT_TRUE(response) << client->last_error();
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->reason, "OK");
    EXPECT_EQ(response->Header("content-length"), "7");
    EXPECT_EQ(response->Header("x-app"), "yes");
    EXPECT_FALSE(response->chunked);
    EXPECT_TRUE(response->keep_alive);
    EXPECT_EQ(response->body, std::string("hello\n") + (path[1] == 'a' ? "a" : "b"));
  }
  auto received = app_.received();
  ASSERT_EQ(received.size(), 2u);
  EXPECT_EQ(received[0].method, "GET");
  EXPECT_EQ(received[0].path, "/a");
  EXPECT_EQ(received[0].authority, "example.test");
  EXPECT_EQ(received[0].Header("host"), "") << "Host became :authority";
  EXPECT_EQ(received[0].Header("x-forwarded-for"), "127.0.0.1");
  EXPECT_EQ(app_.connections(), 1);
}

TEST_F(Http2UpstreamTest, AChunkedUploadFromAnHttp1ClientReachesAnH2cAppAsItsDataOnly) {
  app_.SetHandler([](const Request& request) {
    Reply reply;
    reply.body = "got " + std::to_string(request.body.size());
    return reply;
  });
  StartProxy(H2cOnly(Options()));
  auto client = TestClient::Connect(runner_->port());
  ASSERT_NE(client, nullptr);
  // In two reads: the app's stream is not ready at the first, so its bytes wait unparsed.
  ASSERT_TRUE(client->Send(
      "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n"));
  std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(client->Send("6\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n"));
  auto response = client->ReadResponse();
  ASSERT_TRUE(response) << client->last_error();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "got 11");
  auto received = app_.received();
  ASSERT_EQ(received.size(), 1u);
  EXPECT_EQ(received[0].body, "hello world");
  EXPECT_EQ(received[0].Header("transfer-encoding"), "");
}

TEST_F(Http2UpstreamTest, AnH2cResponseWithoutALengthIsChunkedForHttp11WithItsTrailers) {
  app_.SetHandler([](const Request&) {
    Reply reply;
    reply.headers = {{"content-type", "text/plain"}};
    reply.body = std::string(100000, 'z');
    reply.trailers = {{"grpc-status", "0"}, {"x-checksum", "abc"}};
    return reply;
  });
  StartProxy(H2cOnly(Options()));
  auto client = TestClient::Connect(runner_->port());
  ASSERT_NE(client, nullptr);
  for (int i = 0; i < 2; ++i) {  // and the connection is kept for the next
    ASSERT_TRUE(client->Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    auto response = client->ReadResponse();
    ASSERT_TRUE(response) << client->last_error();
    EXPECT_EQ(response->status, 200);
    EXPECT_TRUE(response->chunked);
    EXPECT_TRUE(response->keep_alive);
    EXPECT_EQ(response->body, std::string(100000, 'z'));
    EXPECT_EQ(response->Trailer("grpc-status"), "0");
    EXPECT_EQ(response->Trailer("x-checksum"), "abc");
  }
}

TEST_F(Http2UpstreamTest, AnH2cResponseWithoutALengthIsCloseDelimitedForHttp10) {
  StartProxy(H2cOnly(Options()));  // the app answers "ok /path" without a length
  auto client = TestClient::Connect(runner_->port());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send("GET /old HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"));
  auto response = client->ReadResponse();
  ASSERT_TRUE(response) << client->last_error();
  EXPECT_EQ(response->status, 200);
  EXPECT_FALSE(response->chunked);
  EXPECT_FALSE(response->keep_alive);
  EXPECT_EQ(response->body, "ok /old");
}

TEST_F(Http2UpstreamTest, AnEmptyH2cResponseIsAnEmptyChunkedBodyAndHeadHasNone) {
  app_.SetHandler([](const Request& request) {
    Reply reply;
    reply.status = request.method == "HEAD" ? 200 : 202;
    return reply;
  });
  StartProxy(H2cOnly(Options()));
  auto client = TestClient::Connect(runner_->port());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send("DELETE /x HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto response = client->ReadResponse();
  ASSERT_TRUE(response) << client->last_error();
  EXPECT_EQ(response->status, 202);
  EXPECT_EQ(response->body, "");
  ASSERT_TRUE(client->Send("HEAD /x HTTP/1.1\r\nHost: x\r\n\r\n"));
  response = client->ReadResponse(/*head_request=*/true);
  ASSERT_TRUE(response) << client->last_error();
  EXPECT_EQ(response->status, 200);
  EXPECT_FALSE(response->chunked);
  ASSERT_TRUE(client->Send("GET /after HTTP/1.1\r\nHost: x\r\n\r\n"));
  response = client->ReadResponse();
  ASSERT_TRUE(response) << client->last_error();
  EXPECT_EQ(response->body, "") << "nothing left over from the HEAD";
}

}  // namespace
}  // namespace lameduck::testing
