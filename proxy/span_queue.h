// SpanQueue: byte spans of pooled blocks waiting to be written, in order, each holding a
// reference to its block. Its storage is kept when it empties, so an object that is recycled
// (an HTTP/2 stream) queues without allocating.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "proxy/buffer_pool.h"
#include "proxy/socket.h"

namespace lameduck::proxy {

class SpanQueue {
 public:
  struct Span {
    BlockRef block;
    size_t offset = 0;
    size_t length = 0;
  };

  void Push(const BlockRef& block, size_t offset, size_t length) {
    if (length == 0) return;
    spans_.push_back({block.Share(), offset, length});
    bytes_ += length;
  }
  bool empty() const { return bytes_ == 0; }
  size_t bytes() const { return bytes_; }
  const Span& front() const { return spans_[head_]; }
  // The first n bytes (at most the front span's) were written.
  void Consume(size_t n) {
    Span& span = spans_[head_];
    span.offset += n;
    span.length -= n;
    bytes_ -= n;
    if (span.length > 0) return;
    span.block.Reset();
    if (++head_ == spans_.size()) Clear();
  }
  template <typename Fn>
  void ForEach(Fn fn) const {  // fn(span) for each span still queued, front first
    for (size_t i = head_; i < spans_.size(); ++i) fn(spans_[i]);
  }
  void Clear() {
    spans_.clear();  // capacity kept
    head_ = 0;
    bytes_ = 0;
  }

 private:
  std::vector<Span> spans_;
  size_t head_ = 0;
  size_t bytes_ = 0;
};

// Writes one HTTP/2 DATA frame, its 9-byte head and `length` bytes of `span`, behind the frame
// bytes already in `out`. A small payload is copied into `out`, so that a flush of many small
// frames leaves in one write at its end; a large one is written from its block, not copied.
// Returns 0 or a libuv error.
inline int WriteDataFrame(Socket& socket, std::string& out, const uint8_t* frame_head,
                          const SpanQueue::Span& span, size_t length) {
  constexpr size_t kCopyBelowBytes = 8 * 1024;
  char* data = span.block.data() + span.offset;
  out.append(frame_head, frame_head + 9);
  if (length < kCopyBelowBytes) {
    out.append(data, length);
    return 0;
  }
  uv_buf_t buf = uv_buf_init(data, static_cast<unsigned>(length));
  return socket.Write(&out, &buf, 1, span.block.Share());
}

}  // namespace lameduck::proxy
