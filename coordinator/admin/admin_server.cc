#include "coordinator/admin/admin_server.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string_view>

#include "proxy/head_rewrite.h"

namespace lameduck::coordinator {

// One admin connection: read one request head (bodies are not used and not read), answer it,
// close. Dies in its socket's close callback.
class AdminServer::Connection {
 public:
  Connection(AdminServer& server, bool unix_socket) : server_(server), unix_(unix_socket) {
    llhttp_settings_init(&settings_);
    settings_.on_url = [](llhttp_t* p, const char* at, size_t n) {
      return Self(p).Append(Self(p).target_, at, n);
    };
    settings_.on_header_field = [](llhttp_t* p, const char* at, size_t n) {
      auto& self = Self(p);
      if (self.last_was_value_) self.field_.clear();
      self.last_was_value_ = false;
      return self.Append(self.field_, at, n);
    };
    settings_.on_header_value = [](llhttp_t* p, const char* at, size_t n) {
      auto& self = Self(p);
      if (!self.last_was_value_) self.value_target_ = self.PickValue();
      self.last_was_value_ = true;
      return self.value_target_ == nullptr ? 0 : self.Append(*self.value_target_, at, n);
    };
    settings_.on_headers_complete = [](llhttp_t* p) -> int {
      Self(p).head_complete_ = true;
      return HPE_PAUSED;
    };
    llhttp_init(&parser_, HTTP_REQUEST, &settings_);
    parser_.data = this;
  }

  int Start(uv_stream_t* listener) {
    int rc = unix_ ? uv_pipe_init(server_.loop_, &socket_.pipe, 0)
                   : uv_tcp_init(server_.loop_, &socket_.tcp);
    if (rc != 0) return rc;
    socket_.handle.data = this;
    accepted_ms_ = uv_now(server_.loop_);
    timer_.Init(server_.loop_, uv_timer_init, this);
    if ((rc = uv_accept(listener, &socket_.stream)) != 0) {
      Close();
      return 0;
    }
    if (unix_) {
      peer_ = "unix";
      trusted_ = true;
    } else {
      sockaddr_storage peer{};
      int length = sizeof(peer);
      char text[INET6_ADDRSTRLEN] = "?";
      if (uv_tcp_getpeername(&socket_.tcp, reinterpret_cast<sockaddr*>(&peer), &length) == 0) {
        proxy::PeerIp(peer, text, sizeof(text));
      }
      peer_ = text;
      trusted_ = IsLoopback(peer_);
    }
    uv_timer_start(
        timer_.get(),
        [](uv_timer_t* t) {
          if (auto* self = static_cast<Connection*>(t->data)) {
            if (!self->answered_)
              self->Answer(408, R"({"error":"request head too slow"})"
                                "\n");
          }
        },
        kHeaderTimeoutMs, 0);
    uv_read_start(
        &socket_.stream,
        [](uv_handle_t* h, size_t, uv_buf_t* buf) {
          auto& server = static_cast<Connection*>(h->data)->server_;
          *buf = uv_buf_init(server.read_buffer_, sizeof(server.read_buffer_));
        },
        [](uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
          static_cast<Connection*>(s->data)->OnRead(nread);
        });
    return 0;
  }

  // The drain this connection waits for is done.
  void AnswerDrained(const DrainSummary& summary) {
    if (!closing_) Answer(200, AdminApi::SummaryBody(summary));
  }

  // Still reading its request head: the kind of connection a flood is made of.
  bool AwaitingHead() const { return !answered_ && !waiting_ && !closing_; }

  bool received_any() const { return received_any_; }
  uint64_t accepted_ms() const { return accepted_ms_; }

  // A whole request head is in the socket, not read yet: a probe accepted in the same batch as
  // a flood, about to be answered.
  bool HeadWaiting() const {
    uv_os_fd_t fd;
    if (uv_fileno(&socket_.handle, &fd) != 0) return false;
    char* buffer = server_.read_buffer_;
    ssize_t n = recv(fd, buffer, sizeof(server_.read_buffer_), MSG_PEEK | MSG_DONTWAIT);
    return n > 0 && std::string_view(buffer, static_cast<size_t>(n)).find("\r\n\r\n") !=
                        std::string_view::npos;
  }

  void Close() {
    if (closing_) return;
    closing_ = true;
    server_.closing_.splice(server_.closing_.end(), server_.connections_, position_);
    timer_.Close();
    uv_close(&socket_.handle, [](uv_handle_t* h) {
      auto* self = static_cast<Connection*>(h->data);
      self->server_.Remove(*self);
    });
  }

 private:
  static Connection& Self(llhttp_t* parser) { return *static_cast<Connection*>(parser->data); }

  int Append(std::string& to, const char* at, size_t n) {
    head_bytes_ += n;
    if (head_bytes_ > kMaxHeadBytes) return -1;
    to.append(at, n);
    return 0;
  }

  std::string* PickValue() {
    if (proxy::EqualsIgnoreCase(field_, "authorization")) return &authorization_;
    if (proxy::EqualsIgnoreCase(field_, "user-agent")) return &user_agent_;
    return nullptr;
  }

  void OnRead(ssize_t nread) {
    if (nread < 0) {
      Close();  // the client left (a waiter too: nothing to answer)
      return;
    }
    if (answered_ || waiting_ || nread == 0) return;  // later bytes are not read
    received_any_ = true;
    llhttp_errno_t err = llhttp_execute(&parser_, server_.read_buffer_, static_cast<size_t>(nread));
    if (err == HPE_OK) {
      if (head_bytes_ > kMaxHeadBytes)
        Answer(431, R"({"error":"request head too large"})"
                    "\n");
      return;
    }
    if (err != HPE_PAUSED || !head_complete_) {
      if (head_bytes_ > kMaxHeadBytes) {
        Answer(431, R"({"error":"request head too large"})"
                    "\n");
      } else {
        Answer(400, R"({"error":"malformed request"})"
                    "\n");
      }
      return;
    }
    uv_timer_stop(timer_.get());
    AdminRequest request;
    request.method = llhttp_method_name(static_cast<llhttp_method_t>(parser_.method));
    request.target = target_;
    request.authorization = authorization_;
    request.user_agent = user_agent_;
    request.peer = peer_;
    request.trusted_peer = trusted_;
    head_request_ = request.method == "HEAD";
    AdminResponse response = server_.api_.Handle(request, uv_now(server_.loop_));
    if (response.wait_for_drain) {
      waiting_ = true;
      server_.controller_.WhenDrained([this, alive = alive_](const DrainSummary& summary) {
        if (!*alive) return;
        AnswerDrained(summary);
      });
      return;
    }
    Answer(response.status, response.body, response.content_type, response.allow);
  }

  void Answer(int status, const std::string& body,
              std::string_view content_type = "application/json", std::string_view allow = {}) {
    if (answered_ || closing_) return;
    answered_ = true;
    out_ = "HTTP/1.1 " + std::to_string(status) + " ";
    out_ += proxy::ReasonPhrase(status);
    out_ += "\r\nContent-Type: ";
    out_ += content_type;
    out_ += "\r\nContent-Length: " + std::to_string(body.size());
    out_ += "\r\nCache-Control: no-store\r\nConnection: close\r\n";
    if (!allow.empty()) out_ += "Allow: " + std::string(allow) + "\r\n";
    out_ += "\r\n";
    if (!head_request_) out_ += body;
    uv_buf_t buf = uv_buf_init(out_.data(), static_cast<unsigned>(out_.size()));
    write_req_.data = this;
    if (uv_write(&write_req_, &socket_.stream, &buf, 1, [](uv_write_t* req, int) {
          auto* self = static_cast<Connection*>(req->data);
          // Half-close and let the client read everything; it closes, or the timer does.
          self->shutdown_req_.data = self;
          if (self->closing_ ||
              uv_shutdown(&self->shutdown_req_, &self->socket_.stream, [](uv_shutdown_t* r, int) {
                static_cast<Connection*>(r->data)->Close();
              }) != 0) {
            self->Close();
          }
        }) != 0) {
      Close();
    }
  }

 public:
  ~Connection() { *alive_ = false; }

  std::list<std::unique_ptr<Connection>>::iterator position_;  // in connections_ or closing_

 private:
  AdminServer& server_;
  bool unix_;
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } socket_;
  proxy::UvHandle<uv_timer_t> timer_;
  llhttp_settings_t settings_;
  llhttp_t parser_;
  std::string target_, field_, authorization_, user_agent_, out_;
  std::string* value_target_ = nullptr;
  std::string peer_;
  size_t head_bytes_ = 0;
  uint64_t accepted_ms_ = 0;
  bool trusted_ = false;
  bool last_was_value_ = false;
  bool head_complete_ = false;
  bool head_request_ = false;
  bool received_any_ = false;
  bool answered_ = false;
  bool waiting_ = false;
  bool closing_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  uv_write_t write_req_;
  uv_shutdown_t shutdown_req_;
};

AdminServer::AdminServer(uv_loop_t* loop, AdminApi& api, DrainController& controller)
    : loop_(loop), api_(api), controller_(controller) {}

AdminServer::~AdminServer() { Close(); }

std::string AdminServer::ListenTcp(const proxy::Address& address) {
  int rc = tcp_.Init(loop_, uv_tcp_init, this);
  if (rc == 0) rc = uv_tcp_bind(tcp_.get(), address.sa(), 0);
  if (rc == 0) {
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(tcp_.get()), SOMAXCONN, &OnTcpConnection);
  }
  if (rc != 0) return "cannot listen on " + address.text + ": " + uv_strerror(rc);
  return "";
}

std::string AdminServer::ListenUnix(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) unlink(path.c_str());
  int rc = unix_.Init(
      loop_, [](uv_loop_t* l, uv_pipe_t* p) { return uv_pipe_init(l, p, 0); }, this);
  // Created 0600 from the start (umask), so no other user can connect in between.
  mode_t old_mask = umask(0177);
  if (rc == 0) rc = uv_pipe_bind(unix_.get(), path.c_str());
  umask(old_mask);
  if (rc == 0) {
    rc = uv_listen(reinterpret_cast<uv_stream_t*>(unix_.get()), SOMAXCONN, &OnUnixConnection);
  }
  if (rc != 0) return "cannot listen on unix:" + path + ": " + uv_strerror(rc);
  unix_path_ = path;
  return "";
}

int AdminServer::tcp_port() const {
  if (!tcp_) return -1;
  sockaddr_storage bound{};
  int length = sizeof(bound);
  if (uv_tcp_getsockname(tcp_.get(), reinterpret_cast<sockaddr*>(&bound), &length) != 0) return -1;
  if (bound.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
}

void AdminServer::OnTcpConnection(uv_stream_t* server, int status) {
  auto* self = static_cast<AdminServer*>(server->data);
  if (self != nullptr && status == 0) self->Accept(server, /*unix_socket=*/false);
}

void AdminServer::OnUnixConnection(uv_stream_t* server, int status) {
  auto* self = static_cast<AdminServer*>(server->data);
  if (self != nullptr && status == 0) self->Accept(server, /*unix_socket=*/true);
}

void AdminServer::Accept(uv_stream_t* server, bool unix_socket) {
  connections_.push_back(std::make_unique<Connection>(*this, unix_socket));
  Connection& connection = *connections_.back();
  connection.position_ = std::prev(connections_.end());
  if (connection.Start(server) != 0) {  // no socket to close
    connections_.pop_back();
    return;
  }
  // Over the cap, the choice waits for the end of this turn of the loop: libuv accepts a whole
  // burst at once, and a probe in the middle of a flood's burst has had time to send its
  // request by then.
  if (connections_.size() > kMaxConnections) {
    if (!evict_ && evict_.Init(loop_, uv_check_init, this) != 0) {
      EvictOverCap();
      return;
    }
    uv_check_start(evict_.get(), [](uv_check_t* check) {
      uv_check_stop(check);
      if (auto* self = static_cast<AdminServer*>(check->data)) self->EvictOverCap();
    });
  }
}

// Over the cap, some must go, and not a probe (a fresh connection whose request is on its way,
// or waiting unread). Oldest first, in order: connections that have sent nothing for
// kSilentGraceMs (an idle flood); those still sending their head (a slowloris); young ones
// without a whole head waiting; and only when every other one is being answered, waits for the
// drain or has a head waiting, the newest.
void AdminServer::EvictOverCap() {
  if (connections_.size() <= kMaxConnections) return;
  size_t excess = connections_.size() - kMaxConnections;
  uint64_t now = uv_now(loop_);
  auto evict = [&](auto&& doomed) {
    for (auto it = connections_.begin(); excess > 0 && it != connections_.end();) {
      Connection& connection = **it++;  // Close() moves it to closing_: step past it first
      if (connection.AwaitingHead() && doomed(connection)) {
        connection.Close();
        --excess;
      }
    }
  };
  evict([&](const Connection& c) {
    return !c.received_any() && now - c.accepted_ms() >= kSilentGraceMs;
  });
  evict([](const Connection& c) { return c.received_any(); });
  evict([](const Connection& c) { return !c.HeadWaiting(); });
  while (excess-- > 0) connections_.back()->Close();
}

void AdminServer::Remove(Connection& connection) { closing_.erase(connection.position_); }

void AdminServer::CloseAll() {
  while (!connections_.empty()) connections_.front()->Close();
}

void AdminServer::Close() {
  tcp_.Close();
  if (unix_) {
    unix_.Close();
    unlink(unix_path_.c_str());
  }
}

}  // namespace lameduck::coordinator
