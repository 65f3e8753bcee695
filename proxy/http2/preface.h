// The HTTP/2 client connection preface (RFC 9113 3.4), for telling an h2c client from an
// HTTP/1 one by its first bytes. Bytes only.
#pragma once

#include <cstddef>
#include <string_view>

namespace lameduck::proxy::http2 {

inline constexpr std::string_view kClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

// Whether `bytes`, the next bytes after the first `seen` bytes of a connection (all of which
// matched), go on matching the preface. Matching all of it is kComplete.
enum class PrefaceMatch { kComplete, kPartial, kMismatch };
inline PrefaceMatch MatchPreface(size_t seen, std::string_view bytes) {
  std::string_view rest = kClientPreface.substr(seen);
  size_t n = bytes.size() < rest.size() ? bytes.size() : rest.size();
  if (bytes.substr(0, n) != rest.substr(0, n)) return PrefaceMatch::kMismatch;
  return n == rest.size() ? PrefaceMatch::kComplete : PrefaceMatch::kPartial;
}

}  // namespace lameduck::proxy::http2
