// Socket: one stream (TCP or unix) embedded in a connection object, with the bookkeeping both
// sides of an exchange share: reads into pooled blocks, zero-copy writes that hold a reference
// to the block they send from, write counting for back-pressure, shutdown and close.
//
// The close contract (libuv): Close() starts uv_close; cancelled write, connect and shutdown
// callbacks run first and still see a live owner; then Owner::OnSocketClosed() runs, after which
// the owner may destroy itself (and with it this Socket). Nothing here frees the owner.
#pragma once

#include <uv.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "proxy/address.h"
#include "proxy/buffer_pool.h"
#include "proxy/object_pool.h"

namespace lameduck::proxy {

// A uv_write_t with the block reference that keeps its bytes alive; pooled, so that steady
// traffic allocates nothing per write.
struct WriteReq {
  uv_write_t req;
  BlockRef block;
  std::string head;  // a message head written ahead of the block's bytes; capacity circulates
};

class WriteReqPool {
 public:
  std::unique_ptr<WriteReq> Acquire() {
    return pool_.Take([] { return std::make_unique<WriteReq>(); });
  }
  void Release(std::unique_ptr<WriteReq> req);
  size_t Trim() { return pool_.Trim(); }

 private:
  ObjectPool<WriteReq> pool_{1024};
};

// How a connection ends: a FIN, or for a TCP peer that must not take the end for a clean one
// (a response cut short), a RST.
enum class CloseMode { kFin, kReset };

class Socket {
 public:
  class Owner {
   public:
    virtual void OnSocketRead(ssize_t nread, BlockRef block) = 0;  // nread > 0, or an error/EOF
    virtual void OnSocketWritten(int status) = 0;                  // one write completed
    virtual void OnSocketConnected(int /*status*/) {}
    virtual void OnSocketShutdown(int /*status*/) {}
    virtual void OnSocketClosed() = 0;  // the owner may destroy itself here

   protected:
    ~Owner() = default;
  };

  Socket(Owner& owner, BufferPool& buffers, WriteReqPool& writes)
      : owner_(owner), buffers_(buffers), writes_(writes) {}
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  int Init(uv_loop_t* loop, Address::Kind kind);
  int Connect(const Address& address);  // OnSocketConnected follows, also on failure
  int Open(int fd);                     // adopt an accepted socket (after Init)
  uv_stream_t* stream() { return &handle_.stream; }

  void StartReading();
  void StopReading();
  bool reading() const { return reading_; }

  // Writes `head` (if not null) and then bufs, which must lie in `block` (or be empty): at once
  // if the socket takes it all (no OnSocketWritten then), else what is left is queued and the
  // head is swapped into the write request, which owns it until the write completes. Either
  // way the caller gets back an empty string, with spare capacity. Returns 0 or a libuv error
  // (then the connection is broken: part of the bytes may have been sent).
  int Write(std::string* head, const uv_buf_t* bufs, unsigned count, BlockRef block);
  size_t write_queue_bytes() const { return handle_.stream.write_queue_size; }
  size_t writes_pending() const { return writes_pending_; }

  // FIN after the queued writes; OnSocketShutdown follows, at once if nothing is queued (so the
  // owner calls this last: the report may close it).
  void Shutdown();
  // Idempotent; a no-op before Init succeeded. kReset: a TCP peer gets a RST instead of a FIN
  // (unless a shutdown is under way).
  void Close(CloseMode mode = CloseMode::kFin);
  int fd() const;
  // The peer reset the connection. For after a read saw EOF: a write that met the reset first
  // took its error, so the read could not tell.
  bool WasReset() const;

 private:
  static void OnAlloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void OnWrite(uv_write_t* req, int status);
  static void OnConnect(uv_connect_t* req, int status);
  static void OnShutdown(uv_shutdown_t* req, int status);
  static void OnClose(uv_handle_t* handle);

  Owner& owner_;
  BufferPool& buffers_;
  WriteReqPool& writes_;
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } handle_;
  std::unique_ptr<uv_connect_t> connect_req_;    // while connecting
  std::unique_ptr<uv_shutdown_t> shutdown_req_;  // while shutting down
  BlockRef read_block_;                          // between OnAlloc and OnRead
  size_t writes_pending_ = 0;
  bool initialized_ = false;
  bool reading_ = false;
  bool shutting_down_ = false;
  bool closing_ = false;
};

}  // namespace lameduck::proxy
