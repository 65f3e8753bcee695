#include "proxy/http1/head_writer.h"

#include <charconv>

namespace lameduck::proxy::http1 {
namespace {

// The field names a message's Connection header lists: hop-by-hop by declaration. Framing and
// Host are never dropped this way, whatever is listed: the proxy framed the message by them, and
// a request whose Content-Length vanished on the way would smuggle its body in as a request.
class ConnectionTokens {
 public:
  explicit ConnectionTokens(const HeadCollector& head) : head_(head) {}
  bool Has(std::string_view name) const {
    if (EqualsIgnoreCase(name, "content-length") || EqualsIgnoreCase(name, "transfer-encoding") ||
        EqualsIgnoreCase(name, "host")) {
      return false;
    }
    for (size_t i = 0; i < head_.field_count(); ++i) {
      if (EqualsIgnoreCase(head_.name(i), "connection") && ListHasToken(head_.value(i), name)) {
        return true;
      }
    }
    return false;
  }

 private:
  const HeadCollector& head_;
};

// RFC 9110 section 7.6.1, plus Proxy-Connection (a pre-standard alias that clients still send).
bool IsHopByHop(std::string_view name) {
  return EqualsIgnoreCase(name, "connection") || EqualsIgnoreCase(name, "keep-alive") ||
         EqualsIgnoreCase(name, "proxy-connection") || EqualsIgnoreCase(name, "te") ||
         EqualsIgnoreCase(name, "upgrade");
}

void AppendField(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(": ").append(value).append("\r\n");
}

void AppendStatus(std::string& out, int status) {
  char digits[8];
  auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), status);
  out.append(digits, end);
}

}  // namespace

void WriteRequestHead(const HeadCollector& head, const RequestRewrite& rewrite, std::string& out) {
  out.clear();
  out.append(rewrite.method).append(" ").append(head.target()).append(" HTTP/1.1\r\n");
  ConnectionTokens listed(head);
  bool forwarded_for_done = false;
  std::string_view host;
  for (size_t i = 0; i < head.field_count(); ++i) {
    std::string_view name = head.name(i);
    std::string_view value = head.value(i);
    if (EqualsIgnoreCase(name, "upgrade") && rewrite.upgrade) {
      AppendField(out, name, value);
      continue;
    }
    if (IsHopByHop(name) || listed.Has(name)) continue;
    if (EqualsIgnoreCase(name, "host")) host = value;
    if (EqualsIgnoreCase(name, "x-forwarded-proto") || EqualsIgnoreCase(name, "x-forwarded-host")) {
      continue;  // set below from what lameduck saw, not what the client claims
    }
    if (EqualsIgnoreCase(name, "x-forwarded-for")) {
      // Several X-Forwarded-For fields are one list (RFC 9110 5.3); send them as one field.
      if (forwarded_for_done) continue;
      forwarded_for_done = true;
      out.append("X-Forwarded-For: ");
      bool first = true;
      for (size_t j = i; j < head.field_count(); ++j) {
        if (!EqualsIgnoreCase(head.name(j), "x-forwarded-for") || head.value(j).empty()) continue;
        if (!first) out.append(", ");
        out.append(head.value(j));
        first = false;
      }
      if (!rewrite.client_ip.empty()) {
        if (!first) out.append(", ");
        out.append(rewrite.client_ip);
      }
      out.append("\r\n");
      continue;
    }
    AppendField(out, name, value);
  }
  if (host.empty() && !rewrite.default_host.empty()) {
    // HTTP/1.0 allows a request without Host; HTTP/1.1, which the app gets, does not.
    AppendField(out, "Host", rewrite.default_host);
  }
  if (!forwarded_for_done && !rewrite.client_ip.empty()) {
    AppendField(out, "X-Forwarded-For", rewrite.client_ip);
  }
  out.append("X-Forwarded-Proto: http\r\n");
  if (!host.empty()) AppendField(out, "X-Forwarded-Host", host);
  if (rewrite.upgrade) out.append("Connection: upgrade\r\n");
  out.append("\r\n");
}

void WriteResponseHead(const HeadCollector& head, const ResponseRewrite& rewrite,
                       std::string& out) {
  out.clear();
  out.append("HTTP/1.1 ");
  AppendStatus(out, rewrite.status);
  // An HTTP/2 response has no reason phrase: the status's own.
  std::string_view reason = head.target().empty() ? ReasonPhrase(rewrite.status) : head.target();
  out.append(" ").append(reason).append("\r\n");
  ConnectionTokens listed(head);
  bool upgrade = rewrite.connection == ResponseConnection::kUpgrade;
  // RFC 9110 8.6 and RFC 9112 6.1: no Content-Length or Transfer-Encoding in a 1xx or a 204,
  // which have no body whatever an app says; a client could wait for bytes that never come.
  bool no_framing = rewrite.status < 200 || rewrite.status == 204;
  for (size_t i = 0; i < head.field_count(); ++i) {
    std::string_view name = head.name(i);
    if (upgrade && EqualsIgnoreCase(name, "upgrade")) {
      AppendField(out, name, head.value(i));
      continue;
    }
    if (IsHopByHop(name) || listed.Has(name)) continue;
    if ((rewrite.framing != ResponseFraming::kAsIs || no_framing) &&
        EqualsIgnoreCase(name, "transfer-encoding")) {
      continue;
    }
    if (no_framing && EqualsIgnoreCase(name, "content-length")) continue;
    AppendField(out, name, head.value(i));
  }
  if (rewrite.framing == ResponseFraming::kChunk) out.append("Transfer-Encoding: chunked\r\n");
  switch (rewrite.connection) {
    case ResponseConnection::kKeepAlive:
      break;
    case ResponseConnection::kKeepAliveHttp10:
      out.append("Connection: keep-alive\r\n");
      break;
    case ResponseConnection::kClose:
      out.append("Connection: close\r\n");
      break;
    case ResponseConnection::kUpgrade:
      out.append("Connection: upgrade\r\n");
      break;
  }
  out.append("\r\n");
}

void AppendChunkHead(std::string& out, size_t length, bool after_chunk) {
  if (after_chunk) out.append("\r\n");
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), length, 16);
  out.append(digits, end).append("\r\n");
}

void AppendLastChunk(std::string& out, const HeadCollector* trailers, bool after_chunk) {
  if (after_chunk) out.append("\r\n");
  out.append("0\r\n");
  for (size_t i = 0; trailers != nullptr && i < trailers->field_count(); ++i) {
    std::string_view name = trailers->name(i);
    if (name.empty() || name[0] == ':' || IsHopByHop(name) ||
        EqualsIgnoreCase(name, "content-length") || EqualsIgnoreCase(name, "transfer-encoding")) {
      continue;
    }
    AppendField(out, name, trailers->value(i));
  }
  out.append("\r\n");
}

void WriteErrorResponse(int status, std::string& out) {
  std::string_view reason = ReasonPhrase(status);
  out.clear();
  out.append("HTTP/1.1 ");
  AppendStatus(out, status);
  out.append(" ").append(reason).append("\r\nContent-Type: text/plain\r\nContent-Length: ");
  AppendStatus(out, static_cast<int>(reason.size() + 1));
  out.append("\r\nConnection: close\r\n\r\n").append(reason).append("\n");
}

}  // namespace lameduck::proxy::http1
