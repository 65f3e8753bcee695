#include "coordinator/control/response_parser.h"

namespace lameduck::coordinator {

ResponseParser::ResponseParser(Until until, Limits limits)
    : parser_(limits.max_head_bytes), until_(until), limits_(limits) {
  parser_.Reset(/*head_request=*/false);
  parser_.set_dechunk(true);  // the body's data, whatever its framing
}

ResponseParser::State ResponseParser::Feed(std::string_view bytes) {
  if (state_ != State::kReading) return state_;
  received_bytes_ += bytes.size();
  size_t offset = 0;
  // After an event the parser may complete a message without more input: one more turn then.
  bool event = false;
  while (state_ == State::kReading && (offset < bytes.size() || event)) {
    proxy::http1::ResponseParser::Step step =
        parser_.Parse(bytes.data() + offset, bytes.size() - offset);
    offset += step.used;
    event = step.head || step.end;
    if (step.error) {
      return step.head_too_large ? Fail(Failure::kHeadTooLarge)
                                 : Fail(Failure::kMalformed, parser_.error_detail());
    }
    if (step.body && final_) {
      for (const uv_buf_t& span : parser_.body_spans()) {
        if (body_.size() + span.len > limits_.max_body_bytes) return Fail(Failure::kBodyTooLarge);
        body_.append(span.base, span.len);
      }
    }
    if (step.head && !parser_.head().interim()) {  // 100 Continue and the like are skipped
      final_ = true;
      status_ = parser_.head().status;
      head_ = *parser_.head().fields;
      // A 101 ends the HTTP exchange: what follows is not ours to read.
      if (until_ == Until::kHead || status_ == 101) return Complete();
    }
    if (step.end && final_) return Complete();  // anything after the response is not ours
  }
  return state_;
}

ResponseParser::State ResponseParser::Finish() {
  if (state_ != State::kReading) return state_;
  if (received_bytes_ == 0) return Fail(Failure::kNothing);
  if (final_ && parser_.Finish()) {  // a body delimited by the close (RFC 9112 6.3 rule 8)
    for (const uv_buf_t& span : parser_.body_spans()) body_.append(span.base, span.len);
    return Complete();
  }
  return Fail(Failure::kTruncated);
}

ResponseParser::State ResponseParser::Complete() {
  state_ = State::kComplete;
  return state_;
}

ResponseParser::State ResponseParser::Fail(Failure failure, std::string detail) {
  state_ = State::kFailed;
  failure_ = failure;
  detail_ = std::move(detail);
  return state_;
}

std::string ResponseParser::StatusLine() const {
  std::string line = "HTTP/" + std::to_string(parser_.http_major()) + "." +
                     std::to_string(parser_.http_minor()) + " " + std::to_string(status_);
  if (!reason().empty()) line.append(" ").append(reason());
  return line;
}

std::string_view ToString(ResponseParser::Failure failure) {
  switch (failure) {
    case ResponseParser::Failure::kNone:
      return "none";
    case ResponseParser::Failure::kNothing:
      return "nothing";
    case ResponseParser::Failure::kTruncated:
      return "truncated";
    case ResponseParser::Failure::kMalformed:
      return "malformed";
    case ResponseParser::Failure::kHeadTooLarge:
      return "head_too_large";
    case ResponseParser::Failure::kBodyTooLarge:
      return "body_too_large";
  }
  return "unknown";
}

}  // namespace lameduck::coordinator
