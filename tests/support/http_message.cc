#include "tests/support/http_message.h"

#include <cstring>
#include <string>

namespace lameduck::testing {
namespace {

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

MessageParser* Self(llhttp_t* p) { return static_cast<MessageParser*>(p->data); }

}  // namespace

bool HeaderNameEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

std::string FindHeader(const HeaderList& headers, std::string_view name) {
  for (const auto& [field, value] : headers) {
    if (HeaderNameEquals(field, name)) return value;
  }
  return "";
}

int CountHeader(const HeaderList& headers, std::string_view name) {
  int count = 0;
  for (const auto& header : headers) {
    if (HeaderNameEquals(header.first, name)) ++count;
  }
  return count;
}

MessageParser::MessageParser(Kind kind) : kind_(kind) {
  llhttp_settings_init(&settings_);
  settings_.on_message_begin = &MessageParser::OnMessageBegin;
  settings_.on_url = &MessageParser::OnUrl;
  settings_.on_status = &MessageParser::OnStatus;
  settings_.on_header_field = &MessageParser::OnHeaderField;
  settings_.on_header_value = &MessageParser::OnHeaderValue;
  settings_.on_header_value_complete = &MessageParser::OnHeaderValueComplete;
  settings_.on_headers_complete = &MessageParser::OnHeadersComplete;
  settings_.on_body = &MessageParser::OnBody;
  settings_.on_message_complete = &MessageParser::OnMessageComplete;
  Reset();
}

void MessageParser::Reset(bool head_response, bool pause_after_head) {
  // A fresh llhttp state per message: after a Connection: close message llhttp would refuse more
  // bytes, and the helpers want to see (and report) whatever the peer sends next.
  llhttp_init(&parser_, kind_ == Kind::kRequest ? HTTP_REQUEST : HTTP_RESPONSE, &settings_);
  parser_.data = this;
  head_response_ = head_response;
  pause_after_head_ = pause_after_head;
  started_ = false;
  head_complete_ = false;
  message_complete_ = false;
  paused_ = false;
  field_.clear();
  value_.clear();
  error_.clear();
  request_ = HttpRequest{};
  response_ = HttpResponse{};
}

MessageParser::FeedResult MessageParser::Feed(std::string_view data) {
  if (message_complete_) return {Status::kMessageComplete, 0};
  if (!error_.empty()) return {Status::kError, 0};
  if (paused_) {
    llhttp_resume(&parser_);
    paused_ = false;
  }
  llhttp_errno_t err = llhttp_execute(&parser_, data.data(), data.size());
  if (err == HPE_OK) {
    return {Status::kNeedMore, data.size()};
  }
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
    // The byte where parsing stopped is the first one not part of this message (or head).
    size_t consumed = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data.data());
    if (message_complete_) return {Status::kMessageComplete, consumed};
    if (err == HPE_PAUSED) {
      paused_ = true;
      return {Status::kHeadComplete, consumed};
    }
    // Upgrade pause without message completion does not happen with our callbacks.
    error_ = "unexpected HPE_PAUSED_UPGRADE";
    return {Status::kError, consumed};
  }
  error_ = std::string(llhttp_errno_name(err)) + ": " + llhttp_get_error_reason(&parser_);
  return {Status::kError, 0};
}

MessageParser::Status MessageParser::Finish() {
  if (message_complete_) return Status::kMessageComplete;
  if (!error_.empty()) return Status::kError;
  if (paused_) {
    llhttp_resume(&parser_);
    paused_ = false;
  }
  llhttp_errno_t err = llhttp_finish(&parser_);
  if (message_complete_) return Status::kMessageComplete;
  if (err == HPE_OK && !started_) return Status::kNeedMore;  // clean EOF between messages
  error_ = err == HPE_OK
               ? std::string("connection closed inside a message")
               : std::string(llhttp_errno_name(err)) + ": " + llhttp_get_error_reason(&parser_);
  return Status::kError;
}

HeaderList& MessageParser::CurrentHeaderList() {
  bool trailers = head_complete_;
  if (kind_ == Kind::kRequest) return trailers ? request_.trailers : request_.headers;
  return trailers ? response_.trailers : response_.headers;
}

int MessageParser::OnMessageBegin(llhttp_t* p) {
  Self(p)->started_ = true;
  return 0;
}

int MessageParser::OnUrl(llhttp_t* p, const char* at, size_t len) {
  Self(p)->request_.target.append(at, len);
  return 0;
}

int MessageParser::OnStatus(llhttp_t* p, const char* at, size_t len) {
  Self(p)->response_.reason.append(at, len);
  return 0;
}

int MessageParser::OnHeaderField(llhttp_t* p, const char* at, size_t len) {
  Self(p)->field_.append(at, len);
  return 0;
}

int MessageParser::OnHeaderValue(llhttp_t* p, const char* at, size_t len) {
  Self(p)->value_.append(at, len);
  return 0;
}

int MessageParser::OnHeaderValueComplete(llhttp_t* p) {
  MessageParser* self = Self(p);
  self->CurrentHeaderList().emplace_back(std::move(self->field_), std::move(self->value_));
  self->field_.clear();
  self->value_.clear();
  return 0;
}

int MessageParser::OnHeadersComplete(llhttp_t* p) {
  MessageParser* self = Self(p);
  self->head_complete_ = true;
  std::string version = std::to_string(p->http_major) + "." + std::to_string(p->http_minor);
  bool chunked = (p->flags & F_CHUNKED) != 0;
  bool keep_alive = llhttp_should_keep_alive(p) != 0;
  if (self->kind_ == Kind::kRequest) {
    HttpRequest& r = self->request_;
    r.method = llhttp_method_name(static_cast<llhttp_method_t>(p->method));
    r.version = std::move(version);
    r.chunked = chunked;
    r.keep_alive = keep_alive;
    r.upgrade = p->upgrade != 0;
    if (self->pause_after_head_) return HPE_PAUSED;
    return 0;
  }
  HttpResponse& r = self->response_;
  r.status = p->status_code;
  r.version = std::move(version);
  r.chunked = chunked;
  r.keep_alive = keep_alive;
  // Interim responses never have a body; llhttp knows, and skipping here would break 101.
  if (self->head_response_ && p->status_code >= 200) return 1;
  return 0;
}

int MessageParser::OnBody(llhttp_t* p, const char* at, size_t len) {
  MessageParser* self = Self(p);
  if (self->kind_ == Kind::kRequest) {
    self->request_.body.append(at, len);
  } else {
    self->response_.body.append(at, len);
  }
  return 0;
}

int MessageParser::OnMessageComplete(llhttp_t* p) {
  MessageParser* self = Self(p);
  self->message_complete_ = true;
  if (self->kind_ == Kind::kRequest) {
    self->request_.upgrade = p->upgrade != 0;
    self->request_.complete = true;
  } else {
    self->response_.upgrade = p->upgrade != 0;
  }
  // Stop here: what follows is the next message, or another protocol after an upgrade.
  return HPE_PAUSED;
}

}  // namespace lameduck::testing
