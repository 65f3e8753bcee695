// What apps send on long-lived exchanges, built for tests: a WebSocket frame as a server sends
// it (unmasked, the shortest length encoding) and a gRPC length-prefixed message.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace lameduck::testing {

inline std::string ServerFrame(uint8_t first, std::string_view payload) {
  std::string frame(1, static_cast<char>(first));
  size_t n = payload.size();
  if (n < 126) {
    frame.push_back(static_cast<char>(n));
  } else if (n < 65536) {
    frame.push_back(126);
    frame.push_back(static_cast<char>(n >> 8));
    frame.push_back(static_cast<char>(n & 0xFF));
  } else {
    frame.push_back(127);
    for (int shift = 56; shift >= 0; shift -= 8) frame.push_back(static_cast<char>(n >> shift));
  }
  return frame.append(payload);
}

inline std::string GrpcMessage(std::string_view payload) {
  std::string message(1, '\0');  // not compressed
  uint32_t n = static_cast<uint32_t>(payload.size());
  for (int shift = 24; shift >= 0; shift -= 8) message.push_back(static_cast<char>(n >> shift));
  return message.append(payload);
}

}  // namespace lameduck::testing
