// AdminServer: carries the admin API over HTTP/1.1 on the --admin TCP address and the
// --admin-socket unix socket (mode 0600). One request per connection, answered with
// Connection: close; a /drain?wait=1 request is held open until the drain is done, also after
// the client's half-close (RFC 9112 9.6: the answer is still owed). Its own limits keep probes
// working while someone floods it: small heads, a header timeout, and a cap on connections
// enforced by closing the oldest idle or slowloris connection, never a fresh one whose request
// is on its way (a probe) unless nothing else is left (ChooseEvictions in admin_eviction.h).
// What a request means is AdminApi's business.
//
// The transport is the proxy's: proxy::Listener accepts, proxy::Socket reads into pooled blocks
// and writes, proxy::http1::RequestParser reads the request head with the data plane's checks.
#pragma once

#include <uv.h>

#include <list>
#include <memory>
#include <string>

#include "coordinator/admin/admin_api.h"
#include "proxy/address.h"
#include "proxy/buffer_pool.h"
#include "proxy/listener.h"
#include "proxy/socket.h"
#include "proxy/uv_handle.h"

namespace lameduck::coordinator {

class AdminServer final : private proxy::Listener::Owner {
 public:
  static constexpr size_t kMaxHeadBytes = 8 * 1024;
  static constexpr uint64_t kHeaderTimeoutMs = 5000;
  static constexpr size_t kMaxConnections = 128;
  // A connection that has sent nothing for this long is a flood's, first to go over the cap.
  static constexpr uint64_t kSilentGraceMs = 100;

  AdminServer(uv_loop_t* loop, AdminApi& api, DrainController& controller);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  Result<void> ListenTcp(const proxy::Address& address);  // an error names the address
  Result<void> ListenUnix(const std::string& path);
  int tcp_port() const;
  // Stops listening; connections finish their answer (waiters get theirs first) and close.
  void Close();
  void CloseAll();  // every connection, now (at exit)
  bool empty() const { return connections_.empty() && closing_.empty(); }

  class Connection;

 private:
  friend class Connection;
  void OnIncoming(proxy::Listener& listener) override;
  proxy::Listener::Owner& listener_owner() { return *this; }
  void Remove(Connection& connection);
  void EvictOverCap();

  uv_loop_t* loop_;
  AdminApi& api_;
  DrainController& controller_;
  // Before the connections: their sockets return blocks and write requests here.
  proxy::BufferPool buffers_{4};
  proxy::WriteReqPool write_reqs_;
  std::unique_ptr<proxy::Listener> tcp_;
  std::unique_ptr<proxy::Listener> unix_;
  proxy::UvHandle<uv_check_t> evict_;  // runs EvictOverCap at the end of a turn of the loop
  // Open connections, oldest first; Close() moves one to closing_, which it leaves in its
  // socket's close callback.
  std::list<std::unique_ptr<Connection>> connections_;
  std::list<std::unique_ptr<Connection>> closing_;
  // For peeking at unread request heads (EvictOverCap): the bytes are looked at, not kept.
  char peek_buffer_[4096];
};

}  // namespace lameduck::coordinator
