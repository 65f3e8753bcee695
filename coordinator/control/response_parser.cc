#include "coordinator/control/response_parser.h"

namespace lameduck::coordinator {

const llhttp_settings_t* ResponseParser::Settings() {
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = [](llhttp_t* p) { return Self(p).OnMessageBegin(); };
    s.on_status = [](llhttp_t* p, const char* at, size_t length) {
      Self(p).head_.AppendTarget(at, length);
      return Self(p).OnHeadBytes(length);
    };
    s.on_header_field = [](llhttp_t* p, const char* at, size_t length) {
      Self(p).head_.AppendField(at, length);
      return Self(p).OnHeadBytes(length);
    };
    s.on_header_value = [](llhttp_t* p, const char* at, size_t length) {
      Self(p).head_.AppendValue(at, length);
      return Self(p).OnHeadBytes(length);
    };
    s.on_headers_complete = [](llhttp_t* p) { return Self(p).OnHeadersComplete(); };
    s.on_body = [](llhttp_t* p, const char* at, size_t length) {
      return Self(p).OnBody(at, length);
    };
    s.on_message_complete = [](llhttp_t* p) { return Self(p).OnMessageComplete(); };
    return s;
  }();
  return &settings;
}

ResponseParser::ResponseParser(Until until, Limits limits) : until_(until), limits_(limits) {
  llhttp_init(&parser_, HTTP_RESPONSE, Settings());
  parser_.data = this;
}

int ResponseParser::OnMessageBegin() {
  head_.Reset();  // a 1xx before this one is forgotten
  body_.clear();
  final_ = false;
  return 0;
}

int ResponseParser::OnHeadBytes(size_t) {
  if (head_.bytes() <= limits_.max_head_bytes) return 0;
  pending_failure_ = Failure::kHeadTooLarge;
  return -1;
}

int ResponseParser::OnHeadersComplete() {
  status_ = parser_.status_code;
  http_major_ = parser_.http_major;
  http_minor_ = parser_.http_minor;
  // 101 ends the HTTP exchange: final, though 1xx.
  final_ = status_ < 100 || status_ >= 200 || status_ == 101;
  if (final_ && until_ == Until::kHead) {
    state_ = State::kComplete;
    return HPE_PAUSED;
  }
  return 0;
}

int ResponseParser::OnBody(const char* at, size_t length) {
  if (body_.size() + length > limits_.max_body_bytes) {
    pending_failure_ = Failure::kBodyTooLarge;
    return -1;
  }
  body_.append(at, length);
  return 0;
}

int ResponseParser::OnMessageComplete() {
  if (!final_) return 0;  // 100 Continue and the like: the real response follows
  state_ = State::kComplete;
  return HPE_PAUSED;  // anything after the response is not ours to read
}

ResponseParser::State ResponseParser::Feed(std::string_view bytes) {
  if (state_ != State::kReading) return state_;
  received_bytes_ += bytes.size();
  return Check(llhttp_execute(&parser_, bytes.data(), bytes.size()));
}

ResponseParser::State ResponseParser::Finish() {
  if (state_ != State::kReading) return state_;
  if (received_bytes_ == 0) return Fail(Failure::kNothing);
  llhttp_errno_t error = llhttp_finish(&parser_);
  if (state_ == State::kComplete) return state_;
  if (error == HPE_OK || error == HPE_INVALID_EOF_STATE) return Fail(Failure::kTruncated);
  return Check(error);
}

ResponseParser::State ResponseParser::Check(llhttp_errno_t error) {
  if (state_ == State::kComplete) return state_;
  if (error == HPE_OK) return state_;
  if (pending_failure_ != Failure::kNone) return Fail(pending_failure_);
  return Fail(Failure::kMalformed,
              std::string(llhttp_errno_name(error)) + ": " + llhttp_get_error_reason(&parser_));
}

ResponseParser::State ResponseParser::Fail(Failure failure, std::string detail) {
  state_ = State::kFailed;
  failure_ = failure;
  detail_ = std::move(detail);
  return state_;
}

std::string ResponseParser::StatusLine() const {
  std::string line = "HTTP/" + std::to_string(http_major_) + "." + std::to_string(http_minor_) +
                     " " + std::to_string(status_);
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
