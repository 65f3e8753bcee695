// HTTP/1.1 heads as lameduck sends them on: the request to the upstream and the response to the
// client, with hop-by-hop fields removed (RFC 9110 section 7.6.1) and the forwarding fields
// added, and the error responses lameduck makes itself. Bytes only: no sockets, no parsing.
#pragma once

#include <string>
#include <string_view>

#include "proxy/message_head.h"

namespace lameduck::proxy::http1 {

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
  kChunk,    // data without framing (from an h2c app) for an HTTP/1.1 client: chunked it goes
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

// Chunked coding (RFC 9112 7.1) for a body that comes as data without HTTP/1 framing (from an
// HTTP/2 peer): appends the head of a chunk of `length` bytes (0 < length), after the CRLF that
// ends the previous chunk's data when `after_chunk`; or the last chunk with a trailer section
// (pseudo-fields, hop-by-hop and framing fields left out).
void AppendChunkHead(std::string& out, size_t length, bool after_chunk);
void AppendLastChunk(std::string& out, const HeadCollector* trailers, bool after_chunk);

}  // namespace lameduck::proxy::http1
