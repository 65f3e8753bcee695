// fuzz_h2_client: HTTP/2 frames from a client, through the real proxy (proxy_harness.h) to an
// HTTP/1 stub app: the connection preface and an empty SETTINGS frame are sent first, then the
// fuzz input's payload in pieces (SplitInput: byte 0's low 3 bits are the number of split points;
// bit 3 keeps the client's side open). The HTTP/2 session, its streams, their translation to
// HTTP/1 and back and every limit are exercised with nghttp2 doing the framing.
#include <cstddef>
#include <cstdint>
#include <string>

#include "tests/fuzz/proxy_harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lameduck::fuzz;
  static auto* harness = new ProxyHarness(lameduck::proxy::UpstreamProtocol::kHttp1);
  static const std::string preface =
      std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") + std::string("\0\0\0\4\0\0\0\0\0", 9);
  unsigned flags = 0;
  Exchange exchange;
  exchange.client = SplitInput(data, size, 3, flags);
  exchange.client.insert(exchange.client.begin(), preface);
  exchange.client_end = (flags & 1) != 0 ? ClientEnd::kKeepOpen : ClientEnd::kHalfClose;
  exchange.upstream_mode = UpstreamMode::kAnswerEach;
  harness->Run(exchange);
  return 0;
}
