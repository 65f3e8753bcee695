#include "proxy/http1/request_parser.h"

#include <cstring>

namespace lameduck::proxy::http1 {

// Trampolines from llhttp: record facts and return; the parser's caller acts after
// llhttp_execute returns.
struct RequestParserCallbacks {
  static RequestParser& Self(llhttp_t* parser) {
    return *static_cast<RequestParser*>(parser->data);
  }
  static int OnMessageBegin(llhttp_t* parser) {
    auto& self = Self(parser);
    self.head_.Reset();
    self.head_in_progress_ = true;
    return 0;
  }
  static int OnUrl(llhttp_t* parser, const char* at, size_t length) {
    Self(parser).head_.AppendTarget(at, length);
    return 0;
  }
  static int OnHeaderField(llhttp_t* parser, const char* at, size_t length) {
    auto& self = Self(parser);
    if (!self.head_in_progress_) return 0;  // a trailer: forwarded as body bytes
    // llhttp accepts "Host : x"; RFC 9112 5.1 says reject whitespace before the colon.
    if (std::memchr(at, ' ', length) != nullptr || std::memchr(at, '\t', length) != nullptr) {
      self.bad_field_name_ = true;
    }
    self.head_.AppendField(at, length);
    return 0;
  }
  static int OnHeaderValue(llhttp_t* parser, const char* at, size_t length) {
    auto& self = Self(parser);
    if (self.head_in_progress_) self.head_.AppendValue(at, length);
    return 0;
  }
  static int OnHeadersComplete(llhttp_t* parser) {
    auto& self = Self(parser);
    self.head_in_progress_ = false;
    self.event_ = RequestParser::Event::kHeadComplete;
    return HPE_PAUSED;
  }
  static int OnBody(llhttp_t* parser, const char* at, size_t length) {
    auto& self = Self(parser);
    if (self.data_spans_ != nullptr) {
      self.data_spans_->push_back({static_cast<size_t>(at - self.body_base_), length});
    }
    return 0;
  }
  static int OnMessageComplete(llhttp_t* parser) {
    Self(parser).event_ = RequestParser::Event::kMessageComplete;
    return HPE_PAUSED;
  }
  static const llhttp_settings_t* Settings() {
    static const llhttp_settings_t settings = [] {
      llhttp_settings_t s;
      llhttp_settings_init(&s);
      s.on_message_begin = &OnMessageBegin;
      s.on_url = &OnUrl;
      s.on_header_field = &OnHeaderField;
      s.on_header_value = &OnHeaderValue;
      s.on_headers_complete = &OnHeadersComplete;
      s.on_body = &OnBody;
      s.on_message_complete = &OnMessageComplete;
      return s;
    }();
    return &settings;
  }
};

RequestParser::RequestParser(size_t max_head_bytes) : max_head_bytes_(max_head_bytes) {
  llhttp_init(&parser_, HTTP_REQUEST, RequestParserCallbacks::Settings());
  parser_.data = this;
}

void RequestParser::Reset() {
  llhttp_reset(&parser_);  // keeps the settings and data
  head_.Reset();
  event_ = Event::kNone;
  body_base_ = nullptr;
  data_spans_ = nullptr;
  head_in_progress_ = false;
  StartHead();
}

void RequestParser::StartHead() {
  head_bytes_ = 0;
  saw_line_end_ = false;
  obs_fold_ = false;
  bad_field_name_ = false;
  bad_request_line_ = false;
  request_line_ = RequestLine::kLeading;
}

size_t RequestParser::Used(llhttp_errno_t err, const char* data, size_t length) const {
  return err == HPE_OK ? length : static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
}

RequestParser::Result RequestParser::ParseHead(const char* data, size_t length) {
  event_ = Event::kNone;
  llhttp_errno_t err = llhttp_execute(&parser_, data, length);
  size_t used = Used(err, data, length);
  if (err != HPE_OK && !(err == HPE_PAUSED && event_ == Event::kHeadComplete)) {
    return {Outcome::kError, used, ProxyError::kBadRequest};
  }
  ScanHeadBytes(data, used);
  head_bytes_ += used;
  if (head_bytes_ > max_head_bytes_) return {Outcome::kError, used, ProxyError::kHeadTooLarge};
  if (err == HPE_OK) return {Outcome::kNeedMore, used};
  // The head is complete. A message without a body completes without more input: find out now,
  // so that what follows in this read is known to be the next request, not this one's body.
  llhttp_resume(&parser_);
  event_ = Event::kNone;
  err = llhttp_execute(&parser_, data + used, 0);
  // llhttp checks Transfer-Encoding only here, after the head ("gzip" without chunked).
  if (err != HPE_OK && !(err == HPE_PAUSED && event_ == Event::kMessageComplete)) {
    return {Outcome::kError, used, ProxyError::kBadRequest};
  }
  if (ProxyError error = Validate(); error != ProxyError::kNone) {
    return {Outcome::kError, used, error};
  }
  return {event_ == Event::kMessageComplete ? Outcome::kMessageComplete : Outcome::kHeadComplete,
          used};
}

RequestParser::Result RequestParser::ParseBody(const char* data, size_t length,
                                               std::vector<Span>* data_spans) {
  event_ = Event::kNone;
  body_base_ = data;
  data_spans_ = data_spans;
  llhttp_errno_t err = llhttp_execute(&parser_, data, length);
  data_spans_ = nullptr;
  size_t used = Used(err, data, length);
  if (err == HPE_OK) return {Outcome::kNeedMore, used};
  if (err == HPE_PAUSED && event_ == Event::kMessageComplete) {
    return {Outcome::kMessageComplete, used};
  }
  return {Outcome::kError, used, ProxyError::kBadRequest};
}

std::string_view RequestParser::method_name() const {
  return llhttp_method_name(static_cast<llhttp_method_t>(parser_.method));
}

bool RequestParser::idempotent() const {
  // RFC 9110 9.2.2; TRACE is idempotent too but never worth a second try.
  uint8_t method = parser_.method;
  return method == HTTP_GET || method == HTTP_HEAD || method == HTTP_OPTIONS ||
         method == HTTP_PUT || method == HTTP_DELETE;
}

void RequestParser::ScanHeadBytes(const char* data, size_t length) {
  ScanRequestLine(data, length);
  // obs-fold (a line that starts with SP or HTAB) is accepted by llhttp; RFC 9112 5.2 lets a
  // server reject it, and a proxy must not pass it on: reject.
  const char* end = data + length;
  if (saw_line_end_ && length > 0 && (*data == ' ' || *data == '\t')) obs_fold_ = true;
  for (const char* p = data; p < end;) {
    const char* lf = static_cast<const char*>(std::memchr(p, '\n', end - p));
    if (lf == nullptr) break;
    if (lf + 1 < end && (lf[1] == ' ' || lf[1] == '\t')) obs_fold_ = true;
    p = lf + 1;
  }
  if (length > 0) saw_line_end_ = end[-1] == '\n';
}

// RFC 9112 3: request-line = method SP request-target SP HTTP-version, one space each; llhttp
// skips runs of spaces, and re-emitting the line normalised would hide what the client sent.
// Empty lines before it are ignored (RFC 9112 2.2), as llhttp does.
void RequestParser::ScanRequestLine(const char* data, size_t length) {
  for (size_t i = 0; i < length && request_line_ != RequestLine::kDone; ++i) {
    char c = data[i];
    bool space = c == ' ' || c == '\t';
    switch (request_line_) {
      case RequestLine::kLeading:
        if (c != '\r' && c != '\n') request_line_ = RequestLine::kMethod;
        break;
      case RequestLine::kMethod:
        if (space) request_line_ = RequestLine::kAfterMethod;
        break;
      case RequestLine::kAfterMethod:
        if (space) bad_request_line_ = true;
        request_line_ = RequestLine::kTarget;
        break;
      case RequestLine::kTarget:
        if (space) request_line_ = RequestLine::kAfterTarget;
        break;
      case RequestLine::kAfterTarget:
        if (space) bad_request_line_ = true;
        request_line_ = RequestLine::kVersion;
        break;
      case RequestLine::kVersion:
        if (space) bad_request_line_ = true;
        if (c == '\r' || c == '\n') request_line_ = RequestLine::kDone;
        break;
      case RequestLine::kDone:
        break;
    }
  }
}

ProxyError RequestParser::Validate() const {
  if (parser_.http_major != 1) return ProxyError::kVersionNotSupported;
  if (parser_.method == HTTP_CONNECT) return ProxyError::kMethodNotAllowed;
  if (obs_fold_ || bad_field_name_ || bad_request_line_) return ProxyError::kBadRequest;
  // RFC 9112 3.2: exactly one Host in HTTP/1.1; at most one in HTTP/1.0.
  int hosts = head_.Count("host");
  if (hosts > 1 || (parser_.http_minor >= 1 && hosts == 0)) return ProxyError::kBadRequest;
  // HTTP/1.0 has no chunked coding: Transfer-Encoding there is a smuggling attempt (RFC 9112 6.1).
  if (parser_.http_minor == 0 && (parser_.flags & F_TRANSFER_ENCODING) != 0) {
    return ProxyError::kBadRequest;
  }
  return ProxyError::kNone;
}

}  // namespace lameduck::proxy::http1
