// Proxy: the data plane on one libuv loop. It owns the listeners, every client and upstream
// connection, the upstream pool and the buffer pools, and is what the coordinator drives
// through DrainTarget. It does not log and does not decide when to drain.
//
// The process must ignore SIGPIPE (lameduck's main does): libuv writes with write(2), and a peer
// that went away must be an EPIPE, not a signal.
//
// Lifetime: before destroying a Proxy, call ForceCloseAll() and StopAccepting() and run the loop
// until empty() holds (the connections die in their close callbacks).
#pragma once

#include <uv.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "proxy/buffer_pool.h"
#include "proxy/client_connection.h"
#include "proxy/deadline_queue.h"
#include "proxy/drain_target.h"
#include "proxy/http2/fields.h"
#include "proxy/http2_client_session.h"
#include "proxy/http2_upstream_session.h"
#include "proxy/intrusive_list.h"
#include "proxy/listener.h"
#include "proxy/object_pool.h"
#include "proxy/proxy_events.h"
#include "proxy/proxy_options.h"
#include "proxy/result.h"
#include "proxy/slab.h"
#include "proxy/socket.h"
#include "proxy/upstream_pool.h"
#include "proxy/uv_handle.h"

namespace lameduck::proxy {

class UpstreamConnection;

class Proxy final : public DrainTarget, public Listener::Owner {
 public:
  Proxy(uv_loop_t* loop, ProxyOptions options, ProxyEvents& events);
  ~Proxy() override;
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  // Binds every --listen address; an error names the address. On failure, listeners already
  // bound are closed again.
  Result<void> Start();
  std::vector<int> listening_ports() const;  // TCP ports in --listen order; -1 for unix

  // DrainTarget
  void StopAccepting() override;
  void CloseAfterCurrentResponse() override;
  void ResumeKeepAlive() override { close_after_each_response_ = false; }
  SpreadStep CloseSpread(size_t step, size_t steps) override;
  size_t ForceCloseAll() override;
  ProxyCounts counts() const override { return counts_; }  // kept current: O(1)
  ProxyTally& tally() { return counts_.tally; }

  // Every idle connection closed, every long-lived exchange told to end: CloseSpread in one step.
  size_t CloseIdleConnections() { return CloseSpread(1, 1).idle_closed; }

  bool empty() const {
    return clients_.empty() && sessions_.empty() && upstreams_.empty() && h2_upstreams_.empty();
  }
  size_t idle_upstreams() const { return pool_.size(); }

  // For the connections.
  uv_loop_t* loop() const { return loop_; }
  const ProxyOptions& options() const { return options_; }
  ProxyEvents& events() const { return events_; }
  BufferPool& buffers() { return buffers_; }
  WriteReqPool& write_reqs() { return write_reqs_; }
  UpstreamPool& pool() { return pool_; }
  DeadlineQueue& deadlines() { return deadlines_; }  // the client connections' timeouts
  ObjectPool<Http1Work>& http1_work() { return http1_work_; }
  // The drain wants every response from now on to say Connection: close and end its connection.
  bool close_after_each_response() const { return close_after_each_response_; }
  // The drain's spread is over: a long-lived exchange that begins now ends at its first boundary.
  bool end_long_lived_at_once() const { return end_long_lived_at_once_; }
  void NoteLongLived(LongLivedKind kind, int delta) {
    counts_.long_lived[static_cast<size_t>(kind)] += delta;
  }
  // Host for requests that have none (HTTP/1.0): the upstream's address, or "localhost".
  std::string_view upstream_host() const { return upstream_host_; }
  UpstreamConnection* NewUpstream();  // connecting; nullptr if that failed at once
  void OnIncoming(Listener& listener) override;
  void Remove(ClientConnection& connection);
  // A client connection moved between the classes of the drain's counts.
  void MoveCount(ClientConnection::CountClass from, ClientConnection::CountClass to);
  void Remove(UpstreamConnection& connection);
  // A client connection that opened with the HTTP/2 preface becomes a session: `fd` is a dup of
  // its socket, `prefix` and [offset, offset + length) of `block` the bytes it read.
  void AdoptHttp2(int fd, Address::Kind kind, std::string_view client_ip, std::string_view prefix,
                  const BlockRef& block, size_t offset, size_t length);
  void Remove(Http2ClientSession& session);
  // A stream to the app over h2c: on a pooled connection with room, else on a new one; nullptr
  // if no connection could even be started.
  Http2UpstreamStream* TakeH2cStream();
  // The app's side of one exchange: an h2c stream, or an HTTP/1 connection (a pooled one unless
  // `fresh`: a retry does not go on another connection that may be stale). nullptr: none.
  Upstream* TakeUpstream(bool h2c, bool fresh);
  void Remove(Http2UpstreamSession& session);
  void MoveCounts(const ProxyCounts& from, const ProxyCounts& to);
  http2::FieldList& h2_fields() { return h2_fields_; }  // scratch: nghttp2 copies what it gets
  // What a gRPC client is told (grpc-message) when lameduck answers for the app.
  std::string GrpcMessage(ProxyError error) const;

 private:
  void Accept(Listener& listener, int fd = -1);
  void ResumeListeners();  // a connection went: one waiting in the backlog may come in
  void TrimPools();        // every second: what a burst left unused goes back

  uv_loop_t* loop_;
  ProxyOptions options_;
  ProxyEvents& events_;
  // Up to 16 MiB of free blocks: what streaming at the high-water marks keeps in flight (a block
  // unmapped and mapped again costs its page faults and zeroing); trimmed every second to what
  // was used.
  BufferPool buffers_{256};
  WriteReqPool write_reqs_;
  UpstreamPool pool_;
  DeadlineQueue deadlines_;
  ObjectPool<Http1Work> http1_work_{256};
  std::vector<std::unique_ptr<Listener>> listeners_;
  Slab<ClientConnection> client_slab_;
  IntrusiveList<ClientConnection> clients_;  // owned (in client_slab_): deleted in Remove
  std::unordered_map<Http2ClientSession*, std::unique_ptr<Http2ClientSession>> sessions_;
  std::unordered_map<UpstreamConnection*, std::unique_ptr<UpstreamConnection>> upstreams_;
  std::unordered_map<Http2UpstreamSession*, std::unique_ptr<Http2UpstreamSession>> h2_upstreams_;
  http2::FieldList h2_fields_;
  UvHandle<uv_timer_t> trim_timer_;  // TrimPools
  size_t peak_connections_ = 0;      // of both sides, since the last malloc_trim
  ProxyCounts counts_;               // of clients_, by each one's counted_as()
  bool close_after_each_response_ = false;
  bool end_long_lived_at_once_ = false;
  size_t spread_total_ = 0;  // CloseSpread: what there was to act on at its first step
  size_t spread_done_ = 0;   // and how many it acted on since
  std::string upstream_host_;
};

}  // namespace lameduck::proxy
