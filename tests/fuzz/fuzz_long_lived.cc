// fuzz_long_lived: what an app sends on a long-lived exchange, through the real proxy, with the
// drain coming at a fuzzer-chosen moment (tests/fuzz/proxy_harness.h): WebSocket frames after a
// 101 (lameduck follows them to end at a message boundary with Close 1001), or an event stream's
// body after a text/event-stream head (chunked or close-delimited, to an HTTP/1.1 or 1.0 client;
// lameduck follows the events to end between two). Nothing may crash, hang or leak, whatever
// the frames or events are, and wherever the drain falls.
// Input: byte 0's low 3 bits are the number k of split points, bytes 1..k the points; byte 0's
// bits 3..4 pick the exchange, bits 5..7 how many pieces of the app's bytes go before the drain
// (7: no drain); the rest is what the app sends after the fixed head.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tests/fuzz/proxy_harness.h"

namespace {

struct Kind {
  std::string_view request;
  std::string_view head;  // the app's response head, before the fuzzed bytes
};

constexpr Kind kKinds[] = {
    {"GET /ws HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"},
    {"GET /events HTTP/1.1\r\nHost: app\r\n\r\n",
     "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"},
    {"GET /events HTTP/1.1\r\nHost: app\r\n\r\n",
     "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"},  // close-delimited
    {"GET /events HTTP/1.0\r\n\r\n",
     "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"},
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lameduck::fuzz;
  static auto* harness = new ProxyHarness();  // one loop for the whole run
  unsigned flags = 0;
  std::vector<std::string_view> pieces = SplitInput(data, size, 3, flags);
  const Kind& kind = kKinds[flags & 3];
  Exchange exchange;
  exchange.client = {kind.request};
  exchange.client_end = ClientEnd::kKeepOpen;
  exchange.upstream_mode = UpstreamMode::kScript;
  exchange.upstream.push_back(kind.head);
  exchange.upstream.insert(exchange.upstream.end(), pieces.begin(), pieces.end());
  exchange.upstream_end = UpstreamEnd::kKeepOpen;
  unsigned drain = (flags >> 2) & 7;
  exchange.drain_after_pieces = drain == 7 ? -1 : static_cast<int>(drain);
  harness->Run(exchange);
  return 0;
}
