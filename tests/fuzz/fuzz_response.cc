// fuzz_response: bytes from an upstream, through the real proxy (tests/fuzz/proxy_harness.h).
// A client sends one of a few fixed requests (plain, HEAD, HTTP/1.0 so chunked bodies are
// dechunked, an Upgrade, 100-continue, Connection: close, a chunked upload, pipelined); once the
// proxy has passed it on, the upstream stub writes the input's bytes as its response, in pieces.
// Input: byte 0's low 3 bits are the number k of split points, bytes 1..k the points; byte 0's
// bits 3..5 pick the request, bit 6 keeps the upstream connection open after the bytes
// (otherwise it closes: close-delimited bodies), bit 7 keeps the client's side open; the rest is
// the response.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tests/fuzz/proxy_harness.h"

namespace {

constexpr std::string_view kRequests[] = {
    "GET / HTTP/1.1\r\nHost: app\r\n\r\n",
    "HEAD / HTTP/1.1\r\nHost: app\r\n\r\n",
    "GET / HTTP/1.0\r\n\r\n",
    "GET /ws HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nping",
    "POST /up HTTP/1.1\r\nHost: app\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
    "GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n",
    "POST /up HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "GET /a HTTP/1.1\r\nHost: app\r\n\r\nGET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lameduck::fuzz;
  static auto* harness = new ProxyHarness();  // one loop and proxy for the whole run
  unsigned flags = 0;
  Exchange exchange;
  exchange.upstream = SplitInput(data, size, 3, flags);
  exchange.client = {kRequests[flags & 7]};
  exchange.upstream_mode = UpstreamMode::kScript;
  exchange.upstream_end = (flags & 8) != 0 ? UpstreamEnd::kKeepOpen : UpstreamEnd::kClose;
  exchange.client_end = (flags & 16) != 0 ? ClientEnd::kKeepOpen : ClientEnd::kHalfClose;
  harness->Run(exchange);
  return 0;
}
