// RequestParser: HTTP/1.x requests from a client's bytes, on llhttp, with the checks llhttp
// leaves to us (RFC 9112: one space between request-line parts, no whitespace before a field's
// colon, no obs-fold, one Host, no Transfer-Encoding in HTTP/1.0; no CONNECT, only HTTP/1.x).
// Bytes in, facts out: it owns no socket, forwards nothing and answers nothing. After each
// message it stays paused (later bytes are the next pipelined request) until Reset().
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "proxy/message_head.h"
#include "proxy/proxy_events.h"

namespace lameduck::proxy::http1 {

class RequestParser {
 public:
  enum class Outcome {
    kNeedMore,         // every byte used; the head (or the body) goes on in a later read
    kHeadComplete,     // the head ended at `used` and is valid; body bytes follow
    kMessageComplete,  // the message ended at `used`; later bytes are the next request
    kError,            // `error` says which answer the client gets
  };
  struct Result {
    Outcome outcome = Outcome::kNeedMore;
    size_t used = 0;
    ProxyError error = ProxyError::kNone;
  };

  explicit RequestParser(size_t max_head_bytes);
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  // A fresh parser, as constructed: no state of any earlier message. Also how the next message
  // begins (a connection's pooled parser is reset when its next request's first byte arrives),
  // after an upgrade the app declined too: the bytes that follow are HTTP/1.1 again.
  void Reset();
  // A new head begins with the next byte: resets the checks that span reads.
  void StartHead();
  // Head bytes. kHeadComplete or kMessageComplete (a message without a body) once the head is
  // whole and passes every check; the head bytes count against max_head_bytes.
  Result ParseHead(const char* data, size_t length);
  // Body bytes (after kHeadComplete): kNeedMore with all used, kMessageComplete, or kError
  // (a broken chunked body). With `data_spans`, the body's data without its framing (chunk
  // sizes, extensions, trailers) as (offset from `data`, length) spans, appended in order.
  struct Span {
    size_t offset;
    size_t length;
  };
  Result ParseBody(const char* data, size_t length, std::vector<Span>* data_spans = nullptr);
  // Facts about the current request, valid from kHeadComplete on.
  const HeadCollector& head() const { return head_; }
  std::string_view method_name() const;
  bool head_request() const { return parser_.method == HTTP_HEAD; }
  bool idempotent() const;
  bool http10() const { return parser_.http_minor == 0; }
  bool keep_alive() const { return llhttp_should_keep_alive(&parser_) != 0; }
  bool upgrade() const { return parser_.upgrade != 0; }

 private:
  enum class Event { kNone, kHeadComplete, kMessageComplete };
  enum class RequestLine {
    kLeading,
    kMethod,
    kAfterMethod,
    kTarget,
    kAfterTarget,
    kVersion,
    kDone
  };
  friend struct RequestParserCallbacks;

  void ScanHeadBytes(const char* data, size_t length);
  void ScanRequestLine(const char* data, size_t length);
  ProxyError Validate() const;
  size_t Used(llhttp_errno_t err, const char* data, size_t length) const;

  llhttp_t parser_;
  HeadCollector head_;
  size_t max_head_bytes_;
  Event event_ = Event::kNone;
  size_t head_bytes_ = 0;
  const char* body_base_ = nullptr;  // ParseBody's data, while it runs with spans wanted
  std::vector<Span>* data_spans_ = nullptr;
  RequestLine request_line_ = RequestLine::kLeading;
  bool head_in_progress_ = false;  // inside the head: header callbacks are not trailers
  bool saw_line_end_ = false;      // obs-fold scan: the previous head byte was LF
  bool obs_fold_ = false;
  bool bad_field_name_ = false;
  bool bad_request_line_ = false;  // a run of spaces in the request line
};

}  // namespace lameduck::proxy::http1
