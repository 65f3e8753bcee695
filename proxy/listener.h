// Listener: one listening socket (TCP or unix). It hands each connection to its owner (the
// Proxy, or the coordinator's admin server), which accepts it from stream() or may decline to
// accept it for now (--max-connections, set_waiting(true)): libuv then stops polling the socket
// and the connection waits in the kernel's backlog until the owner accepts it.
#pragma once

#include <uv.h>

#include <string>

#include "proxy/address.h"
#include "proxy/result.h"
#include "proxy/uv_handle.h"

namespace lameduck::proxy {

class Listener {
 public:
  class Owner {
   public:
    virtual void OnIncoming(Listener& listener) = 0;  // a connection waits to be accepted

   protected:
    ~Owner() = default;
  };

  Listener(Owner& owner, Address address) : owner_(owner), address_(std::move(address)) {}
  ~Listener() { Close(); }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  // An error names the address. reuse_port: SO_REUSEPORT on a TCP socket, so that other
  // listeners (--workers) bind the same port and the kernel spreads connections over them.
  Result<void> Start(uv_loop_t* loop, bool reuse_port = false);
  void Close();
  int port() const;  // the bound TCP port (useful with port 0); -1 for unix sockets
  const Address& address() const { return address_; }
  uv_stream_t* stream() const;
  int AcceptRaw();  // a connection from the backlog, bypassing libuv; -1 when none is waiting
  bool waiting() const { return waiting_; }
  void set_waiting(bool waiting) { waiting_ = waiting; }

 private:
  static void OnConnection(uv_stream_t* server, int status);

  Owner& owner_;
  Address address_;
  UvHandle<uv_tcp_t> tcp_;
  UvHandle<uv_pipe_t> pipe_;
  bool owns_socket_file_ = false;  // unix: this listener's bind created the socket file
  bool waiting_ = false;           // a connection waits in the backlog, not accepted
};

}  // namespace lameduck::proxy
