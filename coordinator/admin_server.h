// AdminServer: carries the admin API over HTTP/1.1 on the --admin TCP address and the
// --admin-socket unix socket (mode 0600). One request per connection, answered with
// Connection: close; a /drain?wait=1 request is held open until the drain is done. Its own
// limits keep probes working while someone floods it: small heads, a header timeout, a cap on
// connections. What a request means is AdminApi's business.
#pragma once

#include <llhttp.h>
#include <uv.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "coordinator/admin_api.h"
#include "proxy/address.h"
#include "proxy/uv_handle.h"

namespace lameduck::coordinator {

class AdminServer {
 public:
  static constexpr size_t kMaxHeadBytes = 8 * 1024;
  static constexpr uint64_t kHeaderTimeoutMs = 5000;
  static constexpr size_t kMaxConnections = 128;

  AdminServer(uv_loop_t* loop, AdminApi& api, DrainController& controller);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  std::string ListenTcp(const proxy::Address& address);  // "" or an error naming the address
  std::string ListenUnix(const std::string& path);
  int tcp_port() const;
  // Stops listening; connections finish their answer (waiters get theirs first) and close.
  void Close();
  void CloseAll();  // every connection, now (at exit)
  bool empty() const { return connections_.empty(); }

  class Connection;

 private:
  friend class Connection;
  static void OnTcpConnection(uv_stream_t* server, int status);
  static void OnUnixConnection(uv_stream_t* server, int status);
  void Accept(uv_stream_t* server, bool unix_socket);
  void Remove(Connection& connection);

  uv_loop_t* loop_;
  AdminApi& api_;
  DrainController& controller_;
  proxy::UvHandle<uv_tcp_t> tcp_;
  proxy::UvHandle<uv_pipe_t> unix_;
  std::string unix_path_;
  std::unordered_map<Connection*, std::unique_ptr<Connection>> connections_;
};

}  // namespace lameduck::coordinator
