// Back-pressure, measured on the real binary: 1 GiB through lameduck in each direction, with the
// slow side stalling for a while every 64 MiB, must leave lameduck's peak resident memory
// (VmHWM) small. Without back-pressure the proxy would buffer what the fast side sends during
// each stall: hundreds of MiB.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "tests/support/child_process.h"
#include "tests/support/h2_test_client.h"
#include "tests/support/h2_test_upstream.h"
#include "tests/support/test_client.h"
#include "tests/support/test_upstream.h"

namespace lameduck::testing {
namespace {

using namespace std::chrono_literals;

constexpr size_t kTotalBytes = size_t{1} << 30;        // 1 GiB
constexpr size_t kStallEveryBytes = size_t{64} << 20;  // the slow side stalls every 64 MiB
constexpr size_t kHttp2Bytes = size_t{256} << 20;      // HTTP/2: 256 MiB, four stalls
constexpr auto kStall = 100ms;
// The bound this test promises (README): lameduck's peak RSS stays under 32 MiB while moving
// 1 GiB against a slow peer. Measured: 5.8 MiB (and 830 MiB with back-pressure disabled).
// Under AddressSanitizer (shadow memory, quarantined frees) RSS says nothing about lameduck: the
// transfer is still checked, the bound is not.
#if defined(__SANITIZE_ADDRESS__)
constexpr long kPeakRssLimitKib = 1L << 40;
#else
constexpr long kPeakRssLimitKib = 32 * 1024;
#endif

const std::string& Chunk() {
  static const std::string chunk(1 << 20, 'x');
  return chunk;
}

// Reads until the end of a head; returns what followed it.
std::string ReadHead(int fd) {
  std::string bytes = ReadThroughHead(fd, 5s);
  return bytes.empty() ? "" : bytes.substr(bytes.find("\r\n\r\n") + 4);
}

// Reads `total` bytes, stalling kStall every kStallEveryBytes; returns the count read.
size_t ReadSlowly(int fd, size_t total, size_t already) {
  std::vector<char> buf(256 * 1024);
  size_t got = already;
  size_t next_stall = kStallEveryBytes;
  while (got < total) {
    ssize_t n = RecvWithTimeout(fd, buf.data(), std::min(buf.size(), total - got), 10s);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
    if (got >= next_stall) {
      std::this_thread::sleep_for(kStall);
      next_stall += kStallEveryBytes;
    }
  }
  return got;
}

// An app's raw handler: reads the request head, then answers with `total` bytes of body
// (Content-Length), sent as fast as the proxy takes them.
std::function<void(int)> ServeBytes(size_t total) {
  return [total](int fd) {
    ReadHead(fd);
    std::string head = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(total) + "\r\n\r\n";
    if (!SendAllWithTimeout(fd, head, 5s)) return;
    for (size_t sent = 0; sent < total; sent += Chunk().size()) {
      if (!SendAllWithTimeout(fd, Chunk(), 10s)) return;
    }
  };
}

// An app's raw handler: reads a `total`-byte upload slowly (counting it into `received`), then
// answers "done".
std::function<void(int)> TakeUploadSlowly(size_t total, std::atomic<size_t>& received) {
  return [total, &received](int fd) {
    std::string early = ReadHead(fd);
    received = ReadSlowly(fd, total, early.size());
    SendAllWithTimeout(fd, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone", 5s);
  };
}

class BackpressureTest : public ::testing::Test {
 protected:
  void StartLameduck(int upstream_port, const std::string& upstream_protocol = "auto") {
    ASSERT_TRUE(lameduck_.Start({LameduckBinary(), "--listen", "127.0.0.1:0", "--upstream",
                                 "127.0.0.1:" + std::to_string(upstream_port), "--admin",
                                 "127.0.0.1:0", "--upstream-protocol", upstream_protocol}));
    auto line = lameduck_.WaitForLine("\"start\"", 5s);
    ASSERT_TRUE(line) << "lameduck did not log start";
    port_ = nlohmann::json::parse(*line)["listen_ports"][0].get<int>();
  }
  // lameduck's peak resident memory so far stays under the bound.
  void ExpectPeakRssBounded(const char* what) {
    long peak = lameduck_.PeakRssKib();
    std::printf("%s: lameduck peak RSS %ld KiB\n", what, peak);
    EXPECT_GT(peak, 0);
    EXPECT_LT(peak, kPeakRssLimitKib);
  }
  void TearDown() override {
    lameduck_.Signal(SIGKILL);
    lameduck_.Wait(5s);
  }

  ChildProcess lameduck_;
  int port_ = 0;
};

TEST_F(BackpressureTest, AGibibyteUploadToASlowUpstreamKeepsMemoryBounded) {
  TestUpstream upstream;
  std::atomic<size_t> received{0};
  upstream.SetRawHandler(TakeUploadSlowly(kTotalBytes, received));
  ASSERT_TRUE(upstream.Start());
  StartLameduck(upstream.port());
  auto client = TestClient::Connect(port_);
  ASSERT_NE(client, nullptr);
  client->set_timeout(10s);
  ASSERT_TRUE(client->Send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                           std::to_string(kTotalBytes) + "\r\n\r\n"));
  for (size_t sent = 0; sent < kTotalBytes; sent += Chunk().size()) {
    ASSERT_TRUE(client->Send(Chunk())) << "after " << sent << " bytes";
  }
  auto response = client->ReadResponse();
  ASSERT_TRUE(response) << client->last_error();
  EXPECT_EQ(response->body, "done");
  EXPECT_EQ(received.load(), kTotalBytes);
  ExpectPeakRssBounded("upload");
}

TEST_F(BackpressureTest, AGibibyteDownloadBySlowClientKeepsMemoryBounded) {
  TestUpstream upstream;
  upstream.SetRawHandler(ServeBytes(kTotalBytes));
  ASSERT_TRUE(upstream.Start());
  StartLameduck(upstream.port());
  auto client = TestClient::Connect(port_);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Send("GET /big HTTP/1.1\r\nHost: x\r\n\r\n"));
  // The head, then the body read slowly straight off the socket.
  std::string head;
  while (head.find("\r\n\r\n") == std::string::npos) {
    std::string more = client->ReadRaw(4096, 5s);
    ASSERT_FALSE(more.empty()) << "no response head";
    head += more;
  }
  size_t body_start = head.find("\r\n\r\n") + 4;
  ASSERT_NE(head.find("Content-Length: " + std::to_string(kTotalBytes)), std::string::npos);
  size_t got = ReadSlowly(client->fd(), kTotalBytes, head.size() - body_start);
  EXPECT_EQ(got, kTotalBytes);
  ExpectPeakRssBounded("download");
}

// HTTP/2: a download read by a client that stalls every `stall_every` bytes (its window stays
// shut while it does not read); true once the stream ended.
bool DownloadSlowly(H2TestClient& client, int32_t id, size_t stall_every) {
  auto deadline = std::chrono::steady_clock::now() + 120s;
  size_t next_stall = stall_every;
  while (!client.response(id).closed && std::chrono::steady_clock::now() < deadline) {
    if (!client.Pump(100ms)) break;
    if (client.received_data_bytes() >= next_stall) {
      std::this_thread::sleep_for(kStall);
      next_stall += stall_every;
    }
  }
  return client.response(id).closed;
}

H2TestClient::Options CountBodiesOnly() {
  H2TestClient::Options options;
  options.keep_bodies = false;
  return options;
}

TEST_F(BackpressureTest, AnHttp2DownloadBySlowClientKeepsMemoryBounded) {
  TestUpstream upstream;  // HTTP/1.1: the response is translated into DATA frames
  upstream.SetRawHandler(ServeBytes(kHttp2Bytes));
  ASSERT_TRUE(upstream.Start());
  StartLameduck(upstream.port(), "http1");
  auto client = H2TestClient::Connect(port_, CountBodiesOnly());
  ASSERT_NE(client, nullptr);
  int32_t id = client->Submit("GET", "/big");
  ASSERT_TRUE(DownloadSlowly(*client, id, kStallEveryBytes));
  EXPECT_EQ(client->response(id).status, 200);
  EXPECT_FALSE(client->response(id).reset_received);
  EXPECT_EQ(client->received_data_bytes(), kHttp2Bytes);
  ExpectPeakRssBounded("http2 download");
}

TEST_F(BackpressureTest, AnHttp2UploadToASlowUpstreamKeepsMemoryBounded) {
  TestUpstream upstream;
  std::atomic<size_t> received{0};
  upstream.SetRawHandler(TakeUploadSlowly(kHttp2Bytes, received));
  ASSERT_TRUE(upstream.Start());
  StartLameduck(upstream.port(), "http1");
  auto client = H2TestClient::Connect(port_, H2TestClient::Options());
  ASSERT_NE(client, nullptr);
  int32_t id = client->Submit("POST", "/upload", {{"content-length", std::to_string(kHttp2Bytes)}},
                              std::nullopt, /*more_body=*/true);
  size_t handed = 0;
  auto deadline = std::chrono::steady_clock::now() + 120s;
  while (!client->response(id).closed && std::chrono::steady_clock::now() < deadline) {
    while (handed < kHttp2Bytes && client->upload_pending(id) < Chunk().size()) {
      handed += Chunk().size();
      client->SendBody(id, Chunk(), handed == kHttp2Bytes);
    }
    if (!client->Pump(100ms)) break;
  }
  ASSERT_TRUE(client->response(id).closed);
  EXPECT_EQ(client->response(id).status, 200);
  EXPECT_EQ(client->response(id).body, "done");
  EXPECT_EQ(received.load(), kHttp2Bytes);
  ExpectPeakRssBounded("http2 upload");
}

TEST_F(BackpressureTest, AnH2cDownloadBySlowClientHoldsTheAppsWindow) {
  // h2c to the app: a slow client must hold the app's stream window shut, not let lameduck
  // buffer what the app sends while the client stalls.
  constexpr size_t kBytes = size_t{96} << 20;
  H2TestUpstream app;
  app.SetHandler([&](const H2TestUpstream::Request&) {
    H2TestUpstream::Reply reply;
    reply.body.assign(kBytes, 'y');
    return reply;
  });
  ASSERT_TRUE(app.Start());
  StartLameduck(app.port(), "h2c");
  auto client = H2TestClient::Connect(port_, CountBodiesOnly());
  ASSERT_NE(client, nullptr);
  int32_t id = client->Submit("GET", "/big");
  ASSERT_TRUE(DownloadSlowly(*client, id, size_t{16} << 20));
  EXPECT_EQ(client->response(id).status, 200);
  EXPECT_FALSE(client->response(id).reset_received);
  EXPECT_EQ(client->received_data_bytes(), kBytes);
  ExpectPeakRssBounded("h2c download");
}

}  // namespace
}  // namespace lameduck::testing
