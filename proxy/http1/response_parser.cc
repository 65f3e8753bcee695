#include "proxy/http1/response_parser.h"

namespace lameduck::proxy::http1 {

// Trampolines from llhttp: record facts and return; Parse acts after llhttp_execute returns.
struct ResponseParserCallbacks {
  static ResponseParser& Self(llhttp_t* parser) {
    return *static_cast<ResponseParser*>(parser->data);
  }
  static int OnMessageBegin(llhttp_t* parser) {
    auto& self = Self(parser);
    self.fields_.Reset();
    self.in_head_ = true;
    self.head_reported_ = false;
    self.head_bytes_ = 0;
    return 0;
  }
  static int OnStatus(llhttp_t* parser, const char* at, size_t length) {
    Self(parser).fields_.AppendTarget(at, length);
    return 0;
  }
  static int OnHeaderField(llhttp_t* parser, const char* at, size_t length) {
    auto& self = Self(parser);
    if (self.in_head_) self.fields_.AppendField(at, length);
    return 0;
  }
  static int OnHeaderValue(llhttp_t* parser, const char* at, size_t length) {
    auto& self = Self(parser);
    if (self.in_head_) self.fields_.AppendValue(at, length);
    return 0;
  }
  static int OnHeadersComplete(llhttp_t* parser) {
    auto& self = Self(parser);
    self.in_head_ = false;
    // A response to HEAD, a 1xx, a 204 and a 304 have no body whatever their framing fields
    // say (RFC 9110 9.3.2, 15.2, 15.3.5, 15.4.5; RFC 9112 6.3 rule 1): a 304's Content-Length
    // is the length of the representation. llhttp would wait for that many bytes, so say it.
    // Then there is no pause here: the head is reported with the message's completion.
    int status = parser->status_code;
    bool interim = status < 200 && status != 101;
    if ((self.head_request_ && status >= 200) || interim || status == 204 || status == 304) {
      return 1;
    }
    self.event_ = ResponseParser::Event::kHeadComplete;
    return HPE_PAUSED;
  }
  static int OnBody(llhttp_t* parser, const char* at, size_t length) {
    auto& self = Self(parser);
    if (self.dechunk_) {
      self.dechunked_.push_back(uv_buf_init(const_cast<char*>(at), static_cast<unsigned>(length)));
    }
    return 0;
  }
  static int OnMessageComplete(llhttp_t* parser) {
    Self(parser).event_ = ResponseParser::Event::kMessageComplete;
    return HPE_PAUSED;
  }
  static const llhttp_settings_t* Settings() {
    static const llhttp_settings_t settings = [] {
      llhttp_settings_t s;
      llhttp_settings_init(&s);
      s.on_message_begin = &OnMessageBegin;
      s.on_status = &OnStatus;
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

ResponseParser::ResponseParser(size_t max_head_bytes) : max_head_bytes_(max_head_bytes) {
  llhttp_init(&parser_, HTTP_RESPONSE, ResponseParserCallbacks::Settings());
  parser_.data = this;
  response_head_.fields = &fields_;
  dechunked_.reserve(16);
}

void ResponseParser::Reset(bool head_request) {
  llhttp_reset(&parser_);
  head_request_ = head_request;
  dechunk_ = false;
  in_head_ = true;
  in_body_ = false;
  head_reported_ = false;
  resume_ = false;
  head_bytes_ = 0;
}

ResponseParser::Step ResponseParser::Parse(const char* data, size_t length) {
  Step step;
  if (resume_) {
    resume_ = false;
    llhttp_resume(&parser_);
  }
  event_ = Event::kNone;
  dechunked_.clear();
  llhttp_errno_t err = llhttp_execute(&parser_, data, length);
  step.used = err == HPE_OK ? length : static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
  if (err != HPE_OK && err != HPE_PAUSED) {
    step.error = true;
    return step;
  }
  if (in_body_) {
    step.body = true;
  } else {
    head_bytes_ += step.used;
    if (head_bytes_ > max_head_bytes_) {
      step.error = true;
      step.head_too_large = true;
      return step;
    }
  }
  if (event_ == Event::kNone) return step;
  resume_ = true;
  if (!head_reported_) {
    head_reported_ = true;
    step.head = true;
    response_head_.status = parser_.status_code;
    response_head_.chunked = (parser_.flags & F_CHUNKED) != 0;
    response_head_.content_length = (parser_.flags & F_CONTENT_LENGTH) != 0;
    in_body_ = event_ == Event::kHeadComplete && !response_head_.interim();  // 1xx: no body
  }
  if (event_ == Event::kMessageComplete) {
    in_body_ = false;
    step.end = true;
  }
  return step;
}

std::string ResponseParser::error_detail() const {
  return std::string(llhttp_errno_name(llhttp_get_errno(&parser_))) + ": " +
         llhttp_get_error_reason(&parser_);
}

bool ResponseParser::Finish() {
  if (resume_) {
    resume_ = false;
    llhttp_resume(&parser_);
  }
  event_ = Event::kNone;
  dechunked_.clear();
  llhttp_errno_t err = llhttp_finish(&parser_);
  if ((err == HPE_OK || err == HPE_PAUSED) && event_ == Event::kMessageComplete) {
    in_body_ = false;
    return true;
  }
  return false;
}

}  // namespace lameduck::proxy::http1
