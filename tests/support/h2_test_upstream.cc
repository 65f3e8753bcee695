#include "tests/support/h2_test_upstream.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

namespace lameduck::testing {

// One connection's nghttp2 server session; lives on its thread.
struct H2UpstreamConnection {
  struct Stream {
    H2TestUpstream::Request request;
    H2TestUpstream::Reply reply;
    bool complete = false;  // request ended
    bool waiting = false;   // a gate holds the reply
    bool reset_pending = false;
    std::string body_out;
    size_t sent = 0;
  };
  H2TestUpstream& owner;
  int fd;
  int id;
  nghttp2_session* session = nullptr;
  std::map<int32_t, Stream> streams;
  int open_streams = 0;
  int requests = 0;
  bool goaway_sent = false;

  H2UpstreamConnection(H2TestUpstream& o, int f, int i) : owner(o), fd(f), id(i) {}

  static H2UpstreamConnection& Self(void* p) { return *static_cast<H2UpstreamConnection*>(p); }

  static ssize_t Send(nghttp2_session*, const uint8_t* data, size_t length, int, void* p) {
    ssize_t n = send(Self(p).fd, data, length, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return NGHTTP2_ERR_WOULDBLOCK;
    if (n < 0) return NGHTTP2_ERR_CALLBACK_FAILURE;
    return n;
  }
  static int OnBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* p) {
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      auto& self = Self(p);
      self.streams[frame->hd.stream_id].request.connection_id = self.id;
      ++self.open_streams;
      int seen = self.owner.max_open_streams_.load();
      while (self.open_streams > seen &&
             !self.owner.max_open_streams_.compare_exchange_weak(seen, self.open_streams)) {
      }
    }
    return 0;
  }
  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* p) {
    auto it = Self(p).streams.find(frame->hd.stream_id);
    if (it == Self(p).streams.end()) return 0;
    std::string n(reinterpret_cast<const char*>(name), namelen);
    std::string v(reinterpret_cast<const char*>(value), valuelen);
    H2TestUpstream::Request& r = it->second.request;
    if (frame->headers.cat == NGHTTP2_HCAT_HEADERS) {
      r.trailers.emplace_back(n, v);
    } else if (n == ":method") {
      r.method = v;
    } else if (n == ":path") {
      r.path = v;
    } else if (n == ":authority") {
      r.authority = v;
    } else if (n == ":scheme") {
      r.scheme = v;
    } else {
      r.headers.emplace_back(n, v);
    }
    return 0;
  }
  static int OnData(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data, size_t len,
                    void* p) {
    auto it = Self(p).streams.find(stream_id);
    if (it != Self(p).streams.end()) {
      it->second.request.body.append(reinterpret_cast<const char*>(data), len);
    }
    return 0;
  }
  static int OnFrame(nghttp2_session*, const nghttp2_frame* frame, void* p) {
    auto& self = Self(p);
    if (frame->hd.type == NGHTTP2_RST_STREAM) ++self.owner.resets_received_;
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
      auto it = self.streams.find(frame->hd.stream_id);
      if (it != self.streams.end()) self.OnRequest(frame->hd.stream_id, it->second);
    }
    return 0;
  }
  static int OnClose(nghttp2_session*, int32_t stream_id, uint32_t, void* p) {
    auto& self = Self(p);
    if (self.streams.erase(stream_id) > 0) --self.open_streams;
    return 0;
  }
  static ssize_t ReadBody(nghttp2_session* session, int32_t stream_id, uint8_t* buf, size_t len,
                          uint32_t* flags, nghttp2_data_source*, void* p) {
    auto it = Self(p).streams.find(stream_id);
    if (it == Self(p).streams.end()) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    Stream& s = it->second;
    size_t n = std::min(len, s.body_out.size() - s.sent);
    std::memcpy(buf, s.body_out.data() + s.sent, n);
    s.sent += n;
    if (s.sent == s.body_out.size()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!s.reply.trailers.empty()) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        std::vector<nghttp2_nv> nv = Nv(s.reply.trailers);
        nghttp2_submit_trailer(session, stream_id, nv.data(), nv.size());
      }
    }
    return static_cast<ssize_t>(n);
  }
  static std::vector<nghttp2_nv> Nv(HeaderList& list) {
    std::vector<nghttp2_nv> nv;
    for (auto& [n, v] : list) {
      nv.push_back({reinterpret_cast<uint8_t*>(n.data()), reinterpret_cast<uint8_t*>(v.data()),
                    n.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
    }
    return nv;
  }

  void OnRequest(int32_t stream_id, Stream& s) {
    s.complete = true;
    ++requests;
    H2TestUpstream::Handler handler;
    {
      std::lock_guard lock(owner.mu_);
      owner.received_.push_back(s.request);
      handler = owner.handler_;
    }
    ++owner.requests_;
    owner.cv_.notify_all();
    if (handler) {
      s.reply = handler(s.request);
    } else {
      s.reply.body = "ok " + s.request.path;
    }
    if (owner.goaway_after_ > 0 && id == 1 && requests == owner.goaway_after_ && !goaway_sent) {
      goaway_sent = true;
      nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_NO_ERROR, nullptr, 0);
    }
    if (!s.reply.gate.empty()) {
      s.waiting = true;
      return;
    }
    Answer(stream_id, s);
  }

  void Answer(int32_t stream_id, Stream& s) {
    s.waiting = false;
    H2TestUpstream::Reply& reply = s.reply;
    if (reply.reset_code != 0 && !reply.reset_after_head) {
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id, reply.reset_code);
      return;
    }
    HeaderList fields = {{":status", std::to_string(reply.status)}};
    for (auto& h : reply.headers) fields.push_back(h);
    if (reply.trailers_only) {
      for (auto& t : reply.trailers) fields.push_back(t);
    }
    std::vector<nghttp2_nv> nv = Nv(fields);
    if (reply.trailers_only || reply.reset_after_head) {
      nghttp2_submit_headers(session, reply.reset_after_head ? 0 : NGHTTP2_FLAG_END_STREAM,
                             stream_id, nullptr, nv.data(), nv.size(), nullptr);
      s.reset_pending = reply.reset_after_head;  // once the head is out (RST would overtake it)
      return;
    }
    s.body_out = reply.body;
    nghttp2_data_provider provider;
    provider.source.ptr = nullptr;
    provider.read_callback = &ReadBody;
    nghttp2_submit_response(session, stream_id, nv.data(), nv.size(), &provider);
  }

  void Run() {
    nghttp2_session_callbacks* cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_send_callback(cb, Send);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, OnBeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(cb, OnHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, OnData);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, OnFrame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, OnClose);
    nghttp2_session_server_new(&session, cb, this);
    nghttp2_session_callbacks_del(cb);
    nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, owner.max_concurrent_streams_}};
    nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings, 1);
    while (!owner.stopping_) {
      nghttp2_session_send(session);
      for (auto& [stream_id, s] : streams) {
        if (s.reset_pending) {
          s.reset_pending = false;
          nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id, s.reply.reset_code);
        }
      }
      if (!nghttp2_session_want_read(session) && !nghttp2_session_want_write(session)) break;
      pollfd p{fd, POLLIN, 0};
      if (nghttp2_session_want_write(session)) p.events |= POLLOUT;
      int n = poll(&p, 1, 10);
      if (n > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
        char buf[16384];
        ssize_t got = recv(fd, buf, sizeof(buf), 0);
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) break;
        if (got > 0 &&
            nghttp2_session_mem_recv(session, reinterpret_cast<uint8_t*>(buf), got) < 0) {
          break;
        }
      }
      for (auto& [stream_id, s] : streams) {
        if (s.waiting && owner.GateOpen(s.reply.gate)) Answer(stream_id, s);
      }
    }
    nghttp2_session_send(session);
    nghttp2_session_del(session);
  }
};

H2TestUpstream::H2TestUpstream() = default;
H2TestUpstream::~H2TestUpstream() { Stop(); }

bool H2TestUpstream::Start() {
  listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return false;
  if (listen(listen_fd_, 128) != 0) return false;
  socklen_t len = sizeof(addr);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  accept_thread_ = std::thread([this] { AcceptLoop(); });
  return true;
}

void H2TestUpstream::AcceptLoop() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 20) <= 0) continue;
    int fd = accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int id = ++connections_;
    std::lock_guard lock(mu_);
    fds_.push_back(fd);
    threads_.emplace_back([this, fd, id] { Serve(fd, id); });
  }
}

void H2TestUpstream::Serve(int fd, int id) {
  H2UpstreamConnection connection(*this, fd, id);
  connection.Run();
  shutdown(fd, SHUT_RDWR);
}

void H2TestUpstream::Stop() {
  if (listen_fd_ < 0) return;
  stopping_ = true;
  if (accept_thread_.joinable()) accept_thread_.join();
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
  for (int fd : fds_) close(fd);
  close(listen_fd_);
  listen_fd_ = -1;
}

void H2TestUpstream::SetHandler(Handler handler) {
  std::lock_guard lock(mu_);
  handler_ = std::move(handler);
}

void H2TestUpstream::OpenGate(const std::string& name) {
  std::lock_guard lock(mu_);
  open_gates_.insert(name);
}

bool H2TestUpstream::GateOpen(const std::string& name) {
  std::lock_guard lock(mu_);
  return open_gates_.count(name) > 0;
}

std::vector<H2TestUpstream::Request> H2TestUpstream::received() const {
  std::lock_guard lock(mu_);
  return received_;
}

bool H2TestUpstream::WaitForRequests(int n, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return requests_.load() >= n; });
}

}  // namespace lameduck::testing
