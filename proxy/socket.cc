#include "proxy/socket.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>

namespace lameduck::proxy {

void WriteReqPool::Release(std::unique_ptr<WriteReq> req) {
  req->block.Reset();
  req->head.clear();
  pool_.Give(std::move(req));
}

int Socket::Init(uv_loop_t* loop, Address::Kind kind) {
  int rc = kind == Address::Kind::kUnix ? uv_pipe_init(loop, &handle_.pipe, 0)
                                        : uv_tcp_init(loop, &handle_.tcp);
  if (rc != 0) return rc;
  handle_.handle.data = this;
  initialized_ = true;
  return 0;
}

int Socket::Connect(const Address& address) {
  // Only upstream sockets connect, once each: the request is not carried by every socket.
  connect_req_ = std::make_unique<uv_connect_t>();
  connect_req_->data = this;
  if (address.kind == Address::Kind::kUnix) {
    uv_pipe_connect(connect_req_.get(), &handle_.pipe, address.path.c_str(), &Socket::OnConnect);
    return 0;
  }
  int rc = uv_tcp_connect(connect_req_.get(), &handle_.tcp, address.sa(), &Socket::OnConnect);
  if (rc != 0) connect_req_.reset();
  return rc;
}

int Socket::Open(int fd) {
  if (handle_.handle.type == UV_NAMED_PIPE) return uv_pipe_open(&handle_.pipe, fd);
  return uv_tcp_open(&handle_.tcp, fd);
}

void Socket::OnConnect(uv_connect_t* req, int status) {
  auto* self = static_cast<Socket*>(req->data);
  self->connect_req_.reset();  // libuv is done with it (also when a close cancelled it)
  if (status == 0 && self->handle_.handle.type == UV_TCP) uv_tcp_nodelay(&self->handle_.tcp, 1);
  self->owner_.OnSocketConnected(status);
}

void Socket::StartReading() {
  if (reading_ || closing_) return;
  if (uv_read_start(&handle_.stream, &Socket::OnAlloc, &Socket::OnRead) == 0) reading_ = true;
}

void Socket::StopReading() {
  if (!reading_) return;
  uv_read_stop(&handle_.stream);
  reading_ = false;
}

void Socket::OnAlloc(uv_handle_t* handle, size_t, uv_buf_t* buf) {
  auto* self = static_cast<Socket*>(handle->data);
  self->read_block_ = self->buffers_.Acquire();
  *buf = uv_buf_init(self->read_block_.data(), Block::kSize);
}

void Socket::OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t*) {
  auto* self = static_cast<Socket*>(stream->data);
  BlockRef block = std::move(self->read_block_);
  if (nread == 0) return;  // EAGAIN: the block goes back to the pool
  if (nread < 0) self->StopReading();
  self->owner_.OnSocketRead(nread, std::move(block));
}

int Socket::Write(std::string* head, const uv_buf_t* bufs, unsigned count, BlockRef block) {
  if (closing_) return UV_ECANCELED;
  constexpr unsigned kMaxBufs = 64;
  if (count + 1 > kMaxBufs) return UV_EINVAL;
  uv_buf_t all[kMaxBufs];
  unsigned n = 0;
  size_t total = 0;
  if (head != nullptr) all[n++] = uv_buf_init(head->data(), static_cast<unsigned>(head->size()));
  for (unsigned i = 0; i < count; ++i) all[n++] = bufs[i];
  for (unsigned i = 0; i < n; ++i) total += all[i].len;

  // Most writes fit the socket buffer: write now, with no request and no callback. (libuv's
  // completion path also re-arms the socket in epoll after every uv_write: a syscall saved.)
  // uv_try_write refuses (EAGAIN) while earlier writes are queued, so order is kept.
  int written = uv_try_write(&handle_.stream, all, n);
  if (written < 0 && written != UV_EAGAIN) return written;
  size_t done = written > 0 ? static_cast<size_t>(written) : 0;
  if (done == total) {
    if (head != nullptr) head->clear();
    return 0;
  }

  // Queue the rest. The head moves into the request, which owns it until the write completes.
  std::unique_ptr<WriteReq> req = writes_.Acquire();
  if (head != nullptr) {
    req->head.swap(*head);
    all[0] = uv_buf_init(req->head.data(), static_cast<unsigned>(req->head.size()));
  }
  unsigned first = 0;
  while (done >= all[first].len) done -= all[first++].len;
  all[first].base += done;
  all[first].len -= static_cast<unsigned>(done);
  req->block = std::move(block);
  req->req.data = this;
  int rc = uv_write(&req->req, &handle_.stream, all + first, n - first, &Socket::OnWrite);
  if (rc != 0) {
    writes_.Release(std::move(req));
    return rc;
  }
  req.release();  // owned by libuv until OnWrite
  ++writes_pending_;
  return 0;
}

void Socket::OnWrite(uv_write_t* uv_req, int status) {
  std::unique_ptr<WriteReq> req(reinterpret_cast<WriteReq*>(uv_req));
  auto* self = static_cast<Socket*>(uv_req->data);
  --self->writes_pending_;
  self->writes_.Release(std::move(req));
  self->owner_.OnSocketWritten(status);
}

void Socket::Shutdown() {
  if (shutting_down_ || closing_) return;
  shutting_down_ = true;
  if (writes_pending_ == 0 && handle_.stream.write_queue_size == 0) {
    // Nothing queued (the usual case: the last write went out at once): the FIN goes now,
    // without the two epoll changes and the loop turn uv_shutdown takes to find that out.
    int socket = fd();
    int rc = socket >= 0 && ::shutdown(socket, SHUT_WR) == 0 ? 0 : uv_translate_sys_error(errno);
    owner_.OnSocketShutdown(rc);  // at once: the owner calls Shutdown() last
    return;
  }
  // Once per connection, at its end: not carried by every idle one.
  shutdown_req_ = std::make_unique<uv_shutdown_t>();
  shutdown_req_->data = this;
  if (int rc = uv_shutdown(shutdown_req_.get(), &handle_.stream, &Socket::OnShutdown); rc != 0) {
    shutdown_req_.reset();
    owner_.OnSocketShutdown(rc);  // the owner closes, through its own Close()
  }
}

void Socket::OnShutdown(uv_shutdown_t* req, int status) {
  auto* self = static_cast<Socket*>(req->data);
  self->shutdown_req_.reset();  // libuv is done with it (also when a close cancelled it)
  self->owner_.OnSocketShutdown(status);
}

void Socket::Close(CloseMode mode) {
  if (closing_ || !initialized_) return;
  closing_ = true;
  reading_ = false;
  if (mode == CloseMode::kReset && handle_.handle.type == UV_TCP &&
      uv_tcp_close_reset(&handle_.tcp, &Socket::OnClose) == 0) {
    return;
  }
  uv_close(&handle_.handle, &Socket::OnClose);
}

void Socket::OnClose(uv_handle_t* handle) {
  auto* self = static_cast<Socket*>(handle->data);
  self->owner_.OnSocketClosed();  // may destroy *self: nothing may follow
}

int Socket::fd() const {
  uv_os_fd_t fd = -1;
  if (uv_fileno(&handle_.handle, &fd) != 0) return -1;
  return fd;
}

bool Socket::WasReset() const {
  if (handle_.handle.type != UV_TCP) return false;
  tcp_info info{};
  socklen_t length = sizeof(info);
  int socket = fd();
  // A FIN leaves the connection in CLOSE_WAIT until this end closes too; only a reset ends it.
  return socket >= 0 && getsockopt(socket, IPPROTO_TCP, TCP_INFO, &info, &length) == 0 &&
         info.tcpi_state == TCP_CLOSE;
}

}  // namespace lameduck::proxy
