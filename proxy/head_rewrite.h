// Message heads: collecting what llhttp reports (spans that may be split across reads) into one
// buffer per connection, and writing the heads lameduck sends on: the request to the upstream
// and the response to the client, with hop-by-hop fields removed (RFC 9110 section 7.6.1) and
// the forwarding fields added. Does not parse: llhttp does; this only records and rewrites.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lameduck::proxy {

// One message head as llhttp reported it. Reset per message; capacity is kept, so steady
// traffic does not allocate.
class HeadCollector {
 public:
  HeadCollector();
  void Reset();
  void AppendTarget(const char* at, size_t length);  // request-target or reason phrase
  void AppendField(const char* at, size_t length);
  void AppendValue(const char* at, size_t length);

  std::string_view target() const { return View(target_); }
  size_t field_count() const { return fields_.size(); }
  std::string_view name(size_t i) const { return View(fields_[i].name); }
  std::string_view value(size_t i) const;  // trailing whitespace trimmed (RFC 9110 5.5)
  // The value of the single field called `name` (case-insensitive); empty if absent.
  std::string_view Find(std::string_view name) const;
  int Count(std::string_view name) const;
  size_t bytes() const { return bytes_.size(); }

 private:
  struct Span {
    uint32_t offset = 0;
    uint32_t length = 0;
  };
  struct Field {
    Span name;
    Span value;
  };
  enum class Last { kNone, kTarget, kField, kValue };
  std::string_view View(Span span) const { return {bytes_.data() + span.offset, span.length}; }
  void Append(Span& span, const char* at, size_t length);

  std::string bytes_;
  Span target_;
  std::vector<Field> fields_;
  Last last_ = Last::kNone;
};

bool EqualsIgnoreCase(std::string_view a, std::string_view b);
// True if the comma-separated list `value` holds `token` (case-insensitive), as in
// "Connection: keep-alive, Upgrade".
bool ListHasToken(std::string_view value, std::string_view token);

// Everything the request head writer needs besides the head itself.
struct RequestRewrite {
  std::string_view method;
  std::string_view client_ip;     // empty for unix-socket clients: no X-Forwarded-For entry
  bool upgrade = false;           // keep Upgrade and send Connection: upgrade
  std::string_view default_host;  // sent as Host when the request has none (HTTP/1.0)
};

// Writes the request head for the upstream into `out` (cleared first). Always HTTP/1.1; keeps
// Host and the framing fields (the body is forwarded as it arrived); drops hop-by-hop fields;
// appends X-Forwarded-For, sets X-Forwarded-Proto and X-Forwarded-Host.
void WriteRequestHead(const HeadCollector& head, const RequestRewrite& rewrite, std::string& out);

enum class ResponseFraming {
  kAsIs,     // forward the body bytes as they come
  kDechunk,  // HTTP/1.0 client, chunked response: drop Transfer-Encoding, send the data only
};
enum class ResponseConnection { kKeepAlive, kKeepAliveHttp10, kClose, kUpgrade };

struct ResponseRewrite {
  int status = 0;
  ResponseFraming framing = ResponseFraming::kAsIs;
  ResponseConnection connection = ResponseConnection::kKeepAlive;
};

// Writes the response head for the client into `out` (cleared first).
void WriteResponseHead(const HeadCollector& head, const ResponseRewrite& rewrite, std::string& out);

// A complete response lameduck makes itself (errors): short text body, Connection: close.
void WriteErrorResponse(int status, std::string& out);
std::string_view ReasonPhrase(int status);

}  // namespace lameduck::proxy
