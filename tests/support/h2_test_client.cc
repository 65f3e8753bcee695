#include "tests/support/h2_test_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace lameduck::testing {

struct H2TestClientCallbacks {
  static H2TestClient& Self(void* user_data) { return *static_cast<H2TestClient*>(user_data); }

  static ssize_t Send(nghttp2_session*, const uint8_t* data, size_t length, int, void* user_data) {
    H2TestClient& self = Self(user_data);
    size_t sent = 0;
    while (sent < length) {
      ssize_t n = send(self.fd_, data + sent, length - sent, MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (sent > 0) return static_cast<ssize_t>(sent);
        return NGHTTP2_ERR_WOULDBLOCK;
      }
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return static_cast<ssize_t>(sent);
  }

  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t name_length, const uint8_t* value, size_t value_length, uint8_t,
                      void* user_data) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    H2TestClient::Response& response = Self(user_data).responses_[frame->hd.stream_id];
    std::string n(reinterpret_cast<const char*>(name), name_length);
    std::string v(reinterpret_cast<const char*>(value), value_length);
    if (n == ":status") {
      int status = std::stoi(v);
      if (status >= 200) response.status = status;  // 1xx are interim
      return 0;
    }
    if (frame->headers.cat == NGHTTP2_HCAT_HEADERS && response.status != 0) {
      response.trailers.emplace_back(std::move(n), std::move(v));
    } else {
      response.fields.emplace_back(std::move(n), std::move(v));
    }
    return 0;
  }

  static int OnDataChunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                         size_t length, void* user_data) {
    H2TestClient& self = Self(user_data);
    if (self.keep_bodies_) {
      self.responses_[stream_id].body.append(reinterpret_cast<const char*>(data), length);
    }
    self.received_data_bytes_ += length;
    return 0;
  }

  static int OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    H2TestClient& self = Self(user_data);
    switch (frame->hd.type) {
      case NGHTTP2_PING:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK) {
          ++self.pings_acked_;
        } else {
          ++self.pings_received_;
        }
        break;
      case NGHTTP2_RST_STREAM:
        self.responses_[frame->hd.stream_id].reset_received = true;
        break;
      default:
        break;
    }
    return 0;
  }

  static int OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                           void* user_data) {
    H2TestClient::Response& response = Self(user_data).responses_[stream_id];
    response.closed = true;
    response.reset_code = error_code;
    return 0;
  }
};

std::string H2TestClient::Response::Field(std::string_view name) const {
  return FindHeader(fields, name);
}
std::string H2TestClient::Response::Trailer(std::string_view name) const {
  return FindHeader(trailers, name);
}

std::unique_ptr<H2TestClient> H2TestClient::Connect(int port, Options options) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return nullptr;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return nullptr;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  std::unique_ptr<H2TestClient> client(new H2TestClient(fd, options.keep_bodies));
  nghttp2_session_callbacks* callbacks;
  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session_callbacks_set_send_callback(callbacks, H2TestClientCallbacks::Send);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, H2TestClientCallbacks::OnHeader);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks,
                                                            H2TestClientCallbacks::OnDataChunk);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks,
                                                       H2TestClientCallbacks::OnFrameRecv);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks,
                                                         H2TestClientCallbacks::OnStreamClose);
  nghttp2_option* option;
  nghttp2_option_new(&option);
  nghttp2_option_set_no_auto_window_update(option, options.auto_window_update ? 0 : 1);
  if (!options.send_preface) nghttp2_option_set_no_recv_client_magic(option, 1);
  nghttp2_session_client_new2(&client->session_, callbacks, client.get(), option);
  nghttp2_session_callbacks_del(callbacks);
  nghttp2_option_del(option);
  if (options.send_preface) {
    nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, options.initial_window},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
    nghttp2_submit_settings(client->session_, NGHTTP2_FLAG_NONE, settings, 2);
    client->Flush();
  }
  return client;
}

H2TestClient::~H2TestClient() {
  nghttp2_session_del(session_);
  if (fd_ >= 0) close(fd_);
}

ssize_t H2TestClient::ReadUpload(nghttp2_session* session, int32_t stream_id, uint8_t* buf,
                                 size_t length, uint32_t* flags, nghttp2_data_source*,
                                 void* user_data) {
  H2TestClient& self = *static_cast<H2TestClient*>(user_data);
  Upload& upload = self.uploads_[stream_id];
  size_t n = std::min(length, upload.data.size() - upload.sent);
  std::memcpy(buf, upload.data.data() + upload.sent, n);
  upload.sent += n;
  if (upload.sent >= (1 << 20) && upload.sent < upload.data.size()) {
    upload.data.erase(0, upload.sent);  // a long upload keeps only what is still to go
    upload.sent = 0;
  }
  if (upload.sent == upload.data.size()) {
    if (!upload.end) return n == 0 ? ssize_t{NGHTTP2_ERR_DEFERRED} : static_cast<ssize_t>(n);
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!upload.trailers.empty()) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      std::vector<nghttp2_nv> nv;
      for (auto& [name, value] : upload.trailers) {
        nv.push_back({reinterpret_cast<uint8_t*>(name.data()),
                      reinterpret_cast<uint8_t*>(value.data()), name.size(), value.size(),
                      NGHTTP2_NV_FLAG_NONE});
      }
      nghttp2_submit_trailer(session, stream_id, nv.data(), nv.size());
    }
  }
  return static_cast<ssize_t>(n);
}

int32_t H2TestClient::Submit(std::string_view method, std::string_view path,
                             const HeaderList& fields, std::optional<std::string> body,
                             bool more_body, std::string_view authority) {
  std::vector<std::pair<std::string, std::string>> all = {{":method", std::string(method)},
                                                          {":scheme", "http"},
                                                          {":authority", std::string(authority)},
                                                          {":path", std::string(path)}};
  if (method == "CONNECT") all = {{":method", "CONNECT"}, {":authority", std::string(authority)}};
  if (authority.empty()) all.erase(all.begin() + 2);
  for (const auto& field : fields) all.push_back(field);
  std::vector<nghttp2_nv> nv;
  for (auto& [name, value] : all) {
    nv.push_back({reinterpret_cast<uint8_t*>(name.data()), reinterpret_cast<uint8_t*>(value.data()),
                  name.size(), value.size(), NGHTTP2_NV_FLAG_NONE});
  }
  nghttp2_data_provider provider;
  provider.source.ptr = nullptr;
  provider.read_callback = &H2TestClient::ReadUpload;
  bool with_body = body.has_value() || more_body;
  int32_t id = nghttp2_submit_request(session_, nullptr, nv.data(), nv.size(),
                                      with_body ? &provider : nullptr, nullptr);
  if (id > 0 && with_body) uploads_[id] = {body.value_or(""), 0, !more_body, {}};
  Flush();
  return id;
}

size_t H2TestClient::upload_pending(int32_t stream_id) const {
  auto it = uploads_.find(stream_id);
  return it == uploads_.end() ? 0 : it->second.data.size() - it->second.sent;
}

void H2TestClient::SendBody(int32_t stream_id, std::string data, bool end,
                            const HeaderList& trailers) {
  Upload& upload = uploads_[stream_id];
  upload.data.append(data);
  upload.end = end;
  upload.trailers = trailers;
  nghttp2_session_resume_data(session_, stream_id);
  Flush();
}

void H2TestClient::ResetStream(int32_t stream_id, uint32_t code) {
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream_id, code);
  Flush();
}

void H2TestClient::Ping() {
  nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, nullptr);
  Flush();
}

void H2TestClient::SendGoaway() {
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, nullptr, 0);
  Flush();
}

bool H2TestClient::SendRaw(std::string_view bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      pollfd p{fd_, POLLOUT, 0};
      poll(&p, 1, 1000);
    } else {
      return false;
    }
  }
  return true;
}

void H2TestClient::ConsumeAll() {
  for (auto& [id, response] : responses_) {
    if (!response.closed) nghttp2_session_consume_stream(session_, id, 1 << 30);
  }
  nghttp2_session_consume_connection(session_, received_data_bytes_);
  Flush();
}

bool H2TestClient::Flush() {
  if (closed_) return false;
  int rc = nghttp2_session_send(session_);
  return rc == 0;
}

bool H2TestClient::Pump(std::chrono::milliseconds timeout) {
  if (closed_) return false;
  Flush();
  pollfd p{fd_, POLLIN, 0};
  if (nghttp2_session_want_write(session_)) p.events |= POLLOUT;
  int n = poll(&p, 1, static_cast<int>(timeout.count()));
  if (n <= 0) return true;
  if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
    char buf[16384];
    ssize_t got = recv(fd_, buf, sizeof(buf), 0);
    if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
      closed_ = true;
      return false;
    }
    if (got > 0) {
      ScanForGoaways(std::string_view(buf, static_cast<size_t>(got)));
      ssize_t rc = nghttp2_session_mem_recv(session_, reinterpret_cast<uint8_t*>(buf),
                                            static_cast<size_t>(got));
      if (rc < 0) {
        closed_ = true;
        return false;
      }
    }
  }
  Flush();
  return true;
}

bool H2TestClient::WaitFor(int32_t stream_id, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!responses_[stream_id].closed) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    if (!Pump(std::chrono::milliseconds(50))) return responses_[stream_id].closed;
  }
  return true;
}

bool H2TestClient::WaitForGoaways(size_t count, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (goaways_.size() < count) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    if (!Pump(std::chrono::milliseconds(50))) return goaways_.size() >= count;
  }
  return true;
}

// nghttp2 drops what arrives once a session has nothing left to do (a GOAWAY received, no
// stream open, nothing to send): a server's final GOAWAY would go unseen. The frame heads are
// followed here instead.
void H2TestClient::ScanForGoaways(std::string_view bytes) {
  raw_in_.append(bytes);
  size_t at = 0;
  while (raw_in_.size() - at >= 9) {
    auto* p = reinterpret_cast<const uint8_t*>(raw_in_.data() + at);
    size_t length = size_t{p[0]} << 16 | size_t{p[1]} << 8 | p[2];
    if (raw_in_.size() - at < 9 + length) break;
    if (p[3] == NGHTTP2_GOAWAY && length >= 8) {
      auto word = [&](size_t i) {
        return uint32_t{p[i]} << 24 | uint32_t{p[i + 1]} << 16 | uint32_t{p[i + 2]} << 8 | p[i + 3];
      };
      goaways_.push_back({static_cast<int32_t>(word(9) & 0x7fffffff), word(13)});
    }
    at += 9 + length;
  }
  raw_in_.erase(0, at);
}

bool H2TestClient::WaitForClose(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!closed_) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    Pump(std::chrono::milliseconds(50));
  }
  return true;
}

uint32_t H2TestClient::remote_max_concurrent_streams() {
  return nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

}  // namespace lameduck::testing
