// fuzz_request: bytes from a client, through the real proxy (tests/fuzz/proxy_harness.h): a
// Proxy on a unix socket, an upstream stub that answers every request it can parse with a small
// fixed response. Input: byte 0's low 3 bits are the number k of split points, bytes 1..k the
// points (each scaled to the rest's length); bit 3 of byte 0 keeps the client's side open
// (otherwise it half-closes after its last byte); the rest is what the client sends.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/proxy_harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lameduck::fuzz;
  static auto* harness = new ProxyHarness();  // one loop and proxy for the whole run
  unsigned flags = 0;
  Exchange exchange;
  exchange.client = SplitInput(data, size, 3, flags);
  exchange.client_end = (flags & 1) != 0 ? ClientEnd::kKeepOpen : ClientEnd::kHalfClose;
  exchange.upstream_mode = UpstreamMode::kAnswerEach;
  harness->Run(exchange);
  return 0;
}
