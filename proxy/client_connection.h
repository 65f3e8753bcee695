// ClientConnection: one accepted client socket speaking HTTP/1, and the exchanges on it, one at
// a time (exchange_). It reads request heads (http1::RequestParser does the parsing and checks),
// holds pipelined requests back, borrows an UpstreamConnection for each exchange and hears from
// it through the exchange (Exchange::Owner), streams both bodies with back-pressure, answers errors
// itself, and closes the way the drain needs (after the current response, lingering so the client
// sees a FIN, not a reset). It does not own upstream connections: the Proxy does; the pool lends
// them.
#pragma once

#include <netinet/in.h>
#include <uv.h>

#include <optional>
#include <string>

#include "proxy/address.h"
#include "proxy/deadline_queue.h"
#include "proxy/drain_target.h"
#include "proxy/exchange.h"
#include "proxy/http1/head_writer.h"
#include "proxy/http1/request_parser.h"
#include "proxy/intrusive_list.h"
#include "proxy/long_lived.h"
#include "proxy/message_head.h"
#include "proxy/proxy_events.h"
#include "proxy/response_receiver.h"
#include "proxy/socket.h"

namespace lameduck::proxy {

class Proxy;
class UpstreamConnection;

// What an HTTP/1 connection needs only while a request is under way (the parser and its head,
// the response head being built, a body's data spans): taken from the Proxy's pool with a
// request's first byte and given back when the connection is idle again, so that an idle
// keep-alive connection holds none of it, and a new connection allocates none of it.
struct Http1Work {
  explicit Http1Work(size_t max_head_bytes) : parser(max_head_bytes) {}
  http1::RequestParser parser;
  std::string response_head;  // built per response; swapped into its write
  // An h2c app: the request body's data spans (chunk framing left out), per read.
  std::vector<http1::RequestParser::Span> body_spans;
};

// A long-lived exchange on an HTTP/1 connection (a WebSocket tunnel, an SSE response): where
// its messages end, so that the drain can end it at a boundary (DESIGN.md, "The drain", step 5).
// Allocated only for those: an ordinary connection carries a null pointer.
struct LongLived {
  explicit LongLived(LongLivedKind kind) : kind(kind) {}
  LongLivedKind kind;
  WebSocketFrames frames;  // kWebSocket: the app's frames to the client
  SseEvents events;        // kSse: the events of the response body
  bool ending = false;     // the drain asked: end at the next boundary
  bool ended = false;      // lameduck ended it (sent Close 1001, or ended the body)
  uint64_t ended_ms = 0;   // then: the close handshake is waited for a bounded time
};

class ClientConnection final : public Socket::Owner,
                               public Exchange::Owner,
                               public IntrusiveList<ClientConnection>::Hook,  // Proxy::clients_
                               private DeadlineQueue::Entry {
 public:
  enum class State {
    kIdle,         // between requests, no byte of the next one yet; idle timer armed; reading
    kReadingHead,  // part of a head arrived; header timer armed (from its first byte); reading
    kProxying,     // head complete: exchange_ is under way (see its request and response states)
    kTunnel,       // after a 101: raw bytes both ways until either side closes
    kLingering,    // last response queued; write side shut after it; reading until the FIN
    kClosing,      // uv_close called; the Proxy erases it from OnSocketClosed
    kHandedOver,   // it opened with the HTTP/2 preface: a session took a dup of the socket and
                   // the bytes; uv_close called without a FIN; uncounted, reports nothing
  };

  explicit ClientConnection(Proxy& proxy);
  ~ClientConnection();
  // Takes the next connection from `server`, or, with fd >= 0, adopts that accepted socket.
  // Returns an error only if the socket could not even be created (then nothing needs closing);
  // any later failure closes the connection, which the Proxy erases as usual.
  int Accept(uv_stream_t* server, int fd, Address::Kind kind);

  // The drain (see DrainTarget).
  // An idle connection closes (true); one with request bytes waiting serves them first (false).
  bool CloseIfIdle();
  void Close(CloseMode mode = CloseMode::kFin);  // now, whatever it is doing
  void ForceClose();                             // Close, at --drain-timeout: counted as forced
  // The drain's spread (DrainTarget::CloseSpread) acts once on each idle connection and each
  // long-lived exchange it can end; DrainClose is that act (true: it closed an idle one).
  bool AwaitsDrainClose() const;
  bool DrainClose();
  // A long-lived exchange ends at its next message boundary (now, if it is at one).
  void EndLongLived();

  // Which of the drain's counts (ProxyCounts) this connection is in: exactly one at a time, a
  // function of state_, exchange_.response and shutdown_done_; the Proxy keeps the sums.
  enum class CountClass {
    kUncounted,  // not accepted yet, or removed
    kIdle,       // kIdle
    kInFlight,   // kProxying, response not complete
    kUpgraded,   // kTunnel
    kFinishing,  // kLingering and our FIN is out: only the client's FIN is awaited
    kOther,      // open and owing something, none of the above (reading a head, closing, ...)
  };

  // Still owes something: counted in ProxyCounts::connections.
  static bool Owes(CountClass count) {
    return count != CountClass::kUncounted && count != CountClass::kFinishing;
  }

  State state() const { return state_; }
  CountClass counted_as() const { return counted_as_; }
  ConnectionEnd end() const { return end_; }  // once closing: how (ProxyTally)
  std::optional<LongLivedKind> long_lived_kind() const {
    if (long_lived_ == nullptr) return std::nullopt;
    return long_lived_->kind;
  }
  // The drain gave it time for its first request (CloseIfIdle), and none has come: closing it
  // cuts nothing short.
  bool AwaitingFirstRequest() const { return state_ == State::kIdle && fresh_ && drain_close_; }

  // Exchange::Owner: what the upstream reported, through exchange_ (the only one).
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
  void EndChunkedBody(const HeadCollector* trailers);  // the last chunk, with the head if held
  void OnTunnelData(Exchange& exchange, const BlockRef& block, size_t offset,
                    size_t length) override;
  void OnTunnelEof(Exchange& exchange) override;
  void OnTunnelShutdown(Exchange& exchange, int status) override;

 private:
  // Socket::Owner
  void OnSocketRead(ssize_t nread, BlockRef block) override;
  void OnSocketWritten(int status) override;
  void OnSocketShutdown(int status) override;
  void OnSocketClosed() override;

  void StartHead();    // the first byte of a request: work_ taken, the parser ready for a head
  void ReleaseWork();  // idle, or a tunnel: work_ goes back to the pool
  void ProcessInput(BlockRef block, size_t offset, size_t length);
  // The first bytes: the HTTP/2 preface hands the connection over; anything else is HTTP/1.
  // False if nothing more is to be done with this read.
  bool Sniff(const BlockRef& block, size_t& offset, size_t& length);
  void HandOver(const BlockRef& block, size_t offset, size_t length);
  bool ReadHead(const BlockRef& block, size_t& offset, size_t& length);
  bool ReadBody(const BlockRef& block, size_t& offset, size_t& length);
  void Stash(BlockRef block, size_t offset, size_t length);
  void ProcessPending();
  void StartExchange(Exchange::RequestState request);
  enum class UpstreamSource { kPoolOrNew, kNew };
  bool AttachUpstream(UpstreamSource source);
  bool SendRequestHead();  // false: the write failed, and the exchange moved on
  bool ForwardBody(const BlockRef& block, size_t offset, size_t length);  // false: failed
  bool ForwardUnsent();  // false: the write failed, and the exchange moved on
  void OnRequestComplete();
  void MaybeFinishExchange();
  void FinishExchange();
  void FailUpstream(ProxyError error, bool response_started);
  void RecoverFromUpstreamFailure(ProxyError error, bool response_started);
  Verdict WriteBody(const uv_buf_t* bufs, size_t count, const BlockRef& block);
  void FlushResponseHead();  // send a head still held back for the first body bytes
  void NoteActivity();       // bytes moved: the stall clock (--idle-timeout) starts again
  void StartTunnel();
  void MaybeEndTunnel();
  void SendError(ProxyError error);
  void StartLongLived(LongLivedKind kind);
  bool Endable() const;   // a long-lived exchange lameduck knows how to end
  void SendGoingAway();   // WebSocket: Close 1001; the app's later bytes are dropped
  void EndEventStream();  // SSE: the body ends here, and the app's stream is let go
  // Reports how the long-lived exchange ended (once) and forgets it.
  void FinishLongLived(LongLivedEnd how);
  bool ClientPromisedNoMore() const;
  void Linger();
  void Abort();
  // Every change of state_, response_phase_ or shutdown_done_ goes through these, so that the
  // Proxy's counts stay current (counts() is O(1): the drain asks on every close).
  void SetState(State state);
  void SetResponseState(Exchange::ResponseState state);
  void SetShutdownDone();
  CountClass Classify() const;
  void Recount();
  ConnectionEnd EndNow() const;  // how it ends, if it ends now
  // The request in flight ended, moving to class `now`: how, in the tally.
  void TallyRequestEnd(CountClass now);
  int WriteToClient(std::string* head, const uv_buf_t* bufs, size_t count, const BlockRef& block);
  void UpdateReading();
  uint64_t QueuedBytesUnchangedForMs();
  void ArmTimer(uint64_t timeout_ms);
  void OnDeadline() override;  // the timeout of the state it is in

  Proxy& proxy_;
  Socket socket_;
  // From a request's first byte until the connection is idle again (or a tunnel); see Http1Work.
  std::unique_ptr<Http1Work> work_;
  std::unique_ptr<LongLived> long_lived_;  // a WebSocket or an event stream; else null
  // An h2c app (--upstream-protocol h2c): the request's body goes as its data only (spans the
  // parser reports, chunk framing left out), and a response without a length is chunked here.
  bool h2c_ = false;
  bool chunk_response_ = false;  // this response is chunked by lameduck
  bool chunk_open_ = false;      // a chunk's data went out: its CRLF comes first next
  State state_ = State::kIdle;
  CountClass counted_as_ = CountClass::kUncounted;
  Exchange exchange_{*this};  // the current one (kProxying); begun afresh per request

  // Bytes read but not yet parsed: the next pipelined request, or input that arrived while the
  // upstream was connecting. Client reads stay stopped while anything is here.
  BlockRef pending_;
  size_t pending_offset_ = 0;
  size_t pending_length_ = 0;

  bool drain_close_ = false;       // the drain chose this connection: close after what it serves
  bool forced_ = false;            // closed at --drain-timeout
  bool idle_close_ = false;        // lameduck closed it idle (the drain, --idle-timeout)
  bool long_lived_clean_ = false;  // its long-lived exchange ended cleanly
  ConnectionEnd end_ = ConnectionEnd::kByClient;  // set as it closes
  bool fresh_ = true;                             // accepted, and not a byte read yet
  bool sniffing_ = true;                          // HTTP/1 or HTTP/2 is not decided yet
  char preface_[24] = {};                         // the bytes of a preface that came in pieces
  size_t preface_length_ = 0;
  uint64_t accepted_ms_ = 0;
  bool client_eof_ = false;              // the client finished sending (half-close)
  bool shutdown_done_ = false;           // our FIN went out, after everything queued before it
  bool upstream_shutdown_done_ = false;  // tunnel: the same towards the upstream
  uint64_t last_activity_ms_ = 0;
  uint64_t queued_bytes_ = 0;     // QueuedBytesUnchangedForMs: the bytes queued at its last look,
  uint64_t queued_since_ms_ = 0;  // and since when they have been that many
  char client_ip_[INET6_ADDRSTRLEN] = {};
  Address::Kind kind_ = Address::Kind::kTcp;
};

}  // namespace lameduck::proxy
