// HTTP/1.1 messages as the test helpers see them, and the llhttp-based parser that assembles them
// from bytes arriving in pieces. Shared by TestClient (responses) and TestUpstream (requests).
// Test support only: it keeps whole bodies in memory and favours clear failures over speed.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lameduck::testing {

// Header fields in arrival order, names as received (case kept, duplicates kept).
using HeaderList = std::vector<std::pair<std::string, std::string>>;

// Case-insensitive (RFC 9110 5.1) lookups over a HeaderList.
std::string FindHeader(const HeaderList& headers, std::string_view name);  // first; "" if absent
int CountHeader(const HeaderList& headers, std::string_view name);
bool HeaderNameEquals(std::string_view a, std::string_view b);

struct HttpRequest {
  std::string method;  // "GET"
  std::string target;  // as sent: "/a?b=c", or "host:443" for CONNECT
  std::string version = "1.1";
  HeaderList headers;
  std::string body;        // de-chunked
  HeaderList trailers;     // chunked only
  bool chunked = false;    // Transfer-Encoding: chunked
  bool keep_alive = true;  // llhttp_should_keep_alive() after the head
  bool upgrade = false;    // the connection switches protocol after this request
  bool complete = false;   // the whole message arrived (false: head only, or a truncated body)
  int connection_id = 0;   // TestUpstream: 1-based accept order of the carrying connection

  std::string Header(std::string_view name) const { return FindHeader(headers, name); }
  int HeaderCount(std::string_view name) const { return CountHeader(headers, name); }
  std::string Trailer(std::string_view name) const { return FindHeader(trailers, name); }
};

struct HttpResponse {
  int status = 0;
  std::string reason;  // "OK"
  std::string version = "1.1";
  HeaderList headers;
  std::string body;        // de-chunked; empty for HEAD, 1xx, 204, 304
  HeaderList trailers;     // chunked only
  bool chunked = false;    // Transfer-Encoding: chunked
  bool keep_alive = true;  // llhttp_should_keep_alive() after the head
  bool upgrade = false;    // 101 (or 2xx to CONNECT): raw bytes follow

  std::string Header(std::string_view name) const { return FindHeader(headers, name); }
  int HeaderCount(std::string_view name) const { return CountHeader(headers, name); }
  std::string Trailer(std::string_view name) const { return FindHeader(trailers, name); }
};

// Assembles one message at a time with llhttp. Feed() stops after each message (and, if asked,
// after each head) and says how many bytes it used; the rest belong to whatever comes next
// (a pipelined message, or raw bytes after an upgrade), so the caller keeps them.
class MessageParser {
 public:
  enum class Kind { kRequest, kResponse };
  enum class Status {
    kNeedMore,         // every byte given was used; the message is not complete yet
    kHeadComplete,     // only with pause_after_head: head parsed, body not started
    kMessageComplete,  // message() is whole; bytes after `consumed` are not parsed
    kError,            // error() says why; the parser stays in error until Reset()
  };
  struct FeedResult {
    Status status;
    size_t consumed;  // bytes of the input that belong to this message
  };

  explicit MessageParser(Kind kind);
  MessageParser(const MessageParser&) = delete;
  MessageParser& operator=(const MessageParser&) = delete;

  // Starts the next message. head_response: the request was HEAD, so the response has no body
  // whatever its headers say (RFC 9112 6.3). pause_after_head: Feed() also stops at the head.
  void Reset(bool head_response = false, bool pause_after_head = false);
  FeedResult Feed(std::string_view data);
  Status Finish();  // the peer closed: completes a close-delimited body, else kError/kNeedMore

  bool head_complete() const { return head_complete_; }
  bool message_complete() const { return message_complete_; }
  bool started() const { return started_; }  // any byte of the message seen
  const std::string& error() const { return error_; }
  const HttpRequest& request() const { return request_; }
  const HttpResponse& response() const { return response_; }
  HttpRequest& mutable_request() { return request_; }
  HttpResponse& mutable_response() { return response_; }

 private:
  static int OnMessageBegin(llhttp_t* p);
  static int OnUrl(llhttp_t* p, const char* at, size_t len);
  static int OnStatus(llhttp_t* p, const char* at, size_t len);
  static int OnHeaderField(llhttp_t* p, const char* at, size_t len);
  static int OnHeaderValue(llhttp_t* p, const char* at, size_t len);
  static int OnHeaderValueComplete(llhttp_t* p);
  static int OnHeadersComplete(llhttp_t* p);
  static int OnBody(llhttp_t* p, const char* at, size_t len);
  static int OnMessageComplete(llhttp_t* p);

  HeaderList& CurrentHeaderList();

  Kind kind_;
  llhttp_settings_t settings_;
  llhttp_t parser_;
  bool head_response_ = false;
  bool pause_after_head_ = false;
  bool started_ = false;
  bool head_complete_ = false;
  bool message_complete_ = false;
  bool paused_ = false;  // the last Feed() stopped on HPE_PAUSED: resume before the next one
  std::string field_;
  std::string value_;
  std::string error_;
  HttpRequest request_;
  HttpResponse response_;
};

}  // namespace lameduck::testing
