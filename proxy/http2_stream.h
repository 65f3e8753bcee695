// Http2Stream: one request on an HTTP/2 client session and its response: the request's fields as
// they arrive, the exchange that carries it to the app, and the response bytes waiting for
// nghttp2 to frame them. It is its exchange's Owner: what the upstream reports lands here, is
// queued or submitted to the session's nghttp2 state, and goes out when the session flushes
// (never inside an upstream's callback). Recycled by its session through a free list, so steady
// traffic allocates nothing per stream.
//
// Toward an HTTP/1 app, the request becomes an HTTP/1.1 head (:authority as Host, cookies joined,
// X-Forwarded-* as for HTTP/1 clients) and its body is forwarded as it arrives: by its
// Content-Length, or chunked (the trailers travel in the last chunk). Flow control is tied to
// the upstream: received bytes are given back to the client's window only once the app's socket
// takes them, so a slow app closes the client's window; a slow client holds the response queue,
// and above the high-water mark the app's connection stops being read.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/exchange.h"
#include "proxy/http2/fields.h"
#include "proxy/long_lived.h"
#include "proxy/message_head.h"
#include "proxy/span_queue.h"

namespace lameduck::proxy {

class Http2ClientSession;

class Http2Stream final : public Exchange::Owner {
 public:
  explicit Http2Stream(Http2ClientSession& session);

  void Begin(int32_t id);  // a new stream: state reset, capacity kept
  int32_t id() const { return id_; }

  // The request, from the session's nghttp2 callbacks.
  void OnField(std::string_view name, std::string_view value);
  void OnTrailer(std::string_view name, std::string_view value);
  void OnHeadEnd(bool end_stream);
  void OnData(const BlockRef& block, const uint8_t* data, size_t length);
  void OnRequestEnd();
  // nghttp2 closed the stream (both sides ended, or a reset either way).
  void OnClosed(uint32_t error_code);
  // A frame of ours with END_STREAM went out: the response is complete on the wire.
  void OnResponseSent();
  // The drain's deadline: cut the response short. True if one was in progress.
  bool Reset();

  // nghttp2's data provider (see Http2ClientSession).
  ssize_t ReadResponse(size_t max_length, uint32_t* flags);
  int SendData(const uint8_t* frame_head, size_t length);

  bool response_done() const { return response_sent_; }

  // The drain: a long-lived response (an SSE stream; a gRPC response with two messages or more,
  // which a unary call's never has) ends at its next boundary. AwaitsDrainClose: one the drain
  // has not asked yet.
  bool AwaitsDrainClose() const;
  void EndLongLived();
  LongLivedKind long_lived_kind() const { return kind_; }

  Http2Stream* next_free = nullptr;

  // Exchange::Owner
  void OnUpstreamReady(Exchange& exchange) override;
  void OnUpstreamWritable(Exchange& exchange) override;
  HeadVerdict OnHead(Exchange& exchange, const ResponseHead& head) override;
  Verdict OnBody(Exchange& exchange, const uv_buf_t* bufs, size_t count,
                 const BlockRef& block) override;
  void OnReadDone(Exchange& exchange) override;
  void OnEnd(Exchange& exchange) override;
  void OnUpgraded(Exchange& exchange, const BlockRef& block, size_t offset, size_t length) override;
  void OnUpstreamError(Exchange& exchange, ProxyError error, bool response_started) override;
  void OnTrailers(Exchange& exchange, const HeadCollector& trailers) override;
  void OnUpstreamReset(Exchange& exchange, uint32_t code, bool response_started) override;
  void OnTunnelData(Exchange& exchange, const BlockRef& block, size_t offset,
                    size_t length) override;
  void OnTunnelEof(Exchange& exchange) override;
  void OnTunnelShutdown(Exchange& exchange, int status) override;

 private:
  enum class UpstreamSource { kPoolOrNew, kNew };
  void AttachUpstream(UpstreamSource source);
  bool ForwardQueued();  // false: the write failed, and the exchange moved on
  bool Forward(const BlockRef& block, size_t offset, size_t length);
  bool FinishRequest();
  void MaybeConsume();
  void Fail(ProxyError error);
  void SendError(ProxyError error);
  void SubmitResponse(const nghttp2_nv* fields, size_t count, bool with_body);
  void ResumeData();
  bool Idempotent() const;
  void StartLongLived(LongLivedKind kind);
  bool Endable() const;
  // Between two events (SSE) or messages (gRPC) of what it follows: where it may end.
  bool AtBoundary() const {
    return follow_ == Follow::kSse ? events_.at_boundary() : messages_.at_boundary();
  }
  // The body has come to the boundary the drain waited for: it ends here, with grpc-status 14
  // (UNAVAILABLE) for gRPC, and the app's side is let go.
  void EndAtBoundary();
  void FinishLongLived(LongLivedEnd how);  // reports how it ended (once)

  Http2ClientSession& session_;
  Exchange exchange_{*this};
  int32_t id_ = 0;

  // The request.
  HeadCollector head_;  // target() is :path; fields as the app gets them
  std::string method_;
  std::string authority_;
  std::string host_;
  std::string cookie_;      // cookie crumbs, joined with "; " (RFC 9113 8.2.3)
  HeadCollector trailers_;  // the request's trailers, if any
  std::string scratch_;     // chunk heads, swapped into writes (capacity circulates)
  size_t head_bytes_ = 0;   // counted as SETTINGS_MAX_HEADER_LIST_SIZE counts: name+value+32
  bool has_content_length_ = false;
  bool h2c_ = false;  // the app is reached over h2c (else HTTP/1.1)
  bool grpc_ = false;
  bool chunked_ = false;        // forwarded with chunked coding (no Content-Length)
  bool chunk_written_ = false;  // a chunk went out: the next one's head starts with CRLF
  bool end_stream_ = false;     // the client ended its side
  bool request_done_ = false;   // the whole request went to the app (or was given up)
  SpanQueue request_body_;      // received before the upstream was ready
  // Every body byte sent, kept (up to kReplayBytes) until the response head comes, so that a
  // stream the app refused can go again on another connection.
  SpanQueue replay_;
  size_t unconsumed_ = 0;  // received, not yet given back to the client's window

  // The response.
  SpanQueue response_body_;
  http2::FieldList response_trailers_;
  bool head_submitted_ = false;
  bool response_eof_ = false;   // nothing more will be queued
  bool response_sent_ = false;  // END_STREAM went out
  bool deferred_ = false;       // the data provider waits for bytes
  bool upstream_paused_ = false;

  // A long-lived response, followed so that the drain can end it between two messages.
  enum class Follow : uint8_t { kNone, kSse, kGrpc };
  Follow follow_ = Follow::kNone;
  SseEvents events_;
  GrpcMessages messages_;
  bool long_lived_ = false;  // counted as one (NoteLongLived), until FinishLongLived
  LongLivedKind kind_ = LongLivedKind::kSse;
  bool ending_ = false;  // the drain asked: end at the next boundary
  bool ended_ = false;   // lameduck ended it
};

}  // namespace lameduck::proxy
