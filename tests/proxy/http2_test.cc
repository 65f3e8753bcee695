// HTTP/2 clients (h2c, prior knowledge) through the real Proxy over loopback, to an HTTP/1 app:
// the preface sniffed beside HTTP/1 on one port, requests and responses translated both ways,
// errors (plain and gRPC-shaped), limits, and the drain's double GOAWAY. One behaviour per test.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <string>
#include <thread>

#include "proxy/proxy.h"
#include "tests/support/eventually.h"
#include "tests/support/h2_test_client.h"
#include "tests/support/proxy_runner.h"
#include "tests/support/test_client.h"
#include "tests/support/test_upstream.h"

namespace lameduck::testing {
namespace {

using namespace std::chrono_literals;
using proxy::ProxyError;

proxy::Address Addr(const std::string& text) {
  auto parsed = proxy::ParseAddress(text);
  EXPECT_TRUE(parsed.ok()) << parsed.error();
  return parsed.value();
}

// Raw frames, for what a well-behaved nghttp2 client would not do or would hide.
struct Frame {
  uint8_t type = 0;
  uint8_t flags = 0;
  int32_t stream_id = 0;
  std::string payload;
  uint32_t Word(size_t index) const {
    const auto* p = reinterpret_cast<const uint8_t*>(payload.data()) + 4 * index;
    return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
  }
};

// Reads frames until done(frames) holds, the peer closes, or 5 s pass.
template <typename Done>
std::vector<Frame> ReadFrames(int fd, Done done) {
  std::vector<Frame> frames;
  std::string bytes;
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline && !done(frames)) {
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n == 0) break;
    if (n < 0) {
      std::this_thread::sleep_for(5ms);
      continue;
    }
    bytes.append(buf, static_cast<size_t>(n));
    while (bytes.size() >= 9) {
      auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
      size_t length = size_t{p[0]} << 16 | size_t{p[1]} << 8 | p[2];
      if (bytes.size() < 9 + length) break;
      Frame frame;
      frame.type = p[3];
      frame.flags = p[4];
      frame.stream_id = static_cast<int32_t>((uint32_t{p[5]} & 0x7f) << 24 | uint32_t{p[6]} << 16 |
                                             uint32_t{p[7]} << 8 | p[8]);
      frame.payload = bytes.substr(9, length);
      frames.push_back(std::move(frame));
      bytes.erase(0, 9 + length);
      if (done(frames)) break;
    }
  }
  return frames;
}

// The peer closed its side (FIN) within 5 s; anything before it is read and dropped.
bool TestClientEof(int fd) {
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline) {
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n == 0) return true;
    if (n < 0 && errno != EAGAIN) return false;
    if (n < 0) std::this_thread::sleep_for(5ms);
  }
  return false;
}

// One frame's bytes.
std::string RawFrame(uint8_t type, uint8_t flags, uint32_t stream_id, const std::string& payload) {
  std::string frame(9, '\0');
  frame[0] = static_cast<char>(payload.size() >> 16);
  frame[1] = static_cast<char>(payload.size() >> 8);
  frame[2] = static_cast<char>(payload.size());
  frame[3] = static_cast<char>(type);
  frame[4] = static_cast<char>(flags);
  for (int i = 0; i < 4; ++i) frame[5 + i] = static_cast<char>(stream_id >> (24 - 8 * i));
  return frame + payload;
}

// The GOAWAY among `frames` (its error code), or -1.
int64_t GoawayCode(const std::vector<Frame>& frames) {
  for (const Frame& frame : frames) {
    if (frame.type == 7) return frame.Word(1);
  }
  return -1;
}

class Http2Test : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(upstream_.Start()); }

  proxy::ProxyOptions Options() {
    proxy::ProxyOptions options;
    options.listen = {Addr("127.0.0.1:0")};
    options.upstream = Addr("127.0.0.1:" + std::to_string(upstream_.port()));
    options.upstream_protocol = proxy::UpstreamProtocol::kHttp1;  // an HTTP/1 app
    return options;
  }
  ProxyRunner& StartProxy(proxy::ProxyOptions options) {
    runner_ = std::make_unique<ProxyRunner>(std::move(options));
    EXPECT_EQ(runner_->error(), "");
    return *runner_;
  }
  ProxyRunner& StartProxy() { return StartProxy(Options()); }
  std::unique_ptr<H2TestClient> ConnectH2(H2TestClient::Options options = {}) {
    auto client = H2TestClient::Connect(runner_->port(), options);
    EXPECT_NE(client, nullptr);
    return client;
  }
  TestUpstream upstream_;
  std::unique_ptr<ProxyRunner> runner_;
};

// ---- sniffing ----

TEST_F(Http2Test, PrefaceAndHttp1ShareOnePort) {
  StartProxy();
  auto h2 = ConnectH2();
  int32_t id = h2->Submit("GET", "/two");
  ASSERT_TRUE(h2->WaitFor(id));
  EXPECT_EQ(h2->response(id).status, 200);
  EXPECT_EQ(h2->response(id).body, "ok /two");

  auto h1 = TestClient::Connect(runner_->port());
  ASSERT_TRUE(h1->Send("GET /one HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto response = h1->ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "ok /one");
  EXPECT_EQ(runner_->counts().http2_connections, 1u);
}

TEST_F(Http2Test, APrefaceInPiecesIsStillHttp2) {
  StartProxy();
  auto raw = TestClient::Connect(runner_->port());
  ASSERT_TRUE(raw->Send("PRI * HTTP/2"));
  std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(raw->Send(".0\r\n\r\nSM"));
  std::this_thread::sleep_for(50ms);
  // The rest, and an empty SETTINGS frame.
  ASSERT_TRUE(raw->Send(std::string("\r\n\r\n") + std::string("\0\0\0\4\0\0\0\0\0", 9)));
  std::string frame = raw->ReadRawExactly(9, 5s);
  ASSERT_EQ(frame.size(), 9u);
  EXPECT_EQ(frame[3], '\4') << "the server's first frame is its SETTINGS";
}

TEST_F(Http2Test, AnHttp1RequestWhoseFirstByteLooksLikeThePrefaceIsHttp1) {
  StartProxy();
  auto client = TestClient::Connect(runner_->port());
  ASSERT_TRUE(client->Send("P"));
  std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(client->Send("OST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"));
  auto response = client->ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  ASSERT_EQ(upstream_.received().size(), 1u);
  EXPECT_EQ(upstream_.received()[0].method, "POST");
  EXPECT_EQ(upstream_.received()[0].body, "hi");
}

TEST_F(Http2Test, ABrokenPrefaceClosesTheConnection) {
  StartProxy();
  auto raw = TestClient::Connect(runner_->port());
  ASSERT_TRUE(raw->Send(std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") +
                        "this is not a frame at all......"));
  EXPECT_TRUE(raw->WaitForClose(5s));
  EXPECT_EQ(upstream_.requests(), 0);
}

// ---- requests to an HTTP/1 app ----

TEST_F(Http2Test, TheAppGetsAnHttp11RequestWithHostAndForwardingFields) {
  StartProxy();
  auto h2 = ConnectH2();
  int32_t id = h2->Submit(
      "GET", "/q?a=1",
      {{"accept", "text/plain"}, {"cookie", "a=1"}, {"cookie", "b=2"}, {"te", "trailers"}});
  ASSERT_TRUE(h2->WaitFor(id));
  EXPECT_EQ(h2->response(id).status, 200);
  ASSERT_EQ(upstream_.received().size(), 1u);
  HttpRequest request = upstream_.received()[0];
  EXPECT_EQ(request.method, "GET");
  EXPECT_EQ(request.target, "/q?a=1");
  EXPECT_EQ(request.version, "1.1");
  EXPECT_EQ(request.Header("host"), "example.test");
  EXPECT_EQ(request.Header("accept"), "text/plain");
  EXPECT_EQ(request.HeaderCount("cookie"), 1);
  EXPECT_EQ(request.Header("cookie"), "a=1; b=2");
  EXPECT_EQ(request.HeaderCount("te"), 0);
  EXPECT_EQ(request.Header("x-forwarded-for"), "127.0.0.1");
  EXPECT_EQ(request.Header("x-forwarded-proto"), "http");
  EXPECT_EQ(request.Header("x-forwarded-host"), "example.test");
}

TEST_F(Http2Test, TheAppsResponseFieldsCrossLowercasedWithoutHopByHopOnes) {
  upstream_.SetHandler([](const HttpRequest&, UpstreamConn& conn) {
    conn.Send(
        "HTTP/1.1 201 Created\r\nX-Thing: Yes\r\nConnection: keep-alive, X-Private\r\n"
        "X-Private: secret\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  });
  StartProxy();
  auto h2 = ConnectH2();
  int32_t id = h2->Submit("GET", "/");
  ASSERT_TRUE(h2->WaitFor(id));
  const auto& response = h2->response(id);
  EXPECT_EQ(response.status, 201);
  EXPECT_EQ(response.body, "hello world");
  EXPECT_EQ(response.Field("x-thing"), "Yes");
  EXPECT_EQ(response.Field("x-private"), "");
  EXPECT_EQ(response.Field("keep-alive"), "");
  EXPECT_EQ(response.Field("connection"), "");
  EXPECT_EQ(response.Field("transfer-encoding"), "");
  EXPECT_EQ(response.reset_code, 0u);
}

TEST_F(Http2Test, HeadGetsTheFieldsAndNoBody) {
  StartProxy();
  auto h2 = ConnectH2();
  int32_t id = h2->Submit("HEAD", "/h");
  ASSERT_TRUE(h2->WaitFor(id));
  EXPECT_EQ(h2->response(id).status, 200);
  EXPECT_EQ(h2->response(id).body, "");
  EXPECT_EQ(h2->response(id).Field("content-length"), "5");  // "ok /h"
  EXPECT_EQ(h2->response(id).reset_code, 0u);
}

TEST_F(Http2Test, ManyStreamsAtOnceEachGetTheirOwnResponse) {
  StartProxy();
  auto h2 = ConnectH2();
  std::vector<int32_t> ids;
  for (int i = 0; i < 40; ++i) ids.push_back(h2->Submit("GET", "/s" + std::to_string(i)));
  for (int i = 0; i < 40; ++i) {
    ASSERT_TRUE(h2->WaitFor(ids[i])) << i;
    EXPECT_EQ(h2->response(ids[i]).status, 200);
    EXPECT_EQ(h2->response(ids[i]).body, "ok /s" + std::to_string(i));
  }
  EXPECT_EQ(upstream_.requests(), 40);
}

TEST_F(Http2Test, ABodyWithContentLengthIsForwardedAsIs) {
  StartProxy();
  auto h2 = ConnectH2();
  std::string body(100'000, 'x');
  int32_t id = h2->Submit("POST", "/up", {{"content-length", std::to_string(body.size())}}, body);
  ASSERT_TRUE(h2->WaitFor(id));
  EXPECT_EQ(h2->response(id).status, 200);
  ASSERT_EQ(upstream_.received().size(), 1u);
  EXPECT_EQ(upstream_.received()[0].body, body);
  EXPECT_FALSE(upstream_.received()[0].chunked);
}

TEST_F(Http2Test, ABodyWithoutALengthIsChunkedAndCarriesTheTrailers) {
  StartProxy();
  auto h2 = ConnectH2();
  int32_t id = h2->Submit("POST", "/up", {{"content-type", "text/plain"}}, std::nullopt,
                          /*more_body=*/true);
  h2->SendBody(id, "first,", false);
  h2->Pump(20ms);
  h2->SendBody(id, "second", true, {{"x-checksum", "abc"}});
  ASSERT_TRUE(h2->WaitFor(id));
  EXPECT_EQ(h2->response(id).status, 200);
  ASSERT_EQ(upstream_.received().size(), 1u);
  HttpRequest request = upstream_.received()[0];
  EXPECT_TRUE(request.chunked);
  EXPECT_EQ(request.body, "first,second");
  EXPECT_EQ(request.Trailer("x-checksum"), "abc");
}

TEST_F(Http2Test, ALargeResponseFlowsThroughTheClientsWindow) {
  std::string big(3 * 1024 * 1024 + 17, 'b');
  upstream_.SetHandler(
      [&big](const HttpRequest&, UpstreamConn& conn) { conn.SendResponse(200, big); });
  StartProxy();
  auto h2 = ConnectH2();
  int32_t id = h2->Submit("GET", "/big");
  ASSERT_TRUE(h2->WaitFor(id, 20s));
  EXPECT_EQ(h2->response(id).status, 200);
  EXPECT_EQ(h2->response(id).body.size(), big.size());
  EXPECT_EQ(h2->response(id).body, big);
}

// ---- errors ----

TEST_F(Http2Test, AnAppThatIsDownIsA502) {
  upstream_.Stop();
  StartProxy();
  auto h2 = ConnectH2();
  int32_t id = h2->Submit("GET", "/");
  ASSERT_TRUE(h2->WaitFor(id));
  EXPECT_EQ(h2->response(id).status, 502);
  EXPECT_EQ(h2->response(id).body, "Bad Gateway\n");
  EXPECT_EQ(runner_->events().error_count(ProxyError::kUpstreamConnect), 1);
}

TEST_F(Http2Test, AGrpcCallToAnAppThatIsDownIsUnavailableTrailersOnly) {
  upstream_.Stop();
  StartProxy();
  auto h2 = ConnectH2();
  int32_t id = h2->Submit("POST", "/pkg.Service/Method",
                          {{"content-type", "application/grpc"}, {"te", "trailers"}},
                          std::string("\0\0\0\0\0", 5));
  ASSERT_TRUE(h2->WaitFor(id));
  const auto& response = h2->response(id);
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.Field("content-type"), "application/grpc");
  EXPECT_EQ(response.Field("grpc-status"), "14");
  EXPECT_NE(response.Field("grpc-message").find("cannot connect to the app at 127.0.0.1:"),
            std::string::npos)
      << response.Field("grpc-message");
  EXPECT_EQ(response.body, "");
}

TEST_F(Http2Test, AGrpcCallTheAppDoesNotAnswerInTimeIsDeadlineExceeded) {
  upstream_.SetHandler(
      [](const HttpRequest&, UpstreamConn& conn) { conn.WaitForGate("never", 3s); });
  auto options = Options();
  options.upstream_timeout = 200ms;
  StartProxy(options);
  auto h2 = ConnectH2();
  int32_t id = h2->Submit("POST", "/pkg.Service/Slow", {{"content-type", "application/grpc+proto"}},
                          std::string("\0\0\0\0\0", 5));
  ASSERT_TRUE(h2->WaitFor(id));
  EXPECT_EQ(h2->response(id).status, 200);
  EXPECT_EQ(h2->response(id).Field("grpc-status"), "4");
  int32_t plain = h2->Submit("GET", "/slow");
  ASSERT_TRUE(h2->WaitFor(plain));
  EXPECT_EQ(h2->response(plain).status, 504);
}

TEST_F(Http2Test, AnAppThatClosesMidResponseResetsTheStream) {
  upstream_.SetHandler([](const HttpRequest&, UpstreamConn& conn) {
    conn.Send("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
    conn.Reset();
  });
  StartProxy();
  auto h2 = ConnectH2();
  int32_t id = h2->Submit("GET", "/cut");
  ASSERT_TRUE(h2->WaitFor(id));
  // Whether the head made it out first or not, the stream ends in a reset, never cleanly.
  EXPECT_TRUE(h2->response(id).reset_received);
  EXPECT_EQ(h2->response(id).reset_code, static_cast<uint32_t>(NGHTTP2_INTERNAL_ERROR))
      << "a cut body must not end cleanly";
  // The connection goes on serving.
  int32_t next = h2->Submit("GET", "/next");
  upstream_.SetHandler(
      [](const HttpRequest& r, UpstreamConn& conn) { conn.SendResponse(200, "ok " + r.target); });
  ASSERT_TRUE(h2->WaitFor(next));
  EXPECT_EQ(h2->response(next).status, 200);
}

TEST_F(Http2Test, AHeadOverMaxHeaderBytesIs431) {
  auto options = Options();
  options.max_header_bytes = 1024;
  StartProxy(options);
  auto h2 = ConnectH2();
  int32_t id = h2->Submit("GET", "/", {{"x-big", std::string(2000, 'a')}});
  ASSERT_TRUE(h2->WaitFor(id));
  EXPECT_EQ(h2->response(id).status, 431);
  EXPECT_EQ(upstream_.requests(), 0);
}

TEST_F(Http2Test, AHostThatContradictsTheAuthorityIs400) {
  StartProxy();
  auto h2 = ConnectH2();
  int32_t id = h2->Submit("GET", "/", {{"host", "other.test"}});
  ASSERT_TRUE(h2->WaitFor(id));
  EXPECT_EQ(h2->response(id).status, 400);
  EXPECT_EQ(upstream_.requests(), 0);
}

TEST_F(Http2Test, AnInvalidFieldValueResetsTheStream) {
  StartProxy();
  auto h2 = ConnectH2();
  int32_t id = h2->Submit("GET", "/", {{"x-bad", std::string("a\x01z", 3)}});
  ASSERT_TRUE(h2->WaitFor(id));
  EXPECT_EQ(h2->response(id).reset_code, static_cast<uint32_t>(NGHTTP2_PROTOCOL_ERROR));
  EXPECT_EQ(upstream_.requests(), 0);
}

TEST_F(Http2Test, ConnectIs405) {
  StartProxy();
  auto h2 = ConnectH2();
  int32_t id = h2->Submit("CONNECT", "", {}, std::nullopt, false, "example.test:443");
  ASSERT_TRUE(h2->WaitFor(id));
  EXPECT_EQ(h2->response(id).status, 405);
}

// ---- hostile clients ----

TEST_F(Http2Test, RapidResetEndsTheConnectionWithEnhanceYourCalm) {
  upstream_.SetHandler(
      [](const HttpRequest&, UpstreamConn& conn) { conn.WaitForGate("never", 3s); });
  StartProxy();
  auto h2 = ConnectH2();
  int sent = 0;
  for (; sent < 1000 && !h2->closed(); ++sent) {
    int32_t id = h2->Submit("GET", "/attack");
    if (id < 0) break;
    h2->ResetStream(id);
  }
  ASSERT_TRUE(h2->WaitForGoaways(1)) << "after " << sent << " streams";
  EXPECT_EQ(h2->goaways().back().error_code, static_cast<uint32_t>(NGHTTP2_ENHANCE_YOUR_CALM));
  EXPECT_TRUE(h2->WaitForClose(5s));
  EXPECT_EQ(runner_->events().error_count(ProxyError::kProtocolAbuse), 1);
  EXPECT_LT(upstream_.requests(), 600) << "the attack was cut off, not served";
}

TEST_F(Http2Test, AClientResettingAFewStreamsIsFine) {
  StartProxy();
  auto h2 = ConnectH2();
  for (int i = 0; i < 50; ++i) h2->ResetStream(h2->Submit("GET", "/changed-my-mind"));
  int32_t id = h2->Submit("GET", "/still-here");
  ASSERT_TRUE(h2->WaitFor(id));
  EXPECT_EQ(h2->response(id).status, 200);
  EXPECT_TRUE(h2->goaways().empty());
}

TEST_F(Http2Test, APingFloodIsCut) {
  StartProxy();
  auto h2 = ConnectH2();
  std::string pings;
  for (int i = 0; i < 5000; ++i) pings += RawFrame(6, 0, 0, std::string(8, 'p'));
  ASSERT_TRUE(h2->SendRaw(pings));  // and never read the ACKs
  std::vector<Frame> frames =
      ReadFrames(h2->fd(), [](const std::vector<Frame>& got) { return GoawayCode(got) >= 0; });
  EXPECT_EQ(GoawayCode(frames), NGHTTP2_ENHANCE_YOUR_CALM);
  EXPECT_TRUE(TestClientEof(h2->fd()));
  EXPECT_EQ(runner_->events().error_count(ProxyError::kProtocolAbuse), 1);
}

TEST_F(Http2Test, ASettingsFrameWithTooManyEntriesIsRefused) {
  StartProxy();
  auto h2 = ConnectH2();
  std::string entries;
  for (int i = 0; i < 40; ++i) entries += std::string("\0\3\0\0\0\144", 6);  // MAX_CONCURRENT
  ASSERT_TRUE(h2->SendRaw(RawFrame(4, 0, 0, entries)));
  std::vector<Frame> frames =
      ReadFrames(h2->fd(), [](const std::vector<Frame>& got) { return GoawayCode(got) >= 0; });
  EXPECT_EQ(GoawayCode(frames), NGHTTP2_ENHANCE_YOUR_CALM);
  EXPECT_TRUE(TestClientEof(h2->fd()));
}

TEST_F(Http2Test, AContinuationFloodIsCut) {
  StartProxy();
  auto h2 = ConnectH2();
  // HEADERS without END_HEADERS (":method GET", indexed), then CONTINUATIONs that never end it.
  std::string flood = RawFrame(1, 0, 1, "\x82");
  for (int i = 0; i < 50; ++i) flood += RawFrame(9, 0, 1, "\x86");
  ASSERT_TRUE(h2->SendRaw(flood));
  std::vector<Frame> frames =
      ReadFrames(h2->fd(), [](const std::vector<Frame>& got) { return GoawayCode(got) >= 0; });
  EXPECT_GE(GoawayCode(frames), 1) << "a connection error, not a request";
  EXPECT_TRUE(TestClientEof(h2->fd()));
  EXPECT_EQ(upstream_.requests(), 0);
}

TEST_F(Http2Test, AHeaderBlockThatDoesNotEndWithinTheHeaderTimeoutEndsTheConnection) {
  auto options = Options();
  options.header_timeout = 300ms;  // the idle timeout stays at 60 s
  StartProxy(options);
  auto h2 = ConnectH2();
  // HEADERS without END_HEADERS (":method GET"), then silence: a slowloris of HTTP/2.
  ASSERT_TRUE(h2->SendRaw(RawFrame(1, 0x1, 1, "\x82")));
  auto start = std::chrono::steady_clock::now();
  std::vector<Frame> frames =
      ReadFrames(h2->fd(), [](const std::vector<Frame>& got) { return GoawayCode(got) >= 0; });
  EXPECT_EQ(GoawayCode(frames), 0) << "no GOAWAY after the header timeout";
  EXPECT_TRUE(TestClientEof(h2->fd()));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 4s);
  EXPECT_EQ(runner_->events().error_count(ProxyError::kHeaderTimeout), 1);
  EXPECT_EQ(upstream_.requests(), 0);
}

TEST_F(Http2Test, AHeaderBlockInPiecesThatEndsInTimeIsServedAndForgotten) {
  auto options = Options();
  options.header_timeout = 300ms;
  StartProxy(options);
  auto h2 = ConnectH2();
  // HEADERS (":method GET", ":scheme http", END_STREAM), 100 ms later a CONTINUATION with
  // ":path /", ":authority example.com" and END_HEADERS.
  ASSERT_TRUE(h2->SendRaw(RawFrame(1, 0x1, 1, "\x82\x86")));
  std::this_thread::sleep_for(100ms);
  ASSERT_TRUE(h2->SendRaw(RawFrame(9, 0x4, 1, std::string("\x84\x41\x0b") + "example.com")));
  std::vector<Frame> frames = ReadFrames(h2->fd(), [](const std::vector<Frame>& got) {
    for (const Frame& frame : got) {
      if (frame.stream_id == 1 && (frame.flags & 0x1) != 0) return true;  // the response ended
    }
    return false;
  });
  bool headers = false;
  for (const Frame& frame : frames) headers = headers || (frame.type == 1 && frame.stream_id == 1);
  EXPECT_TRUE(headers) << "no response";
  EXPECT_EQ(GoawayCode(frames), -1);
  // Well past the header timeout, the connection is still there: a PING is answered.
  std::this_thread::sleep_for(600ms);
  ASSERT_TRUE(h2->SendRaw(RawFrame(6, 0, 0, "12345678")));
  frames = ReadFrames(h2->fd(), [](const std::vector<Frame>& got) {
    for (const Frame& frame : got) {
      if (frame.type == 6 && (frame.flags & 0x1) != 0) return true;
    }
    return false;
  });
  bool acked = false;
  for (const Frame& frame : frames) acked = acked || (frame.type == 6 && (frame.flags & 0x1) != 0);
  EXPECT_TRUE(acked) << "the connection was cut";
  EXPECT_EQ(runner_->events().error_count(ProxyError::kHeaderTimeout), 0);
  EXPECT_EQ(upstream_.requests(), 1);
}

TEST_F(Http2Test, TheConcurrencyLimitIsAdvertised) {
  StartProxy();
  auto h2 = ConnectH2();
  int32_t id = h2->Submit("GET", "/");
  ASSERT_TRUE(h2->WaitFor(id));
  EXPECT_EQ(h2->remote_max_concurrent_streams(), 100u);
}

TEST_F(Http2Test, AnIdleSessionIsClosedAfterTheIdleTimeout) {
  auto options = Options();
  options.idle_timeout = 300ms;
  StartProxy(options);
  auto h2 = ConnectH2();
  int32_t id = h2->Submit("GET", "/");
  ASSERT_TRUE(h2->WaitFor(id));
  ASSERT_TRUE(h2->WaitForGoaways(1, 5s));
  EXPECT_EQ(h2->goaways().back().error_code, static_cast<uint32_t>(NGHTTP2_NO_ERROR));
  EXPECT_TRUE(h2->WaitForClose(5s));
}

// ---- the drain ----

TEST_F(Http2Test, TheDrainSendsTwoGoawaysAndRefusesStreamsAfterTheSecond) {
  upstream_.SetHandler([](const HttpRequest& r, UpstreamConn& conn) {
    if (r.target == "/slow") conn.WaitForGate("slow");
    conn.SendResponse(200, "ok " + r.target);
  });
  StartProxy();
  auto h2 = ConnectH2();
  int32_t slow = h2->Submit("GET", "/slow");
  ASSERT_TRUE(upstream_.WaitForRequests(1, 5s));
  EXPECT_EQ(runner_->counts().in_flight, 1u);
  EXPECT_EQ(runner_->counts().http2_streams, 1u);
  runner_->Call([this] { runner_->proxy().CloseAfterCurrentResponse(); });
  ASSERT_TRUE(h2->WaitForGoaways(2));
  EXPECT_EQ(h2->goaways()[0].last_stream_id, (1u << 31) - 1);
  EXPECT_EQ(h2->goaways()[1].last_stream_id, slow);
  EXPECT_EQ(h2->goaways()[1].error_code, static_cast<uint32_t>(NGHTTP2_NO_ERROR));
  // A client that opens a stream after the final GOAWAY (its HEADERS crossed it on the wire):
  // raw from here on, as nghttp2 would not send it. GET http://a/ on stream 3, HPACK static
  // entries and a literal :authority without indexing.
  ASSERT_TRUE(h2->SendRaw(std::string("\0\0\6\1\5\0\0\0\3", 9) + std::string("\x82\x86\x84\x01\x01"
                                                                             "a",
                                                                             6)));
  std::vector<Frame> frames = ReadFrames(
      h2->fd(), [](const std::vector<Frame>& got) { return !got.empty() && got.back().type == 3; });
  ASSERT_FALSE(frames.empty());
  EXPECT_EQ(frames.back().type, 3) << "RST_STREAM";
  EXPECT_EQ(frames.back().stream_id, 3);
  EXPECT_EQ(frames.back().Word(0), static_cast<uint32_t>(NGHTTP2_REFUSED_STREAM));
  // The open stream finishes; then the connection closes.
  upstream_.OpenGate("slow");
  frames = ReadFrames(h2->fd(), [](const std::vector<Frame>& got) {
    return !got.empty() && got.back().stream_id == 1 && (got.back().flags & 1) != 0;
  });
  ASSERT_FALSE(frames.empty());
  EXPECT_EQ(frames.back().type, 0) << "the slow response's last DATA";
  EXPECT_TRUE(TestClientEof(h2->fd()));
  EXPECT_EQ(upstream_.requests(), 1) << "the refused stream never reached the app";
  EXPECT_TRUE(Eventually([&] { return runner_->counts().connections == 0; }));
  // In the tally: two streams arrived, one answered after the GOAWAY, one refused; the
  // connection ended after its last response.
  proxy::ProxyTally tally = runner_->counts().tally;
  EXPECT_EQ(tally.requests, 2u);
  EXPECT_EQ(tally.completed_close, 1u);
  EXPECT_EQ(tally.refused, 1u);
  EXPECT_EQ(tally.completed + tally.aborted + tally.requests_forced, 0u);
  EXPECT_EQ(tally.accepted, 1u);
  EXPECT_EQ(tally.ended_by(proxy::ConnectionEnd::kAfterResponse), 1u);
}

TEST_F(Http2Test, AClientThatDoesNotAnswerThePingStillGetsTheFinalGoaway) {
  StartProxy();
  auto h2 = ConnectH2();
  int32_t id = h2->Submit("GET", "/a");
  ASSERT_TRUE(h2->WaitFor(id));
  runner_->Call([this] { runner_->proxy().CloseAfterCurrentResponse(); });
  // Raw reads, so nothing acknowledges the PING: the final GOAWAY comes after the bounded wait.
  auto goaways = [](const std::vector<Frame>& frames) {
    return std::count_if(frames.begin(), frames.end(), [](const Frame& f) { return f.type == 7; });
  };
  std::vector<Frame> frames =
      ReadFrames(h2->fd(), [&](const std::vector<Frame>& got) { return goaways(got) == 2; });
  ASSERT_EQ(goaways(frames), 2);
  EXPECT_EQ(frames.back().type, 7);
  EXPECT_EQ(frames.back().Word(0), static_cast<uint32_t>(id)) << "the final GOAWAY's last stream";
}

TEST_F(Http2Test, ASessionAcceptedJustBeforeTheGraceEndsStillHasItsFirstStreamServed) {
  StartProxy();
  runner_->Call([this] { runner_->proxy().CloseAfterCurrentResponse(); });
  auto h2 = ConnectH2();
  ASSERT_TRUE(Eventually([&] { return runner_->counts().http2_connections == 1; }));
  // The grace ends (idle connections are closed) before the client's first stream arrives.
  runner_->Call([this] { return runner_->proxy().CloseIdleConnections(); });
  int32_t id = h2->Submit("GET", "/just-in-time");
  ASSERT_TRUE(h2->WaitFor(id));
  EXPECT_EQ(h2->response(id).status, 200) << "no GOAWAY may come before its first stream";
  ASSERT_TRUE(h2->WaitForGoaways(2));
  EXPECT_EQ(h2->goaways()[0].last_stream_id, (1u << 31) - 1);
  EXPECT_EQ(h2->goaways()[1].last_stream_id, id);
  EXPECT_TRUE(h2->WaitForClose(5s));
}

TEST_F(Http2Test, CloseIdleConnectionsEndsAnIdleSessionWithAGoaway) {
  StartProxy();
  auto h2 = ConnectH2();
  int32_t id = h2->Submit("GET", "/a");
  ASSERT_TRUE(h2->WaitFor(id));
  EXPECT_EQ(runner_->counts().idle, 1u);
  size_t closed = runner_->Call([this] { return runner_->proxy().CloseIdleConnections(); });
  EXPECT_EQ(closed, 1u);
  ASSERT_TRUE(h2->WaitForGoaways(1));
  EXPECT_EQ(h2->goaways().back().last_stream_id, id);
  EXPECT_TRUE(h2->WaitForClose(5s));
  EXPECT_TRUE(Eventually([&] { return runner_->counts().connections == 0; }));
}

TEST_F(Http2Test, ForceCloseAllResetsOpenStreamsAndCountsThem) {
  upstream_.SetHandler(
      [](const HttpRequest&, UpstreamConn& conn) { conn.WaitForGate("never", 5s); });
  StartProxy();
  auto h2 = ConnectH2();
  int32_t a = h2->Submit("GET", "/a");
  int32_t b = h2->Submit("GET", "/b");
  ASSERT_TRUE(upstream_.WaitForRequests(2, 5s));
  EXPECT_EQ(runner_->counts().in_flight, 2u);
  size_t forced = runner_->Call([this] { return runner_->proxy().ForceCloseAll(); });
  EXPECT_EQ(forced, 2u);
  h2->WaitForClose(5s);
  EXPECT_NE(h2->response(a).status, 200);
  EXPECT_NE(h2->response(b).status, 200);
  EXPECT_TRUE(Eventually([&] { return runner_->counts().connections == 0; }));
}

TEST_F(Http2Test, ASessionAcceptedDuringTheDrainIsServedThenTold) {
  StartProxy();
  runner_->Call([this] { runner_->proxy().CloseAfterCurrentResponse(); });
  auto h2 = ConnectH2();
  int32_t id = h2->Submit("GET", "/late-comer");
  ASSERT_TRUE(h2->WaitFor(id));
  EXPECT_EQ(h2->response(id).status, 200);
  ASSERT_TRUE(h2->WaitForGoaways(2));
  EXPECT_EQ(h2->goaways()[1].last_stream_id, id);
  EXPECT_TRUE(h2->WaitForClose(5s));
}

}  // namespace
}  // namespace lameduck::testing
