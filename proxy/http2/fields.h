// Header lists as nghttp2 takes them (nghttp2_nv), built from protocol-neutral heads: the
// response head of an HTTP/1 app for an HTTP/2 client (names lowercased, hop-by-hop and
// connection-specific fields out, RFC 9113 8.2.2), and the answers lameduck makes itself, plain
// or gRPC-shaped. Bytes only: no session, no socket.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/message_head.h"
#include "proxy/proxy_events.h"

namespace lameduck::proxy::http2 {

// Owns the bytes its nghttp2_nv entries point into; reused (capacity kept) from list to list.
class FieldList {
 public:
  void Clear();
  // Names are lowercased on the way in (HTTP/2 requires it).
  void Add(std::string_view name, std::string_view value);
  // The entries, valid until the next Add or Clear. nghttp2 copies them when submitting.
  const nghttp2_nv* data();
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    uint32_t name_offset, name_length, value_offset, value_length;
  };
  std::string bytes_;
  std::vector<Entry> entries_;
  std::vector<nghttp2_nv> nv_;
};

// An HTTP/1 response head as HTTP/2 response fields, :status first. Drops what HTTP/2 forbids
// (Connection and the fields it lists, Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade,
// TE) and the framing of statuses that have no body (1xx, 204).
void ResponseFields(const HeadCollector& head, int status, FieldList& out);

// A request head as HTTP/2 request fields for an h2c app: :method, :scheme http, :authority (the
// Host field, else `default_host`), :path (an absolute-form target's path), then the fields
// without the connection-specific ones (TE only as "trailers", which gRPC needs), X-Forwarded-For
// with `client_ip` appended, X-Forwarded-Proto and X-Forwarded-Host set from what lameduck saw.
void RequestFields(const HeadCollector& head, std::string_view method, std::string_view client_ip,
                   std::string_view default_host, FieldList& out);
// The fields of a trailer section, lowercased, pseudo and connection-specific ones dropped.
void TrailerFields(const HeadCollector& trailers, FieldList& out);

// A request whose content-type is application/grpc, or application/grpc+proto and the like:
// lameduck's own errors are gRPC statuses then, not HTTP ones.
bool IsGrpc(std::string_view content_type);
// The gRPC status for an error of lameduck's: 4 DEADLINE_EXCEEDED for an upstream timeout,
// 14 UNAVAILABLE for an app that refused, closed or reset (clients may retry those), 13 INTERNAL
// for a request lameduck found malformed.
int GrpcStatusFor(ProxyError error);
// A trailers-only gRPC response (RFC 9113 HEADERS with END_STREAM; gRPC's "Trailers-Only"):
// :status 200, content-type, grpc-status and a grpc-message a person can act on, percent-encoded
// as gRPC requires.
void GrpcErrorFields(ProxyError error, std::string_view detail, FieldList& out);
// The plain error lameduck answers (502, 504, 400, ...): :status and a short text body's fields.
void ErrorFields(int status, size_t body_length, FieldList& out);

}  // namespace lameduck::proxy::http2
