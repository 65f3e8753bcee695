#include "proxy/message_head.h"

#include <utility>

namespace lameduck::proxy {
namespace {

constexpr size_t kInitialHeadBytes = 2048;
constexpr size_t kInitialFields = 32;
// Spare storage kept per thread: enough for the heads in progress at once under load; more
// goes back to malloc.
constexpr size_t kMaxSpares = 64;

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls fn(token) for each element of a comma-separated list, trimmed, skipping empty ones.
template <typename Fn>
void ForEachToken(std::string_view list, Fn fn) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view token = TrimOws(list.substr(0, comma));
    if (!token.empty()) fn(token);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

}  // namespace

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

bool IsEventStream(std::string_view content_type) {
  std::string_view type = content_type.substr(0, content_type.find(';'));
  while (!type.empty() && (type.back() == ' ' || type.back() == '\t')) type.remove_suffix(1);
  while (!type.empty() && (type.front() == ' ' || type.front() == '\t')) type.remove_prefix(1);
  return EqualsIgnoreCase(type, "text/event-stream");
}

bool ListHasToken(std::string_view value, std::string_view token) {
  bool found = false;
  ForEachToken(value, [&](std::string_view t) { found = found || EqualsIgnoreCase(t, token); });
  return found;
}

std::vector<HeadCollector::Storage>& HeadCollector::Spares() {
  static thread_local std::vector<Storage> spares;
  return spares;
}

HeadCollector& HeadCollector::operator=(const HeadCollector& other) {
  bytes_ = other.bytes_;
  fields_ = other.fields_;
  target_ = other.target_;
  last_ = other.last_;
  return *this;
}

HeadCollector::HeadCollector(HeadCollector&& other) noexcept { *this = std::move(other); }

HeadCollector& HeadCollector::operator=(HeadCollector&& other) noexcept {
  if (this == &other) return *this;
  Release();
  bytes_.swap(other.bytes_);  // other holds what this held: freed with it, or by Release
  fields_.swap(other.fields_);
  target_ = std::exchange(other.target_, Span{});
  last_ = std::exchange(other.last_, Last::kNone);
  return *this;
}

void HeadCollector::Reset() {
  bytes_.clear();
  fields_.clear();
  target_ = {};
  last_ = Last::kNone;
}

void HeadCollector::Release() {
  Reset();
  if (fields_.capacity() == 0) return;  // holds none
  std::vector<Storage>& spares = Spares();
  // Swapped out, not assigned over: a std::string move-assigned from a short one keeps its
  // buffer.
  Storage storage;
  storage.bytes.swap(bytes_);
  storage.fields.swap(fields_);
  if (spares.size() < kMaxSpares) spares.push_back(std::move(storage));  // else freed here
}

void HeadCollector::TakeStorage() {
  std::vector<Storage>& spares = Spares();
  if (!bytes_.empty() || spares.empty()) {  // (a copy that holds bytes and no fields yet)
    bytes_.reserve(kInitialHeadBytes);
    fields_.reserve(kInitialFields);
    return;
  }
  bytes_.swap(spares.back().bytes);
  fields_.swap(spares.back().fields);
  spares.pop_back();
}

void HeadCollector::Append(Span& span, const char* at, size_t length) {
  if (fields_.capacity() == 0) TakeStorage();
  if (span.length == 0) span.offset = static_cast<uint32_t>(bytes_.size());
  bytes_.append(at, length);
  span.length += static_cast<uint32_t>(length);
}

void HeadCollector::AppendTarget(const char* at, size_t length) {
  Append(target_, at, length);
  last_ = Last::kTarget;
}

void HeadCollector::AppendField(const char* at, size_t length) {
  if (fields_.capacity() == 0) TakeStorage();
  if (last_ != Last::kField) fields_.emplace_back();
  Append(fields_.back().name, at, length);
  last_ = Last::kField;
}

void HeadCollector::AppendValue(const char* at, size_t length) {
  if (fields_.empty()) return;  // llhttp reports a field before its value
  Append(fields_.back().value, at, length);
  last_ = Last::kValue;
}

std::string_view HeadCollector::value(size_t i) const {
  std::string_view v = View(fields_[i].value);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

std::string_view HeadCollector::Find(std::string_view name) const {
  for (size_t i = 0; i < fields_.size(); ++i) {
    if (EqualsIgnoreCase(this->name(i), name)) return value(i);
  }
  return {};
}

int HeadCollector::Count(std::string_view name) const {
  int count = 0;
  for (size_t i = 0; i < fields_.size(); ++i) count += EqualsIgnoreCase(this->name(i), name);
  return count;
}

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 202:
      return "Accepted";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 400:
      return "Bad Request";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 431:
      return "Request Header Fields Too Large";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Error";
  }
}

}  // namespace lameduck::proxy
