// The message boundaries of long-lived responses, so that a drain can end them where the
// protocol allows and never inside a message (DESIGN.md, "The drain", step 5): the frames of a
// WebSocket's server-to-client direction (WebSocketFrames) and the events of a Server-Sent
// Events body (SseEvents). Both only look at the bytes as they pass; neither copies or holds any.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lameduck::proxy {

// What a long-lived exchange is, for the drain's accounting.
enum class LongLivedKind : uint8_t {
  kWebSocket,     // a tunnel after a 101 to "Upgrade: websocket"
  kSse,           // a text/event-stream response
  kGrpcStream,    // a gRPC stream (HTTP/2)
  kOtherUpgrade,  // any other tunnel: raw bytes, no boundary lameduck could end it at
};
inline constexpr size_t kLongLivedKinds = 4;
// How one ended.
enum class LongLivedEnd : uint8_t {
  kClean,   // lameduck ended it at a message boundary (Close 1001, an event's end, UNAVAILABLE)
  kByPeer,  // the client or the app ended it first
  kForced,  // cut at --drain-timeout
};
inline constexpr size_t kLongLivedEnds = 3;
std::string_view ToString(LongLivedKind kind);  // "websocket", "sse", "grpc_stream", "upgrade"
std::string_view ToString(LongLivedEnd end);    // "clean", "by_peer", "forced"

// Follows the frames one side of a WebSocket sends (RFC 6455 5.2): a 2-14 byte header, then the
// payload. A message is one data frame with FIN, or a text/binary frame and continuations up to
// one with FIN; control frames (at most 125 bytes, never fragmented) may come between fragments.
// A boundary is where no message is in progress: between frames, outside a fragmented message.
// Extensions do not matter (permessage-deflate compresses payloads, never headers). Anything it
// cannot follow (a reserved opcode, a fragmented control frame, a continuation outside a
// message) breaks it for good: it reports no boundary again, and the drain leaves the
// connection as it is.
class WebSocketFrames {
 public:
  // Follows `length` bytes, or, with kStopAtBoundary, stops right after the first boundary
  // (returns 0 if it is at one already). Returns the bytes followed.
  enum class Mode { kAll, kStopAtBoundary };
  size_t Follow(const char* data, size_t length, Mode mode = Mode::kAll);
  bool at_boundary() const { return !broken_ && have_ == 0 && payload_ == 0 && !in_message_; }
  bool broken() const { return broken_; }
  bool saw_close() const { return saw_close_; }  // a Close frame was sent: a handshake started

  // A Close frame (unmasked, as a server sends it) with `code` and `reason` (at most 123 bytes).
  static std::string CloseFrame(uint16_t code, std::string_view reason);

 private:
  void OnHeader();

  uint8_t header_[14] = {};
  size_t have_ = 0;          // header bytes gathered so far
  size_t need_ = 0;          // header bytes the frame's header needs; 0 between frames
  uint64_t payload_ = 0;     // payload bytes of the current frame still to come
  bool in_message_ = false;  // a fragmented data message is in progress
  bool saw_close_ = false;
  bool broken_ = false;
};

// Follows the messages of a gRPC body (gRPC over HTTP/2, "Length-Prefixed-Message"): a compressed
// flag byte, a 4-byte big-endian length, then the message. A boundary is between two messages.
class GrpcMessages {
 public:
  using Mode = WebSocketFrames::Mode;
  size_t Follow(const char* data, size_t length, Mode mode = Mode::kAll);
  bool at_boundary() const { return have_ == 0 && payload_ == 0; }
  uint64_t messages() const { return messages_; }  // begun so far

 private:
  uint8_t prefix_[5] = {};
  size_t have_ = 0;       // prefix bytes gathered
  uint64_t payload_ = 0;  // message bytes still to come
  uint64_t messages_ = 0;
};

// Follows a text/event-stream body (the HTML standard, "Server-sent events"): lines end with
// CRLF, LF or CR, and an empty line dispatches the event. A boundary is right after an empty
// line (or before the first byte): a stream ended there loses no event, and the client resumes
// with Last-Event-ID from the last one it saw.
class SseEvents {
 public:
  using Mode = WebSocketFrames::Mode;
  size_t Follow(const char* data, size_t length, Mode mode = Mode::kAll);
  bool at_boundary() const { return at_boundary_; }

 private:
  bool in_line_ = false;   // the current line has characters
  bool after_cr_ = false;  // the last byte was a CR: an LF next belongs to it
  bool at_boundary_ = true;
};

}  // namespace lameduck::proxy
