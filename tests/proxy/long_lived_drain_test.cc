// How the drain ends long-lived exchanges (DESIGN.md, "The drain", step 5), over real loopback
// sockets: a WebSocket gets Close 1001 after the message in flight and its closing handshake
// reaches the app; an SSE response ends after a whole event; what lameduck cannot follow is left
// alone; the spread acts on its share at each step.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <optional>
#include <string>
#include <thread>

#include "proxy/long_lived.h"
#include "tests/support/eventually.h"
#include "tests/support/h2_test_client.h"
#include "tests/support/proxy_runner.h"
#include "tests/support/test_client.h"
#include "tests/support/test_upstream.h"
#include "tests/support/wire_frames.h"

namespace lameduck {
namespace {

using namespace std::chrono_literals;
using proxy::LongLivedEnd;
using proxy::LongLivedKind;
using testing::Eventually;
using testing::GrpcMessage;
using testing::H2TestClient;
using testing::ProxyRunner;
using testing::ServerFrame;
using testing::TestClient;
using testing::TestUpstream;
using testing::UpstreamConn;

constexpr size_t kWebSocket = static_cast<size_t>(LongLivedKind::kWebSocket);
constexpr size_t kSse = static_cast<size_t>(LongLivedKind::kSse);
constexpr size_t kGrpcStream = static_cast<size_t>(LongLivedKind::kGrpcStream);

constexpr std::string_view kUpgradeRequest =
    "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
constexpr std::string_view kSwitching =
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

// A frame as a client sends it: masked (payloads under 126 bytes here).
std::string ClientFrame(uint8_t first, std::string_view payload) {
  const char key[4] = {0x12, 0x34, 0x56, 0x78};
  std::string frame = {static_cast<char>(first), static_cast<char>(0x80 | payload.size())};
  frame.append(key, 4);
  for (size_t i = 0; i < payload.size(); ++i) frame.push_back(payload[i] ^ key[i % 4]);
  return frame;
}

struct Frame {
  uint8_t first = 0;
  std::string payload;
  int close_code() const {
    return payload.size() < 2
               ? -1
               : (static_cast<uint8_t>(payload[0]) << 8) | static_cast<uint8_t>(payload[1]);
  }
};

// One unmasked frame from the client's side of the proxy.
std::optional<Frame> ReadFrame(TestClient& client, std::chrono::milliseconds timeout = 3s) {
  std::string head = client.ReadRawExactly(2, timeout);
  if (head.size() < 2) return std::nullopt;
  uint64_t length = static_cast<uint8_t>(head[1]) & 0x7F;
  size_t extra = length == 126 ? 2 : length == 127 ? 8 : 0;
  if (extra > 0) {
    std::string bytes = client.ReadRawExactly(extra, timeout);
    if (bytes.size() < extra) return std::nullopt;
    length = 0;
    for (char c : bytes) length = (length << 8) | static_cast<uint8_t>(c);
  }
  Frame frame;
  frame.first = static_cast<uint8_t>(head[0]);
  frame.payload = client.ReadRawExactly(length, timeout);
  if (frame.payload.size() < length) return std::nullopt;
  return frame;
}

// The request head, read raw by the app.
bool ReadHead(UpstreamConn& conn) {
  std::string head;
  while (head.find("\r\n\r\n") == std::string::npos) {
    std::string more = conn.ReadRaw(4096, 2s);
    if (more.empty()) return false;
    head += more;
  }
  return true;
}

// A chunked body's data; nullopt unless it is whole, up to its last chunk.
std::optional<std::string> Dechunk(std::string_view body) {
  std::string data;
  while (true) {
    size_t line = body.find("\r\n");
    if (line == std::string_view::npos) return std::nullopt;
    size_t size = std::stoul(std::string(body.substr(0, line)), nullptr, 16);
    body.remove_prefix(line + 2);
    if (size == 0) return body == "\r\n" ? std::optional(data) : std::nullopt;
    if (body.size() < size + 2) return std::nullopt;
    data.append(body.substr(0, size));
    body.remove_prefix(size + 2);
  }
}

class LongLivedDrainTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(upstream_.Start()); }

  ProxyRunner& StartProxy(proxy::ProxyOptions options = {}) {
    options.listen = {proxy::ParseAddress("127.0.0.1:0").value()};
    options.upstream = proxy::ParseAddress("127.0.0.1:" + std::to_string(upstream_.port())).value();
    runner_ = std::make_unique<ProxyRunner>(std::move(options));
    EXPECT_EQ(runner_->error(), "");
    return *runner_;
  }
  std::unique_ptr<TestClient> Upgrade() {
    auto client = TestClient::Connect(runner_->port());
    if (!client || !client->Send(kUpgradeRequest)) return nullptr;
    auto response = client->ReadResponse();
    if (!response || response->status != 101) return nullptr;
    return client;
  }
  proxy::SpreadStep Drain(size_t step = 1, size_t steps = 1) {
    return runner_->Call([&] { return runner_->proxy().CloseSpread(step, steps); });
  }

  TestUpstream upstream_;
  std::unique_ptr<ProxyRunner> runner_;
};

// The drain comes while a 200 KiB message is half sent: the client gets all of it, then Close
// 1001, and nothing the app sends after it; the client's Close goes on to the app, which
// answers and closes, and the tunnel ends with FINs.
TEST_F(LongLivedDrainTest, AWebSocketGetsClose1001AfterTheMessageInFlight) {
  std::string big(200 * 1024, 'b');
  std::string big_frame = ServerFrame(0x82, big);
  std::promise<std::string> app_heard;
  upstream_.SetRawConnHandler([&](UpstreamConn& conn) {
    if (!ReadHead(conn)) return;
    conn.Send(kSwitching);
    conn.Send(ServerFrame(0x81, "m1"));
    conn.Send(big_frame.substr(0, 1000));
    if (!conn.WaitForGate("rest")) return;
    conn.Send(big_frame.substr(1000) + ServerFrame(0x81, "m3"));
    app_heard.set_value(conn.ReadRawExactly(8, 3s));  // the client's Close: 2 + 4 + 2 bytes
    conn.Send(ServerFrame(0x88, "\x03\xe9"));         // the app's answer: lameduck drops it
    conn.Close();
    conn.WaitForClose(3s);
  });
  auto& runner = StartProxy();
  auto client = Upgrade();
  ASSERT_TRUE(client);
  auto m1 = ReadFrame(*client);
  ASSERT_TRUE(m1);
  EXPECT_EQ(m1->payload, "m1");
  ASSERT_TRUE(Eventually([&] { return runner.counts().long_lived[kWebSocket] == 1; }));
  // The first 1000 bytes of the big message are through; the drain asks now.
  ASSERT_EQ(client->ReadRawExactly(1000, 3s), big_frame.substr(0, 1000));
  EXPECT_EQ(Drain().long_lived_ending[kWebSocket], 1u);
  EXPECT_EQ(client->ReadRaw(1, 200ms), "");  // no Close inside a message
  upstream_.OpenGate("rest");
  std::string rest = client->ReadRawExactly(big_frame.size() - 1000, 3s);
  EXPECT_EQ(rest, big_frame.substr(1000));
  auto close = ReadFrame(*client);
  ASSERT_TRUE(close) << client->last_error();
  EXPECT_EQ(close->first, 0x88);
  EXPECT_EQ(close->close_code(), 1001);
  EXPECT_EQ(close->payload.substr(2), "server shutting down");
  std::string reply = ClientFrame(0x88, "\x03\xe9");
  ASSERT_TRUE(client->Send(reply));
  auto heard = app_heard.get_future();
  ASSERT_EQ(heard.wait_for(3s), std::future_status::ready);
  EXPECT_EQ(heard.get(), reply);
  EXPECT_EQ(client->ReadRaw(65536, 3s), "");  // not m3, not the app's Close: the end
  EXPECT_TRUE(client->WaitForClose(3s));
  EXPECT_FALSE(client->SawReset());
  client->Close();
  EXPECT_TRUE(Eventually([&] { return runner.counts().connections == 0; }));
  EXPECT_EQ(runner.counts().long_lived[kWebSocket], 0u);
  EXPECT_EQ(runner.events().long_lived_count(LongLivedKind::kWebSocket, LongLivedEnd::kClean), 1);
}

// Between messages, the Close goes at once; a fragmented message (with a ping between its
// fragments) is never cut.
TEST_F(LongLivedDrainTest, AFragmentedMessageIsNeverCutEvenAcrossAPing) {
  upstream_.SetRawConnHandler([&](UpstreamConn& conn) {
    if (!ReadHead(conn)) return;
    conn.Send(kSwitching);
    conn.Send(ServerFrame(0x01, "part1") + ServerFrame(0x89, "ping"));
    if (!conn.WaitForGate("last")) return;
    conn.Send(ServerFrame(0x80, "part2") + ServerFrame(0x81, "after"));
    conn.WaitForClose(3s);
  });
  auto& runner = StartProxy();
  auto client = Upgrade();
  ASSERT_TRUE(client);
  auto part1 = ReadFrame(*client);
  auto ping = ReadFrame(*client);
  ASSERT_TRUE(part1 && ping);
  EXPECT_EQ(ping->first, 0x89);
  EXPECT_EQ(Drain().long_lived_ending[kWebSocket], 1u);
  EXPECT_EQ(client->ReadRaw(1, 200ms), "");
  upstream_.OpenGate("last");
  auto part2 = ReadFrame(*client);
  ASSERT_TRUE(part2);
  EXPECT_EQ(part2->payload, "part2");
  auto close = ReadFrame(*client);
  ASSERT_TRUE(close);
  EXPECT_EQ(close->close_code(), 1001);
  // The client leaves without answering: the tunnel ends all the same.
  client->Close();
  EXPECT_TRUE(Eventually([&] { return runner.counts().connections == 0; }));
  EXPECT_EQ(runner.events().long_lived_count(LongLivedKind::kWebSocket, LongLivedEnd::kClean), 1);
}

// A client that does not answer the Close, on an app that does not close: the closing handshake
// is bounded (5 s at most; --idle-timeout here), then the connection closes.
TEST_F(LongLivedDrainTest, AnUnansweredCloseEndsTheConnectionAfterABoundedWait) {
  upstream_.SetRawConnHandler([&](UpstreamConn& conn) {
    if (!ReadHead(conn)) return;
    conn.Send(kSwitching);
    conn.WaitForClose(10s);
  });
  proxy::ProxyOptions options;
  options.idle_timeout = 300ms;
  auto& runner = StartProxy(options);
  auto client = Upgrade();
  ASSERT_TRUE(client);
  ASSERT_TRUE(Eventually([&] { return runner.counts().long_lived[kWebSocket] == 1; }));
  Drain();
  auto close = ReadFrame(*client);
  ASSERT_TRUE(close);
  EXPECT_EQ(close->close_code(), 1001);
  EXPECT_TRUE(client->WaitForClose(5s));
  EXPECT_TRUE(Eventually([&] { return runner.counts().connections == 0; }));
}

// A frame lameduck cannot follow (a reserved opcode: an extension it does not know) leaves the
// connection as it was before this feature: bytes flow, no Close, cut at the deadline.
TEST_F(LongLivedDrainTest, AFrameItCannotFollowLeavesTheWebSocketAlone) {
  upstream_.SetRawConnHandler([&](UpstreamConn& conn) {
    if (!ReadHead(conn)) return;
    conn.Send(kSwitching);
    conn.Send(ServerFrame(0x83, "x"));
    if (!conn.WaitForGate("more")) return;
    conn.Send(ServerFrame(0x81, "after"));
    conn.WaitForClose(3s);
  });
  auto& runner = StartProxy();
  auto client = Upgrade();
  ASSERT_TRUE(client);
  auto odd = ReadFrame(*client);
  ASSERT_TRUE(odd);
  EXPECT_EQ(odd->first, 0x83);
  EXPECT_EQ(Drain().long_lived_ending[kWebSocket], 0u);
  upstream_.OpenGate("more");
  auto after = ReadFrame(*client);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->payload, "after");
  EXPECT_EQ(client->ReadRaw(1, 200ms), "");  // no Close
  EXPECT_EQ(runner.Call([&] { return runner.proxy().ForceCloseAll(); }), 1u);
  EXPECT_TRUE(Eventually([&] {
    return runner.events().long_lived_count(LongLivedKind::kWebSocket, LongLivedEnd::kForced) == 1;
  }));
}

// --drain-websocket wait: the app closes its own.
TEST_F(LongLivedDrainTest, WaitModeLeavesWebSocketsToTheApp) {
  upstream_.SetRawConnHandler([&](UpstreamConn& conn) {
    if (!ReadHead(conn)) return;
    conn.Send(kSwitching);
    if (!conn.WaitForGate("app closes")) return;
    conn.Send(ServerFrame(0x88, "\x03\xe8"));
    conn.Close();
    conn.WaitForClose(3s);
  });
  proxy::ProxyOptions options;
  options.drain_websocket = proxy::LongLivedDrain::kWait;
  auto& runner = StartProxy(options);
  auto client = Upgrade();
  ASSERT_TRUE(client);
  ASSERT_TRUE(Eventually([&] { return runner.counts().long_lived[kWebSocket] == 1; }));
  EXPECT_EQ(Drain().long_lived_ending[kWebSocket], 0u);
  EXPECT_EQ(client->ReadRaw(1, 200ms), "");
  upstream_.OpenGate("app closes");
  auto close = ReadFrame(*client);
  ASSERT_TRUE(close);
  EXPECT_EQ(close->close_code(), 1000);  // the app's own
  EXPECT_TRUE(client->WaitForClose(3s));
  client->Close();
  EXPECT_TRUE(Eventually([&] {
    return runner.events().long_lived_count(LongLivedKind::kWebSocket, LongLivedEnd::kByPeer) == 1;
  }));
}

// A WebSocket that opens after the spread acted on every connection gets its Close at once;
// unanswered (and the app silent), the closing handshake still ends within 5 s.
TEST_F(LongLivedDrainTest, AWebSocketThatOpensAfterTheSpreadIsClosedAsItOpens) {
  upstream_.SetRawConnHandler([&](UpstreamConn& conn) {
    if (!ReadHead(conn)) return;
    conn.Send(kSwitching);
    conn.WaitForClose(10s);
  });
  StartProxy();
  auto client = TestClient::Connect(runner_->port());
  ASSERT_TRUE(client);
  Drain();  // nothing to act on yet
  ASSERT_TRUE(client->Send(kUpgradeRequest));
  auto response = client->ReadResponse();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 101);
  auto close = ReadFrame(*client);
  ASSERT_TRUE(close);
  EXPECT_EQ(close->close_code(), 1001);
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(client->WaitForClose(8s));  // not --idle-timeout's 60 s
  EXPECT_LT(std::chrono::steady_clock::now() - start, 8s);
}

// An event stream: the drain comes in the middle of an event; the client gets that event whole,
// then the body's end (the last chunk), and never the event after it; the app's side is let go.
TEST_F(LongLivedDrainTest, AnEventStreamEndsAfterAWholeEvent) {
  std::promise<bool> app_saw_close;
  upstream_.SetHandler([&](const testing::HttpRequest&, UpstreamConn& conn) {
    conn.SendHead(200, {{"Content-Type", "text/event-stream; charset=utf-8"},
                        {"Transfer-Encoding", "chunked"}});
    conn.SendChunk("id: 1\ndata: one\n\n");
    conn.SendChunk("id: 2\ndata: tw");
    if (!conn.WaitForGate("rest")) return;
    conn.SendChunk("o\r\n\r\nid: 3\ndata: three\n\n");
    app_saw_close.set_value(conn.WaitForClose(3s));
  });
  auto& runner = StartProxy();
  auto client = TestClient::Connect(runner.port());
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->Send("GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"));
  std::string received;
  while (received.find("data: tw") == std::string::npos) {
    std::string more = client->ReadRaw(65536, 3s);
    ASSERT_FALSE(more.empty()) << client->last_error();
    received += more;
  }
  EXPECT_EQ(runner.counts().long_lived[kSse], 1u);
  EXPECT_EQ(Drain().long_lived_ending[kSse], 1u);
  upstream_.OpenGate("rest");
  while (received.size() < 5 || received.substr(received.size() - 5) != "0\r\n\r\n") {
    std::string more = client->ReadRaw(65536, 3s);
    ASSERT_FALSE(more.empty()) << client->last_error() << "\n" << received;
    received += more;
  }
  size_t head_end = received.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos);
  std::string head = received.substr(0, head_end);
  EXPECT_NE(head.find("Transfer-Encoding: chunked"), std::string::npos) << head;
  auto body = Dechunk(std::string_view(received).substr(head_end + 4));
  ASSERT_TRUE(body) << received;
  EXPECT_EQ(*body, "id: 1\ndata: one\n\nid: 2\ndata: two\r\n\r\n");
  auto saw_close = app_saw_close.get_future();
  ASSERT_EQ(saw_close.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(saw_close.get());  // lameduck let the app's stream go
  EXPECT_TRUE(client->WaitForClose(3s));
  EXPECT_EQ(runner.events().long_lived_count(LongLivedKind::kSse, LongLivedEnd::kClean), 1);
  EXPECT_EQ(runner.events().status_count(200), 1);
}

// An HTTP/1.0 client gets the stream close-delimited: its end is the close, after an event.
TEST_F(LongLivedDrainTest, AnEventStreamToAnHttp10ClientEndsWithTheCloseAfterAnEvent) {
  upstream_.SetHandler([&](const testing::HttpRequest&, UpstreamConn& conn) {
    conn.SendHead(200, {{"Content-Type", "text/event-stream"}, {"Transfer-Encoding", "chunked"}});
    conn.SendChunk("data: one\n\ndata: t");
    if (!conn.WaitForGate("rest")) return;
    conn.SendChunk("wo\n\ndata: three\n\n");
    conn.WaitForClose(3s);
  });
  StartProxy();
  auto client = TestClient::Connect(runner_->port());
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->Send("GET /events HTTP/1.0\r\nHost: x\r\n\r\n"));
  std::string received;
  while (received.find("data: t") == std::string::npos) {
    std::string more = client->ReadRaw(65536, 3s);
    ASSERT_FALSE(more.empty()) << client->last_error();
    received += more;
  }
  EXPECT_EQ(Drain().long_lived_ending[kSse], 1u);
  upstream_.OpenGate("rest");
  while (true) {
    std::string more = client->ReadRaw(65536, 3s);
    if (more.empty()) break;
    received += more;
  }
  EXPECT_NE(client->last_error().find("EOF"), std::string::npos) << client->last_error();
  size_t head_end = received.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos);
  EXPECT_EQ(received.substr(head_end + 4), "data: one\n\ndata: two\n\n");
}

// --drain-sse wait: the stream goes on as the app sends it.
TEST_F(LongLivedDrainTest, WaitModeLeavesEventStreamsAsTheyAre) {
  upstream_.SetHandler([&](const testing::HttpRequest&, UpstreamConn& conn) {
    conn.SendHead(200, {{"Content-Type", "text/event-stream"}, {"Transfer-Encoding", "chunked"}});
    conn.SendChunk("data: one\n\n");
    if (!conn.WaitForGate("rest")) return;
    conn.SendChunk("data: two\n\n");
    conn.SendLastChunk();
  });
  proxy::ProxyOptions options;
  options.drain_sse = proxy::LongLivedDrain::kWait;
  auto& runner = StartProxy(options);
  auto client = TestClient::Connect(runner.port());
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->Send("GET /events HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_TRUE(Eventually([&] { return runner.counts().in_flight == 1; }));
  EXPECT_EQ(Drain().long_lived_ending[kSse], 0u);
  upstream_.OpenGate("rest");
  auto response = client->ReadResponse();
  ASSERT_TRUE(response) << client->last_error();
  EXPECT_EQ(response->body, "data: one\n\ndata: two\n\n");
}

proxy::ProxyOptions Http1App() {
  proxy::ProxyOptions options;
  options.upstream_protocol = proxy::UpstreamProtocol::kHttp1;  // HTTP/2 clients, an HTTP/1 app
  return options;
}

// Over HTTP/2 the same: the stream ends (END_STREAM, no reset) after a whole event.
TEST_F(LongLivedDrainTest, AnHttp2EventStreamEndsAfterAWholeEvent) {
  upstream_.SetHandler([&](const testing::HttpRequest&, UpstreamConn& conn) {
    conn.SendHead(200, {{"Content-Type", "text/event-stream"}, {"Transfer-Encoding", "chunked"}});
    conn.SendChunk("data: one\n\ndata: tw");
    if (!conn.WaitForGate("rest")) return;
    conn.SendChunk("o\n\ndata: three\n\n");
    conn.WaitForClose(3s);
  });
  auto& runner = StartProxy(Http1App());
  auto client = H2TestClient::Connect(runner.port());
  ASSERT_TRUE(client);
  int32_t id = client->Submit("GET", "/events");
  ASSERT_TRUE(Eventually([&] {
    client->Pump(10ms);
    return client->response(id).body.find("data: tw") != std::string::npos;
  }));
  EXPECT_EQ(runner.counts().long_lived[kSse], 1u);
  EXPECT_EQ(Drain().long_lived_ending[kSse], 1u);
  upstream_.OpenGate("rest");
  ASSERT_TRUE(client->WaitFor(id));
  const auto& response = client->response(id);
  EXPECT_EQ(response.body, "data: one\n\ndata: two\n\n");
  EXPECT_FALSE(response.reset_received);
  EXPECT_EQ(runner.events().long_lived_count(LongLivedKind::kSse, LongLivedEnd::kClean), 1);
}

// A gRPC response of one message (a unary call's) is never cut, however long its trailers take;
// one of two messages or more is a stream, and ends after a whole message with UNAVAILABLE.
TEST_F(LongLivedDrainTest, AGrpcStreamEndsAfterAWholeMessageButAUnaryCallIsNeverCut) {
  std::string big(40000, 'm');  // many DATA frames
  upstream_.SetHandler([&](const testing::HttpRequest& request, UpstreamConn& conn) {
    conn.SendHead(200, {{"Content-Type", "application/grpc"}, {"Transfer-Encoding", "chunked"}});
    conn.SendChunk(GrpcMessage("first"));
    if (request.target == "/test.Echo/ServerStream") {
      conn.SendChunk(GrpcMessage(big).substr(0, 1000));
      if (!conn.WaitForGate("stream")) return;
      conn.SendChunk(GrpcMessage(big).substr(1000) + GrpcMessage("after"));
      conn.WaitForClose(3s);
      return;
    }
    if (!conn.WaitForGate("unary")) return;
    conn.SendLastChunk();
  });
  auto& runner = StartProxy(Http1App());
  auto client = H2TestClient::Connect(runner.port());
  ASSERT_TRUE(client);
  testing::HeaderList grpc = {{"content-type", "application/grpc"}, {"te", "trailers"}};
  int32_t unary = client->Submit("POST", "/test.Echo/Unary", grpc);
  int32_t stream = client->Submit("POST", "/test.Echo/ServerStream", grpc);
  ASSERT_TRUE(Eventually([&] {
    client->Pump(10ms);
    return client->response(unary).body.size() == 10 &&
           client->response(stream).body.size() >= 10 + 1000;
  }));
  EXPECT_EQ(runner.counts().long_lived[kGrpcStream], 1u);  // the stream; the unary is not one
  EXPECT_EQ(Drain().long_lived_ending[kGrpcStream], 1u);
  upstream_.OpenGate("stream");
  ASSERT_TRUE(client->WaitFor(stream));
  EXPECT_EQ(client->response(stream).body, GrpcMessage("first") + GrpcMessage(big));
  EXPECT_EQ(client->response(stream).Trailer("grpc-status"), "14");
  EXPECT_FALSE(client->response(stream).reset_received);
  EXPECT_FALSE(client->response(unary).closed);  // still waiting for its end
  upstream_.OpenGate("unary");
  ASSERT_TRUE(client->WaitFor(unary));
  EXPECT_EQ(client->response(unary).body, GrpcMessage("first"));
  EXPECT_EQ(client->response(unary).Trailer("grpc-status"), "");  // not lameduck's 14
  EXPECT_FALSE(client->response(unary).reset_received);
}

// --drain-grpc wait: a gRPC stream goes on as the app sends it.
TEST_F(LongLivedDrainTest, WaitModeLeavesGrpcStreamsToTheApp) {
  upstream_.SetHandler([&](const testing::HttpRequest&, UpstreamConn& conn) {
    conn.SendHead(200, {{"Content-Type", "application/grpc"}, {"Transfer-Encoding", "chunked"}});
    conn.SendChunk(GrpcMessage("one") + GrpcMessage("two"));
    if (!conn.WaitForGate("rest")) return;
    conn.SendChunk(GrpcMessage("three"));
    conn.SendLastChunk();
  });
  proxy::ProxyOptions options = Http1App();
  options.drain_grpc = proxy::LongLivedDrain::kWait;
  auto& runner = StartProxy(options);
  auto client = H2TestClient::Connect(runner.port());
  ASSERT_TRUE(client);
  int32_t id = client->Submit("POST", "/test.Echo/ServerStream",
                              {{"content-type", "application/grpc"}, {"te", "trailers"}});
  ASSERT_TRUE(Eventually([&] {
    client->Pump(10ms);
    return client->response(id).body.size() == 16;
  }));
  EXPECT_EQ(runner.counts().long_lived[kGrpcStream], 1u);
  EXPECT_EQ(Drain().long_lived_ending[kGrpcStream], 0u);
  upstream_.OpenGate("rest");
  ASSERT_TRUE(client->WaitFor(id));
  EXPECT_EQ(client->response(id).body,
            GrpcMessage("one") + GrpcMessage("two") + GrpcMessage("three"));
  EXPECT_EQ(client->response(id).Trailer("grpc-status"), "");
}

// The spread acts on its share of the idle connections at each step, and on the rest at the
// last.
TEST_F(LongLivedDrainTest, TheSpreadClosesItsShareOfIdleConnectionsAtEachStep) {
  auto& runner = StartProxy();
  std::vector<std::unique_ptr<TestClient>> clients;
  for (int i = 0; i < 8; ++i) {
    auto client = TestClient::Connect(runner.port());
    ASSERT_TRUE(client);
    ASSERT_TRUE(client->Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_TRUE(client->ReadResponse());
    clients.push_back(std::move(client));
  }
  ASSERT_TRUE(Eventually([&] { return runner.counts().idle == 8; }));
  EXPECT_EQ(Drain(1, 4).idle_closed, 2u);
  EXPECT_EQ(Drain(2, 4).idle_closed, 2u);
  EXPECT_EQ(Drain(3, 4).idle_closed, 2u);
  EXPECT_EQ(Drain(4, 4).idle_closed, 2u);
  for (auto& client : clients) {
    EXPECT_TRUE(client->WaitForClose(2s));
    EXPECT_FALSE(client->SawReset());
  }
}

}  // namespace
}  // namespace lameduck
