#include "proxy/listener.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace lameduck::proxy {
namespace {

int InitPipe(uv_loop_t* loop, uv_pipe_t* pipe) { return uv_pipe_init(loop, pipe, 0); }

Error Failure(const Address& address, const char* what, int rc) {
  return Error{"cannot " + std::string(what) + " " + address.text + ": " + uv_strerror(rc)};
}

// libuv 1.44 has no flag for SO_REUSEPORT: the socket is made here and handed to the handle,
// which binds it as its own.
int OpenReusePort(uv_tcp_t* tcp, int family) {
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return uv_translate_sys_error(errno);
  int on = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0) {
    int rc = uv_translate_sys_error(errno);
    close(fd);
    return rc;
  }
  if (int rc = uv_tcp_open(tcp, fd); rc != 0) {
    close(fd);
    return rc;
  }
  return 0;
}

}  // namespace

Result<void> Listener::Start(uv_loop_t* loop, bool reuse_port) {
  int rc = 0;
  if (address_.kind == Address::Kind::kUnix) {
    // A socket file left by an earlier run would make bind fail; replace it, but never a file
    // that is not a socket.
    struct stat st {};
    if (lstat(address_.path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
      unlink(address_.path.c_str());
    }
    if ((rc = pipe_.Init(loop, InitPipe, this)) != 0) return Failure(address_, "listen on", rc);
    if ((rc = uv_pipe_bind(pipe_.get(), address_.path.c_str())) != 0) {
      return Failure(address_, "bind", rc);
    }
    owns_socket_file_ = true;  // made by this bind: Close removes it, and nothing else
  } else {
    if ((rc = tcp_.Init(loop, uv_tcp_init, this)) != 0) return Failure(address_, "listen on", rc);
    if (reuse_port && (rc = OpenReusePort(tcp_.get(), address_.sa()->sa_family)) != 0) {
      return Failure(address_, "listen on", rc);
    }
    if ((rc = uv_tcp_bind(tcp_.get(), address_.sa(), 0)) != 0) {
      return Failure(address_, "bind", rc);
    }
    // Linux copies TCP_NODELAY to every socket accepted from this one: no setsockopt each.
    uv_tcp_nodelay(tcp_.get(), 1);
  }
  if ((rc = uv_listen(stream(), SOMAXCONN, &Listener::OnConnection)) != 0) {
    return Failure(address_, "listen on", rc);
  }
  return {};
}

uv_stream_t* Listener::stream() const {
  if (address_.kind == Address::Kind::kUnix) return reinterpret_cast<uv_stream_t*>(pipe_.get());
  return reinterpret_cast<uv_stream_t*>(tcp_.get());
}

int Listener::AcceptRaw() {
  uv_os_fd_t fd = -1;
  uv_stream_t* server = stream();
  if (server == nullptr || uv_fileno(reinterpret_cast<uv_handle_t*>(server), &fd) != 0) return -1;
  return accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

void Listener::Close() {
  tcp_.Close();
  pipe_.Close();
  // Only the socket file this listener's bind made: a failed bind may have met a file that is
  // not a socket (a mistyped --admin-socket), which is someone else's.
  if (owns_socket_file_) unlink(address_.path.c_str());
  owns_socket_file_ = false;
  waiting_ = false;
}

int Listener::port() const {
  if (!tcp_) return -1;
  sockaddr_storage bound{};
  int length = sizeof(bound);
  if (uv_tcp_getsockname(tcp_.get(), reinterpret_cast<sockaddr*>(&bound), &length) != 0) {
    return -1;
  }
  if (bound.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  }
  return ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
}

void Listener::OnConnection(uv_stream_t* server, int status) {
  auto* self = static_cast<Listener*>(server->data);
  if (self == nullptr || status != 0) return;  // EMFILE and friends: libuv retries
  self->owner_.OnIncoming(*self);
}

}  // namespace lameduck::proxy
