// ProxyHarness: a real lameduck::proxy::Proxy on a libuv loop in the fuzzer's own thread, with
// a stub upstream on the same loop, both on unix sockets in a temporary folder. One Run() is
// one client connection: the client's bytes are written in the given pieces (the loop turns
// between pieces, so the proxy reads them apart), then the upstream stub either answers every
// request with a small fixed response (kAnswerEach) or writes the scripted response bytes in
// their pieces once the proxy has sent it something (kScript). Run() returns when the proxy has
// closed the client connection, or after a short bound; then everything the exchange opened is
// closed again, and the proxy must come back to empty (a leak or a hang aborts: a finding).
#pragma once

#include <uv.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/proxy.h"

namespace lameduck::fuzz {

// Pieces of one input, split at points taken from the input's first bytes: byte 0's low
// `count_bits` bits are the number of split points k, bytes 1..k each a position (scaled to the
// rest's length); the rest is the payload. Returns the other bits of byte 0 in `flags`.
std::vector<std::string_view> SplitInput(const uint8_t* data, size_t size, int count_bits,
                                         unsigned& flags);

enum class UpstreamMode { kAnswerEach, kScript };
enum class ClientEnd { kHalfClose, kKeepOpen };
enum class UpstreamEnd { kClose, kKeepOpen };

struct Exchange {
  std::vector<std::string_view> client;  // written to the proxy, in pieces
  ClientEnd client_end = ClientEnd::kHalfClose;
  UpstreamMode upstream_mode = UpstreamMode::kAnswerEach;
  std::vector<std::string_view> upstream;  // kScript: the upstream's response bytes, in pieces
  UpstreamEnd upstream_end = UpstreamEnd::kClose;
  // kScript: once this many upstream pieces are written (0: before the first), the drain acts
  // (every response says close; idle connections close and long-lived ones end, in one step).
  // A proxy that drained is replaced by a fresh one after the exchange. -1: no drain.
  int drain_after_pieces = -1;
};

class ProxyHarness {
 public:
  // The proxy speaks `protocol` to the stub upstream (auto: as the client spoke).
  explicit ProxyHarness(proxy::UpstreamProtocol protocol = proxy::UpstreamProtocol::kAuto);
  ~ProxyHarness();
  ProxyHarness(const ProxyHarness&) = delete;
  ProxyHarness& operator=(const ProxyHarness&) = delete;

  void Run(const Exchange& exchange);
  size_t client_bytes_received() const { return client_bytes_received_; }

  struct StubConnection;  // one upstream connection the stub accepted

 private:
  static void OnStubConnection(uv_stream_t* server, int status);
  void Pump(int turns);  // turns the loop without blocking, and reads what the client got
  bool ReadClient();     // false once the proxy closed the client connection
  void Cleanup();
  void StartProxy();
  void Drain();

  uv_loop_t loop_;
  std::string dir_;
  std::string proxy_path_;
  std::string upstream_path_;
  proxy::ProxyEvents events_;
  proxy::UpstreamProtocol protocol_;
  std::unique_ptr<proxy::Proxy> proxy_;
  bool drained_ = false;
  uv_pipe_t stub_server_;
  std::vector<StubConnection*> stubs_;  // open ones; freed in their close callbacks
  int client_fd_ = -1;
  bool client_eof_ = false;
  size_t client_bytes_received_ = 0;
  const Exchange* exchange_ = nullptr;
};

}  // namespace lameduck::fuzz
