// A blocking HTTP/2 (h2c, prior knowledge) client for tests, on nghttp2 over a plain socket with
// poll timeouts: independent of the libuv code under test. It submits requests (bodies, trailers,
// streamed uploads), records every response (status, fields, body, trailers, RST_STREAM code),
// the GOAWAYs and PINGs it gets, and can hold its receive window shut or send raw bytes.
//
// Single-threaded: everything happens inside Pump() and the calls that wait.
#pragma once

#include <nghttp2/nghttp2.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tests/support/http_message.h"

namespace lameduck::testing {

class H2TestClient {
 public:
  struct Options {
    bool send_preface = true;        // the preface and SETTINGS at once
    bool auto_window_update = true;  // false: the client never opens its window (a slow reader)
    uint32_t initial_window = 65535;
    bool keep_bodies = true;  // false: bodies are counted (received_data_bytes), not kept
  };
  struct Response {
    int status = 0;
    HeaderList fields;
    std::string body;
    HeaderList trailers;
    bool closed = false;          // the stream ended (both sides, or a reset)
    uint32_t reset_code = 0;      // the stream's error code (RST_STREAM) when it closed
    bool reset_received = false;  // the server sent RST_STREAM
    std::string Field(std::string_view name) const;
    std::string Trailer(std::string_view name) const;
  };
  struct Goaway {
    int32_t last_stream_id = 0;
    uint32_t error_code = 0;
  };

  static std::unique_ptr<H2TestClient> Connect(int port, Options options);
  static std::unique_ptr<H2TestClient> Connect(int port) { return Connect(port, Options()); }
  ~H2TestClient();
  H2TestClient(const H2TestClient&) = delete;
  H2TestClient& operator=(const H2TestClient&) = delete;

  // A request; `body` nullopt sends END_STREAM with the HEADERS. With `more_body`, the stream
  // stays open for SendBody. Fields are lowercase "name: value" pairs after the pseudo-headers.
  int32_t Submit(std::string_view method, std::string_view path, const HeaderList& fields = {},
                 std::optional<std::string> body = std::nullopt, bool more_body = false,
                 std::string_view authority = "example.test");
  void SendBody(int32_t stream_id, std::string data, bool end, const HeaderList& trailers = {});
  // Upload bytes handed to SendBody and not yet framed (the window decides when they go).
  size_t upload_pending(int32_t stream_id) const;
  void ResetStream(int32_t stream_id, uint32_t code = NGHTTP2_CANCEL);
  void Ping();
  void SendGoaway();
  bool SendRaw(std::string_view bytes);
  void ConsumeAll();  // opens the window for everything received so far (with the option off)

  // Reads and writes until the stream closed (true) or timeout.
  bool WaitFor(int32_t stream_id, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  bool WaitForGoaways(size_t count, std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Reads until the server closes the connection (true) or timeout.
  bool WaitForClose(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // One round: send what is pending, then read what arrives within timeout. false once closed.
  bool Pump(std::chrono::milliseconds timeout);

  const Response& response(int32_t stream_id) { return responses_[stream_id]; }
  const std::vector<Goaway>& goaways() const { return goaways_; }
  int pings_acked() const { return pings_acked_; }
  int pings_received() const { return pings_received_; }
  bool closed() const { return closed_; }
  size_t received_data_bytes() const { return received_data_bytes_; }
  uint32_t remote_max_concurrent_streams();
  int fd() const { return fd_; }

 private:
  H2TestClient(int fd, bool keep_bodies) : fd_(fd), keep_bodies_(keep_bodies) {}
  struct Upload {
    std::string data;
    size_t sent = 0;
    bool end = false;
    HeaderList trailers;
  };
  static ssize_t ReadUpload(nghttp2_session* session, int32_t stream_id, uint8_t* buf,
                            size_t length, uint32_t* flags, nghttp2_data_source* source,
                            void* user_data);
  bool Flush();
  void ScanForGoaways(std::string_view bytes);

  int fd_;
  bool keep_bodies_;
  nghttp2_session* session_ = nullptr;
  std::map<int32_t, Response> responses_;
  std::map<int32_t, Upload> uploads_;
  std::vector<Goaway> goaways_;
  std::string raw_in_;  // received bytes not yet a whole frame, for ScanForGoaways
  int pings_acked_ = 0;
  int pings_received_ = 0;
  bool closed_ = false;
  size_t received_data_bytes_ = 0;
  friend struct H2TestClientCallbacks;
};

}  // namespace lameduck::testing
