#include "proxy/http2/fields.h"

#include <charconv>
#include <cstring>

namespace lameduck::proxy::http2 {
namespace {

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// RFC 9113 8.2.2: connection-specific fields never cross into HTTP/2.
bool IsConnectionSpecific(std::string_view name) {
  return EqualsIgnoreCase(name, "connection") || EqualsIgnoreCase(name, "keep-alive") ||
         EqualsIgnoreCase(name, "proxy-connection") ||
         EqualsIgnoreCase(name, "transfer-encoding") || EqualsIgnoreCase(name, "upgrade") ||
         EqualsIgnoreCase(name, "te");
}

bool ListedInConnection(const HeadCollector& head, std::string_view name) {
  for (size_t i = 0; i < head.field_count(); ++i) {
    if (EqualsIgnoreCase(head.name(i), "connection") && ListHasToken(head.value(i), name)) {
      return true;
    }
  }
  return false;
}

std::string_view Digits(int value, char (&buffer)[16]) {
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return {buffer, static_cast<size_t>(end - buffer)};
}

// gRPC's grpc-message: percent-encoded UTF-8, everything outside 0x20-0x7E and '%' itself.
void AppendPercentEncoded(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte > 0x7E || c == '%') {
      out.push_back('%');
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 0xF]);
    } else {
      out.push_back(c);
    }
  }
}

}  // namespace

void FieldList::Clear() {
  bytes_.clear();
  entries_.clear();
}

void FieldList::Add(std::string_view name, std::string_view value) {
  Entry entry;
  entry.name_offset = static_cast<uint32_t>(bytes_.size());
  entry.name_length = static_cast<uint32_t>(name.size());
  entry.value_offset = entry.name_offset + entry.name_length;
  entry.value_length = static_cast<uint32_t>(value.size());
  bytes_.resize(entry.value_offset + entry.value_length);  // capacity is kept from list to list
  char* out = bytes_.data() + entry.name_offset;
  for (char c : name) *out++ = Lower(c);
  std::memcpy(out, value.data(), value.size());
  entries_.push_back(entry);
}

const nghttp2_nv* FieldList::data() {
  nv_.clear();
  auto* base = reinterpret_cast<uint8_t*>(bytes_.data());
  for (const Entry& entry : entries_) {
    nv_.push_back({base + entry.name_offset, base + entry.value_offset, entry.name_length,
                   entry.value_length, NGHTTP2_NV_FLAG_NONE});
  }
  return nv_.data();
}

void ResponseFields(const HeadCollector& head, int status, FieldList& out) {
  out.Clear();
  char digits[16];
  out.Add(":status", Digits(status, digits));
  bool no_framing = status < 200 || status == 204;
  for (size_t i = 0; i < head.field_count(); ++i) {
    std::string_view name = head.name(i);
    if (IsConnectionSpecific(name)) continue;
    if (no_framing && EqualsIgnoreCase(name, "content-length")) continue;
    if (!EqualsIgnoreCase(name, "content-length") && ListedInConnection(head, name)) continue;
    out.Add(name, head.value(i));
  }
}

void RequestFields(const HeadCollector& head, std::string_view method, std::string_view client_ip,
                   std::string_view default_host, FieldList& out) {
  out.Clear();
  std::string_view host = head.Find("host");
  std::string_view path = head.target();
  if (path.starts_with("http://") || path.starts_with("https://")) {
    // Absolute form (RFC 9112 3.2.2): the authority is in it; :path is what follows.
    std::string_view rest = path.substr(path.find("//") + 2);
    size_t slash = rest.find('/');
    if (host.empty()) host = rest.substr(0, slash);
    path = slash == std::string_view::npos ? "/" : rest.substr(slash);
  }
  if (host.empty()) host = default_host;
  out.Add(":method", method);
  out.Add(":scheme", "http");
  out.Add(":authority", host);
  out.Add(":path", path.empty() ? "/" : path);
  std::string forwarded_for;
  for (size_t i = 0; i < head.field_count(); ++i) {
    std::string_view name = head.name(i);
    std::string_view value = head.value(i);
    if (EqualsIgnoreCase(name, "te")) {
      if (EqualsIgnoreCase(value, "trailers")) out.Add("te", "trailers");
      continue;
    }
    if (IsConnectionSpecific(name) || EqualsIgnoreCase(name, "host") ||
        EqualsIgnoreCase(name, "x-forwarded-proto") || EqualsIgnoreCase(name, "x-forwarded-host") ||
        (!EqualsIgnoreCase(name, "content-length") && ListedInConnection(head, name))) {
      continue;
    }
    if (EqualsIgnoreCase(name, "x-forwarded-for")) {
      if (!value.empty()) {
        if (!forwarded_for.empty()) forwarded_for.append(", ");
        forwarded_for.append(value);
      }
      continue;
    }
    out.Add(name, value);
  }
  if (!client_ip.empty()) {
    if (!forwarded_for.empty()) forwarded_for.append(", ");
    forwarded_for.append(client_ip);
  }
  if (!forwarded_for.empty()) out.Add("x-forwarded-for", forwarded_for);
  out.Add("x-forwarded-proto", "http");
  out.Add("x-forwarded-host", host);
}

void TrailerFields(const HeadCollector& trailers, FieldList& out) {
  out.Clear();
  for (size_t i = 0; i < trailers.field_count(); ++i) {
    std::string_view name = trailers.name(i);
    if (name.empty() || name[0] == ':' || IsConnectionSpecific(name)) continue;
    out.Add(name, trailers.value(i));
  }
}

bool IsGrpc(std::string_view content_type) {
  constexpr std::string_view kGrpc = "application/grpc";
  if (content_type.size() < kGrpc.size() ||
      !EqualsIgnoreCase(content_type.substr(0, kGrpc.size()), kGrpc)) {
    return false;
  }
  return content_type.size() == kGrpc.size() || content_type[kGrpc.size()] == '+' ||
         content_type[kGrpc.size()] == ';';
}

int GrpcStatusFor(ProxyError error) {
  switch (error) {
    case ProxyError::kUpstreamTimeout:
      return 4;  // DEADLINE_EXCEEDED
    case ProxyError::kBadRequest:
    case ProxyError::kHeadTooLarge:
    case ProxyError::kMethodNotAllowed:
    case ProxyError::kVersionNotSupported:
      return 13;  // INTERNAL: the request itself was refused
    default:
      return 14;  // UNAVAILABLE: the app refused, closed or reset; a client may retry
  }
}

void GrpcErrorFields(ProxyError error, std::string_view detail, FieldList& out) {
  out.Clear();
  char digits[16];
  out.Add(":status", "200");
  out.Add("content-type", "application/grpc");
  out.Add("grpc-status", Digits(GrpcStatusFor(error), digits));
  std::string message;
  AppendPercentEncoded(message, detail);
  out.Add("grpc-message", message);
}

void ErrorFields(int status, size_t body_length, FieldList& out) {
  out.Clear();
  char digits[16];
  out.Add(":status", Digits(status, digits));
  out.Add("content-type", "text/plain");
  out.Add("content-length", Digits(static_cast<int>(body_length), digits));
}

}  // namespace lameduck::proxy::http2
