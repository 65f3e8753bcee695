// ResponseParser: one HTTP/1.x response, parsed by llhttp, from bytes fed in as they arrive. The
// one response parser of the coordinator: the loop's HttpClient and the blocking `lameduck drain`
// both feed it. Interim 1xx responses are skipped (RFC 9110 section 15.2); the head goes into a
// proxy::HeadCollector, the body into a string, both bounded.
//
// Does no I/O and keeps no deadline; does not decode content codings; does not follow a 101.
// Not for responses to HEAD (it would wait for the body the Content-Length announces).
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <string>
#include <string_view>

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
  static const llhttp_settings_t* Settings();
  static ResponseParser& Self(llhttp_t* parser) {
    return *static_cast<ResponseParser*>(parser->data);
  }
  int OnMessageBegin();
  int OnHeadBytes(size_t length);
  int OnHeadersComplete();
  int OnBody(const char* at, size_t length);
  int OnMessageComplete();
  State Fail(Failure failure, std::string detail = {});
  State Check(llhttp_errno_t error);

  llhttp_t parser_;
  Until until_;
  Limits limits_;
  State state_ = State::kReading;
  Failure failure_ = Failure::kNone;
  Failure pending_failure_ = Failure::kNone;  // set by a callback that stopped the parser
  std::string detail_;
  size_t received_bytes_ = 0;
  int status_ = 0;
  int http_major_ = 0;
  int http_minor_ = 0;
  bool final_ = false;  // the current message's status is not 1xx
  proxy::HeadCollector head_;
  std::string body_;
};

std::string_view ToString(ResponseParser::Failure failure);

}  // namespace lameduck::coordinator
