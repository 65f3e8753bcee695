// fuzz_h2_upstream: bytes from an h2c app, through the real proxy (proxy_harness.h,
// --upstream-protocol h2c): a client sends one GET and keeps its side open, an HTTP/2 one
// (preface, SETTINGS, HEADERS with END_STREAM) or, with bit 4 of byte 0, an HTTP/1.1 one; the
// stub app reads what the proxy sends it and answers with the fuzz input's payload in pieces
// (SplitInput: byte 0's low 3 bits are the number of split points; bit 3 keeps the app's side
// open afterwards). The upstream session, its streams, GOAWAY and reset handling, trailers, and
// the client side they feed (an HTTP/2 stream, or an HTTP/1 connection that chunks the response)
// are exercised.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/fuzz/proxy_harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lameduck::fuzz;
  static auto* harness = new ProxyHarness(lameduck::proxy::UpstreamProtocol::kH2c);
  // GET http://a/ on stream 1: HPACK static entries, :authority as a literal without indexing.
  static const std::string request = std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") +
                                     std::string("\0\0\0\4\0\0\0\0\0", 9) +
                                     std::string("\0\0\6\1\5\0\0\0\1", 9) +
                                     std::string(
                                         "\x82\x86\x84\x01\x01"
                                         "a",
                                         6);
  static const std::string http1_request = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  unsigned flags = 0;
  Exchange exchange;
  std::vector<std::string_view> upstream = SplitInput(data, size, 3, flags);
  exchange.client = {(flags & 2) != 0 ? http1_request : request};
  exchange.client_end = ClientEnd::kKeepOpen;
  exchange.upstream_mode = UpstreamMode::kScript;
  exchange.upstream = std::move(upstream);
  exchange.upstream_end = (flags & 1) != 0 ? UpstreamEnd::kKeepOpen : UpstreamEnd::kClose;
  harness->Run(exchange);
  return 0;
}
