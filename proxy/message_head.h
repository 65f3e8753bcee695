// Message heads, whatever protocol carried them: HeadCollector records the pieces a parser
// reports (spans that may be split across reads) into one buffer per connection, and
// ResponseHead is what an exchange learns about a response head. No parsing and no writing:
// those belong to the wire protocol (proxy/http1/).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lameduck::proxy {

// One message head as the parser reported it. Reset per message; capacity is kept, so steady
// traffic does not allocate. Between messages the storage can go back to a per-thread spare
// list (Release), so that an idle connection holds none: the next head takes it back from there.
class HeadCollector {
 public:
  HeadCollector() = default;
  ~HeadCollector() { Release(); }
  HeadCollector(const HeadCollector& other) { *this = other; }
  HeadCollector& operator=(const HeadCollector& other);
  HeadCollector(HeadCollector&& other) noexcept;
  HeadCollector& operator=(HeadCollector&& other) noexcept;
  void Reset();
  void Release();                                    // Reset, and the storage goes to the spares
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
  struct Storage {
    std::string bytes;
    std::vector<Field> fields;
  };
  static std::vector<Storage>& Spares();
  std::string_view View(Span span) const { return {bytes_.data() + span.offset, span.length}; }
  void Append(Span& span, const char* at, size_t length);
  void TakeStorage();  // before the first byte of a head: from the spares, or newly reserved

  std::string bytes_;
  Span target_;
  std::vector<Field> fields_;
  Last last_ = Last::kNone;
};

// A response head as the upstream side hands it to the exchange: never a parser's own struct.
struct ResponseHead {
  int status = 0;
  const HeadCollector* fields = nullptr;  // target() is the reason phrase
  bool chunked = false;                   // Transfer-Encoding: chunked frames the body
  bool content_length = false;            // Content-Length frames the body
  bool end_stream = false;  // HTTP/2: the head ended the stream (gRPC's trailers-only response)
  bool interim() const { return status < 200 && status != 101; }  // 1xx other than 101
};

bool EqualsIgnoreCase(std::string_view a, std::string_view b);
// True if the comma-separated list `value` holds `token` (case-insensitive), as in
// "Connection: keep-alive, Upgrade".
bool ListHasToken(std::string_view value, std::string_view token);
// True if a Content-Type value is text/event-stream (any case, parameters and surrounding
// spaces or tabs ignored): a Server-Sent Events response.
bool IsEventStream(std::string_view content_type);
std::string_view ReasonPhrase(int status);  // for the statuses lameduck answers itself

}  // namespace lameduck::proxy
