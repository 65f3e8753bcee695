// ResponseParser: one HTTP/1.x response, from bytes fed in as they arrive, parsed by the data
// plane's proxy::http1::ResponseParser (one HTTP/1 stack). The coordinator's use of it: the
// loop's HttpClient and the blocking `lameduck drain` both feed it. Interim 1xx responses are
// skipped (RFC 9110 section 15.2); the head goes into a proxy::HeadCollector, the body (its data,
// without chunk framing) into a string, both bounded.
//
// Does no I/O and keeps no deadline; does not decode content codings; does not follow a 101.
// Not for responses to HEAD.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "proxy/http1/response_parser.h"
#include "proxy/message_head.h"

namespace lameduck::coordinator {

// Outside the class: a nested struct's member initializers cannot serve a default argument of
// its enclosing class (GCC).
struct ResponseLimits {
  size_t max_head_bytes = 16 * 1024;
  size_t max_body_bytes = 1024 * 1024;
};

class ResponseParser {
 public:
  enum class Until {
    kHead,     // complete once the final head is in: the body is not read
    kMessage,  // complete once the whole message is in (by length, chunks, or the peer closing)
  };
  enum class State {
    kReading,   // more bytes needed
    kComplete,  // status(), head() and body() hold the answer; later bytes are ignored
    kFailed,    // failure() says why; nothing more is parsed
  };
  enum class Failure {
    kNone,
    kNothing,       // the peer closed before sending a byte
    kTruncated,     // the peer closed in the middle of the response
    kMalformed,     // not HTTP/1.x: detail() has llhttp's words
    kHeadTooLarge,  // the head passed Limits::max_head_bytes
    kBodyTooLarge,  // the body passed Limits::max_body_bytes
  };
  using Limits = ResponseLimits;

  explicit ResponseParser(Until until, Limits limits = {});
  ResponseParser(const ResponseParser&) = delete;
  ResponseParser& operator=(const ResponseParser&) = delete;

  State Feed(std::string_view bytes);
  State Finish();  // the peer closed: completes a body delimited by the close

  State state() const { return state_; }
  Failure failure() const { return failure_; }
  const std::string& detail() const { return detail_; }  // for kMalformed: "HPE_X: reason"
  size_t received_bytes() const { return received_bytes_; }

  int status() const { return status_; }
  std::string_view reason() const { return head_.target(); }  // as sent, possibly empty
  // "HTTP/1.1 500 Internal Server Error": the status line as received (rebuilt from its parts).
  std::string StatusLine() const;
  const proxy::HeadCollector& head() const { return head_; }
  proxy::HeadCollector TakeHead() { return std::move(head_); }
  const std::string& body() const { return body_; }
  std::string TakeBody() { return std::move(body_); }

 private:
  State Complete();
  State Fail(Failure failure, std::string detail = {});

  // The data plane's parser (bodiless statuses, the head limit, chunked framing): this adds the
  // skipping of 1xx, the body kept in a string, the bounds and the failures named.
  proxy::http1::ResponseParser parser_;
  Until until_;
  Limits limits_;
  State state_ = State::kReading;
  Failure failure_ = Failure::kNone;
  std::string detail_;
  size_t received_bytes_ = 0;
  int status_ = 0;
  bool final_ = false;  // the final (not 1xx) head is in
  proxy::HeadCollector head_;
  std::string body_;
};

std::string_view ToString(ResponseParser::Failure failure);

}  // namespace lameduck::coordinator
