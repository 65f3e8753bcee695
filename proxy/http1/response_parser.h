// ResponseParser: HTTP/1.x responses from the app's bytes, on llhttp. It knows which responses
// have no body whatever their framing fields say (to HEAD, 1xx, 204, 304), keeps the head within
// max_head_bytes, and, for an HTTP/1.0 client, reports the data spans of a chunked body without
// its chunk framing. Bytes in, facts out: it owns no socket and decides nothing about the client.
#pragma once

#include <llhttp.h>
#include <uv.h>  // uv_buf_t only: the spans go straight into a write

#include <cstddef>
#include <string>
#include <vector>

#include "proxy/message_head.h"

namespace lameduck::proxy::http1 {

class ResponseParser {
 public:
  // What one call to Parse found, in the order it happened: body bytes, then a head, then the
  // message's end (a 1xx, a bodiless response or one that ended in this read has both).
  struct Step {
    size_t used = 0;     // bytes of the input consumed
    bool body = false;   // the consumed bytes are body (dechunking: body_spans() hold them)
    bool head = false;   // head() is a new head (interim or final) to pass on
    bool end = false;    // the message (interim or final) ended at `used`
    bool error = false;  // malformed (error_detail() says how), or the head is too large:
    bool head_too_large = false;  // over max_head_bytes
  };

  explicit ResponseParser(size_t max_head_bytes);
  ResponseParser(const ResponseParser&) = delete;
  ResponseParser& operator=(const ResponseParser&) = delete;

  // A new exchange: the response to a HEAD request has no body.
  void Reset(bool head_request);
  // Parses until the next event (head, end) or the end of the input. Call again with the rest;
  // after an event, also with no bytes left (a message may complete without more input).
  Step Parse(const char* data, size_t length);
  // The app closed its end: true if that completed a close-delimited body (RFC 9112 6.3 rule 8).
  bool Finish();
  // From the last head on: report a chunked body as its data spans only.
  void set_dechunk(bool dechunk) { dechunk_ = dechunk; }

  const ResponseHead& head() const { return response_head_; }
  int http_major() const { return parser_.http_major; }
  int http_minor() const { return parser_.http_minor; }
  // After a Step with error and not head_too_large: llhttp's words, "HPE_X: reason".
  std::string error_detail() const;
  const std::vector<uv_buf_t>& body_spans() const { return dechunked_; }
  bool dechunk() const { return dechunk_; }
  // After the final response's end: the app allows another request on this connection.
  bool keep_alive() const { return llhttp_should_keep_alive(&parser_) != 0; }
  void ReleaseHead() { fields_.Release(); }  // idle: the head's storage goes to the spares

 private:
  enum class Event { kNone, kHeadComplete, kMessageComplete };
  friend struct ResponseParserCallbacks;

  llhttp_t parser_;
  HeadCollector fields_;
  ResponseHead response_head_;
  std::vector<uv_buf_t> dechunked_;  // dechunking: the data spans of one Parse call
  size_t max_head_bytes_;
  size_t head_bytes_ = 0;
  Event event_ = Event::kNone;
  bool head_request_ = false;
  bool dechunk_ = false;
  bool in_head_ = true;         // header callbacks are the head's, not trailers
  bool in_body_ = false;        // bytes parsed now are body bytes
  bool head_reported_ = false;  // the head now being parsed went out in a Step
  bool resume_ = false;         // paused at the last event: resume before parsing on
};

}  // namespace lameduck::proxy::http1
