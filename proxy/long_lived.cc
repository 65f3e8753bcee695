#include "proxy/long_lived.h"

#include <algorithm>

namespace lameduck::proxy {
namespace {

enum Opcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};
constexpr uint8_t kFin = 0x80;
constexpr uint8_t kMasked = 0x80;
constexpr uint64_t kMaxControlPayload = 125;

}  // namespace

std::string_view ToString(LongLivedKind kind) {
  switch (kind) {
    case LongLivedKind::kWebSocket:
      return "websocket";
    case LongLivedKind::kSse:
      return "sse";
    case LongLivedKind::kGrpcStream:
      return "grpc_stream";
    case LongLivedKind::kOtherUpgrade:
      return "upgrade";
  }
  return "unknown";
}

std::string_view ToString(LongLivedEnd end) {
  switch (end) {
    case LongLivedEnd::kClean:
      return "clean";
    case LongLivedEnd::kByPeer:
      return "by_peer";
    case LongLivedEnd::kForced:
      return "forced";
  }
  return "unknown";
}

size_t WebSocketFrames::Follow(const char* data, size_t length, Mode mode) {
  size_t i = 0;
  while (i < length && !broken_) {
    if (mode == Mode::kStopAtBoundary && at_boundary()) return i;
    if (payload_ > 0) {
      uint64_t take = std::min<uint64_t>(payload_, length - i);
      payload_ -= take;
      i += take;
      continue;
    }
    header_[have_++] = static_cast<uint8_t>(data[i++]);
    if (have_ == 2) {
      uint8_t length7 = header_[1] & 0x7F;
      need_ = 2 + (length7 == 126 ? 2 : length7 == 127 ? 8 : 0) + (header_[1] & kMasked ? 4 : 0);
    }
    if (have_ >= 2 && have_ == need_) OnHeader();
  }
  return i;
}

void WebSocketFrames::OnHeader() {
  bool fin = header_[0] & kFin;
  uint8_t opcode = header_[0] & 0x0F;
  uint8_t length7 = header_[1] & 0x7F;
  uint64_t length = length7;
  if (length7 == 126) {
    length = (uint64_t{header_[2]} << 8) | header_[3];
  } else if (length7 == 127) {
    length = 0;
    for (int k = 2; k < 10; ++k) length = (length << 8) | header_[k];
    if (length >> 63) broken_ = true;  // the most significant bit must be 0
  }
  switch (opcode) {
    case kText:
    case kBinary:
      if (in_message_) broken_ = true;  // a new message inside a fragmented one
      in_message_ = !fin;
      break;
    case kContinuation:
      if (!in_message_) broken_ = true;  // nothing to continue
      in_message_ = !fin;
      break;
    case kClose:
    case kPing:
    case kPong:
      if (!fin || length > kMaxControlPayload) broken_ = true;
      if (opcode == kClose) saw_close_ = true;
      break;
    default:
      broken_ = true;  // a reserved opcode: an extension lameduck does not know
      break;
  }
  payload_ = length;
  have_ = 0;
  need_ = 0;
}

std::string WebSocketFrames::CloseFrame(uint16_t code, std::string_view reason) {
  reason = reason.substr(0, kMaxControlPayload - 2);
  std::string frame;
  frame.reserve(4 + reason.size());
  frame.push_back(static_cast<char>(kFin | kClose));
  frame.push_back(static_cast<char>(2 + reason.size()));  // unmasked: a server's frame
  frame.push_back(static_cast<char>(code >> 8));
  frame.push_back(static_cast<char>(code & 0xFF));
  frame.append(reason);
  return frame;
}

size_t GrpcMessages::Follow(const char* data, size_t length, Mode mode) {
  size_t i = 0;
  while (i < length) {
    if (mode == Mode::kStopAtBoundary && at_boundary()) return i;
    if (payload_ > 0) {
      uint64_t take = std::min<uint64_t>(payload_, length - i);
      payload_ -= take;
      i += take;
      continue;
    }
    prefix_[have_++] = static_cast<uint8_t>(data[i++]);
    if (have_ == sizeof(prefix_)) {
      payload_ = (uint64_t{prefix_[1]} << 24) | (uint64_t{prefix_[2]} << 16) |
                 (uint64_t{prefix_[3]} << 8) | prefix_[4];
      have_ = 0;
      ++messages_;
    }
  }
  return i;
}

size_t SseEvents::Follow(const char* data, size_t length, Mode mode) {
  for (size_t i = 0; i < length; ++i) {
    char c = data[i];
    if (after_cr_ && c == '\n') {
      after_cr_ = false;  // the LF of a CRLF: it belongs to the line ending before it
      continue;
    }
    if (mode == Mode::kStopAtBoundary && at_boundary_) return i;
    after_cr_ = c == '\r';
    if (c == '\r' || c == '\n') {
      at_boundary_ = !in_line_;  // an empty line dispatches the event
      in_line_ = false;
    } else {
      in_line_ = true;
      at_boundary_ = false;
    }
  }
  return length;
}

}  // namespace lameduck::proxy
