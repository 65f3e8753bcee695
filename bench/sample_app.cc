// bench/sample_app.cc: a small, naive HTTP/1.1 origin for the demo, the benchmarks and the tests.
//
// One libuv loop on one thread, llhttp for parsing. Keep-alive and pipelining: answers leave in
// request order, because while a /slow answer is pending the parser is paused and reads stop.
// Request bodies (Content-Length or chunked) are read, counted and discarded as they arrive.
//
//   GET  /              200 "hello\n"
//   GET  /slow?ms=N     200 after N ms (a timer: other connections go on being served meanwhile)
//   GET  /bytes?n=N     200 with N bytes of 'x'
//   POST /upload        200 with the number of request body bytes received (PUT too, for curl -T)
//   HEAD on the GET routes; anything else 404 or 405.
//
// Deliberately naive: no SIGTERM handler, so the default action kills it at once with requests in
// flight, like the apps lameduck is put in front of. Not a general server: no TLS, no Date header,
// no timeouts except a bounded linger after the last answer, no limits except URL and header sizes.

#include <llhttp.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <charconv>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr size_t kReadBufferBytes = 64 * 1024;
constexpr size_t kFillBlockBytes = 1024 * 1024;   // /bytes bodies point into this block
constexpr size_t kHighWaterBytes = 1024 * 1024;   // stop reading while more is queued unsent
constexpr size_t kMaxUrlBytes = 8 * 1024;         // 414 beyond
constexpr size_t kMaxHeaderPartBytes = 8 * 1024;  // one field name or value; 431 beyond
constexpr uint64_t kMaxSlowMs = 10 * 60 * 1000;
constexpr uint64_t kMaxBodyBytes = uint64_t{16} << 30;
constexpr uint64_t kLingerMs = 5000;  // after the last answer, wait this long for the client's FIN
constexpr int kBacklog = 1024;

// One loop, one thread: each read is parsed in full before the next read is allocated, so all
// connections share one read buffer. Input kept longer (behind a /slow answer) is copied.
char g_read_buffer[kReadBufferBytes];
char g_fill[kFillBlockBytes];
llhttp_settings_t g_parser_settings;

union Listener {
  uv_tcp_t tcp;
  uv_pipe_t pipe;
};
Listener g_listener;  // lives as long as the process: the loop never ends but by a signal

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x | 0x20) == (y | 0x20);  // enough for the ASCII tokens compared here
         });
}

std::optional<uint64_t> ParseUint(std::string_view text) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

// The value of `key` in "a=1&b=2", as an unsigned number.
std::optional<uint64_t> QueryNumber(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == key) {
      return ParseUint(pair.substr(eq + 1));
    }
  }
  return std::nullopt;
}

void AppendNumber(std::string& out, uint64_t value) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), value);
  out.append(digits, end);
}

std::string_view ReasonFor(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 414:
      return "URI Too Long";
    case 431:
      return "Request Header Fields Too Large";
    default:
      return "Unknown";
  }
}

enum class AfterResponse { kKeepAlive, kClose };

// A write and the bytes it owns; both live until its callback runs, also when the socket closes.
struct WriteRequest {
  uv_write_t req;
  std::string bytes;
};

class Connection {
 public:
  static void InitParserSettings();
  static void OnConnection(uv_stream_t* server, int status);

 private:
  enum class State {
    kOpen,          // parsing and answering; reads on unless too much is queued unsent
    kWaitingSlow,   // a /slow answer is due: timer armed, reads stopped, unparsed input in pending_
    kShuttingDown,  // last answer queued and write side shut down; reading and discarding until the
                    // client's FIN or the linger timer, so unread input does not turn into a reset
    kClosing,       // uv_close called on both handles; freed when the second close callback runs
  };

  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&socket_); }

  // Input.
  void Feed(const char* data, size_t length);
  void AfterInput();
  void UpdateReading();
  static void OnAlloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf);
  static void OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);

  // Requests and answers.
  void HandleRequest();
  void RespondToBadRequest();
  void AppendHead(int status, uint64_t content_length, AfterResponse after,
                  std::string_view extra_headers = {});
  void AppendResponse(int status, std::string_view body, AfterResponse after,
                      std::string_view extra_headers = {});
  void Finish(AfterResponse after);
  static void OnTimer(uv_timer_t* timer);

  // Output and closing.
  void Flush(uint64_t fill_bytes = 0);
  static void OnWrite(uv_write_t* req, int status);
  void StartShutdown();
  static void OnShutdown(uv_shutdown_t* req, int status);
  void Close();
  static void OnHandleClosed(uv_handle_t* handle);

  // llhttp callbacks: record facts and return; the connection acts after llhttp_execute.
  static int OnMessageBegin(llhttp_t* parser);
  static int OnUrl(llhttp_t* parser, const char* at, size_t length);
  static int OnHeaderField(llhttp_t* parser, const char* at, size_t length);
  static int OnHeaderValue(llhttp_t* parser, const char* at, size_t length);
  static int OnHeaderValueComplete(llhttp_t* parser);
  static int OnHeadersComplete(llhttp_t* parser);
  static int OnBody(llhttp_t* parser, const char* at, size_t length);
  static int OnMessageComplete(llhttp_t* parser);
  static Connection* From(llhttp_t* parser) { return static_cast<Connection*>(parser->data); }

  union {
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } socket_;
  uv_timer_t timer_;  // the /slow delay, then the linger bound
  uv_shutdown_t shutdown_req_;
  int open_handles_ = 2;  // socket_ and timer_; the connection is freed when both have closed
  State state_ = State::kOpen;
  bool reading_ = false;
  bool peer_eof_ = false;
  bool shutdown_done_ = false;

  llhttp_t parser_;
  // The request being parsed.
  std::string url_;
  std::string header_field_;
  std::string header_value_;
  bool expect_continue_ = false;
  uint64_t body_bytes_ = 0;
  int error_status_ = 400;  // what a parse error is answered with
  // Facts from the head, taken in OnHeadersComplete.
  llhttp_method_t method_ = HTTP_GET;
  bool keep_alive_ = true;
  bool upgrade_ = false;
  bool http_1_0_ = false;

  // The pending /slow answer.
  uint64_t slow_ms_ = 0;
  bool slow_head_only_ = false;
  AfterResponse slow_after_ = AfterResponse::kKeepAlive;
  std::string pending_;  // input after the /slow request, parsed once it is answered

  std::string out_;  // answers not yet handed to uv_write; written after each batch of input
  std::vector<uv_buf_t> bufs_;
  std::vector<std::unique_ptr<WriteRequest>> idle_writes_;
};

void Connection::InitParserSettings() {
  llhttp_settings_init(&g_parser_settings);
  g_parser_settings.on_message_begin = &Connection::OnMessageBegin;
  g_parser_settings.on_url = &Connection::OnUrl;
  g_parser_settings.on_header_field = &Connection::OnHeaderField;
  g_parser_settings.on_header_value = &Connection::OnHeaderValue;
  g_parser_settings.on_header_value_complete = &Connection::OnHeaderValueComplete;
  g_parser_settings.on_headers_complete = &Connection::OnHeadersComplete;
  g_parser_settings.on_body = &Connection::OnBody;
  g_parser_settings.on_message_complete = &Connection::OnMessageComplete;
}

void Connection::OnConnection(uv_stream_t* server, int status) {
  if (status < 0) {
    std::fprintf(stderr, "sample_app: accept: %s\n", uv_strerror(status));
    return;
  }
  auto* conn = new Connection();  // freed in OnHandleClosed, never elsewhere
  uv_loop_t* loop = server->loop;
  int rc = server->type == UV_TCP ? uv_tcp_init(loop, &conn->socket_.tcp)
                                  : uv_pipe_init(loop, &conn->socket_.pipe, 0);
  if (rc != 0) {  // not initialized, so not closable: plain free
    delete conn;
    return;
  }
  uv_timer_init(loop, &conn->timer_);
  conn->stream()->data = conn;
  conn->timer_.data = conn;
  llhttp_init(&conn->parser_, HTTP_REQUEST, &g_parser_settings);
  conn->parser_.data = conn;
  if (uv_accept(server, conn->stream()) != 0) {
    conn->Close();
    return;
  }
  if (server->type == UV_TCP) uv_tcp_nodelay(&conn->socket_.tcp, 1);
  conn->UpdateReading();
}

void Connection::OnAlloc(uv_handle_t*, size_t, uv_buf_t* buf) {
  *buf = uv_buf_init(g_read_buffer, sizeof(g_read_buffer));
}

void Connection::OnRead(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* self = static_cast<Connection*>(stream->data);
  if (nread > 0) {
    if (self->state_ == State::kOpen) {
      self->Feed(buf->base, static_cast<size_t>(nread));
    } else if (self->state_ == State::kWaitingSlow) {
      self->pending_.append(buf->base, static_cast<size_t>(nread));  // reads stop; defensive
    }
    return;  // kShuttingDown: discarded
  }
  if (nread == 0) return;
  if (nread != UV_EOF) {
    self->Close();
    return;
  }
  // The client will send no more; a half-closed client may still read what it asked for.
  self->peer_eof_ = true;
  if (self->state_ == State::kOpen) {
    self->AfterInput();
  } else if (self->state_ == State::kShuttingDown) {
    if (self->shutdown_done_) {
      self->Close();
    } else {
      self->UpdateReading();
    }
  }
}

void Connection::Feed(const char* data, size_t length) {
  while (state_ == State::kOpen && length > 0) {
    llhttp_errno_t err = llhttp_execute(&parser_, data, length);
    if (err == HPE_OK) break;  // all consumed
    if (err != HPE_PAUSED) {
      RespondToBadRequest();
      break;
    }
    // OnMessageComplete paused: what follows is the next pipelined request.
    const char* stop = llhttp_get_error_pos(&parser_);
    length -= static_cast<size_t>(stop - data);
    data = stop;
    llhttp_resume(&parser_);
    HandleRequest();
  }
  if (state_ == State::kWaitingSlow) pending_.assign(data, length);
  AfterInput();
}

void Connection::AfterInput() {
  Flush();
  if (state_ == State::kOpen && peer_eof_) {
    StartShutdown();
    return;
  }
  UpdateReading();
}

void Connection::UpdateReading() {
  bool want = false;
  if (!peer_eof_) {
    want = state_ == State::kShuttingDown ||
           (state_ == State::kOpen && uv_stream_get_write_queue_size(stream()) < kHighWaterBytes);
  }
  if (want == reading_) return;
  reading_ = want;
  if (!want) {
    uv_read_stop(stream());
  } else if (uv_read_start(stream(), &Connection::OnAlloc, &Connection::OnRead) != 0) {
    Close();
  }
}

void Connection::HandleRequest() {
  std::string_view url(url_);
  size_t question = url.find('?');
  std::string_view path = url.substr(0, question);
  std::string_view query = question == std::string_view::npos ? "" : url.substr(question + 1);
  bool head_only = method_ == HTTP_HEAD;
  bool is_get = method_ == HTTP_GET || head_only;
  AfterResponse after =
      keep_alive_ && !upgrade_ ? AfterResponse::kKeepAlive : AfterResponse::kClose;

  if (path == "/") {
    if (!is_get) return AppendResponse(405, "method not allowed\n", after, "Allow: GET, HEAD\r\n");
    AppendHead(200, 6, after);
    if (!head_only) out_ += "hello\n";
    return Finish(after);
  }
  if (path == "/slow") {
    if (!is_get) return AppendResponse(405, "method not allowed\n", after, "Allow: GET, HEAD\r\n");
    std::optional<uint64_t> ms = QueryNumber(query, "ms");
    if (!ms || *ms > kMaxSlowMs) return AppendResponse(400, "want ?ms=0..600000\n", after);
    slow_ms_ = *ms;
    slow_head_only_ = head_only;
    slow_after_ = after;
    state_ = State::kWaitingSlow;
    uv_timer_start(&timer_, &Connection::OnTimer, slow_ms_, 0);
    return;
  }
  if (path == "/bytes") {
    if (!is_get) return AppendResponse(405, "method not allowed\n", after, "Allow: GET, HEAD\r\n");
    std::optional<uint64_t> n = QueryNumber(query, "n");
    if (!n || *n > kMaxBodyBytes) return AppendResponse(400, "want ?n=0..17179869184\n", after);
    AppendHead(200, *n, after);
    if (!head_only && *n > 0) Flush(*n);  // the body points into g_fill; nothing is copied
    return Finish(after);
  }
  if (path == "/upload") {
    if (method_ != HTTP_POST && method_ != HTTP_PUT) {
      return AppendResponse(405, "method not allowed\n", after, "Allow: POST, PUT\r\n");
    }
    std::string body;
    AppendNumber(body, body_bytes_);
    body += '\n';
    return AppendResponse(200, body, after);
  }
  AppendResponse(404, "not found\n", after);
}

void Connection::RespondToBadRequest() {
  std::string body(ReasonFor(error_status_));
  body += '\n';
  AppendResponse(error_status_, body, AfterResponse::kClose);
}

void Connection::AppendHead(int status, uint64_t content_length, AfterResponse after,
                            std::string_view extra_headers) {
  out_ += "HTTP/1.1 ";
  AppendNumber(out_, static_cast<uint64_t>(status));
  out_ += ' ';
  out_ += ReasonFor(status);
  out_ += "\r\nContent-Type: text/plain\r\nContent-Length: ";
  AppendNumber(out_, content_length);
  out_ += "\r\n";
  if (after == AfterResponse::kClose) {
    out_ += "Connection: close\r\n";
  } else if (http_1_0_) {
    out_ += "Connection: keep-alive\r\n";  // HTTP/1.0 keeps alive only when told so
  }
  out_ += extra_headers;
  out_ += "\r\n";
}

void Connection::AppendResponse(int status, std::string_view body, AfterResponse after,
                                std::string_view extra_headers) {
  AppendHead(status, body.size(), after, extra_headers);
  if (method_ != HTTP_HEAD) out_ += body;
  Finish(after);
}

void Connection::Finish(AfterResponse after) {
  if (after == AfterResponse::kClose) StartShutdown();
}

void Connection::OnTimer(uv_timer_t* timer) {
  auto* self = static_cast<Connection*>(timer->data);
  if (self->state_ == State::kShuttingDown) {  // the client never closed its side
    self->Close();
    return;
  }
  if (self->state_ != State::kWaitingSlow) return;
  self->state_ = State::kOpen;
  std::string body = "waited ";
  AppendNumber(body, self->slow_ms_);
  body += " ms\n";
  self->AppendHead(200, body.size(), self->slow_after_);
  if (!self->slow_head_only_) self->out_ += body;
  self->Finish(self->slow_after_);
  // Now the requests that queued up behind it. Moved out first: Feed may refill pending_.
  std::string input = std::move(self->pending_);
  self->pending_.clear();
  self->Feed(input.data(), input.size());
}

void Connection::Flush(uint64_t fill_bytes) {
  if (state_ == State::kClosing) {
    out_.clear();
    return;
  }
  if (out_.empty() && fill_bytes == 0) return;
  std::unique_ptr<WriteRequest> write;
  if (idle_writes_.empty()) {
    write = std::make_unique<WriteRequest>();
  } else {
    write = std::move(idle_writes_.back());
    idle_writes_.pop_back();
  }
  write->bytes.swap(out_);  // out_ takes the idle request's emptied buffer, keeping its capacity
  bufs_.clear();
  if (!write->bytes.empty()) bufs_.push_back(uv_buf_init(write->bytes.data(), write->bytes.size()));
  for (uint64_t left = fill_bytes; left > 0;) {
    size_t chunk = static_cast<size_t>(std::min<uint64_t>(left, kFillBlockBytes));
    bufs_.push_back(uv_buf_init(g_fill, chunk));
    left -= chunk;
  }
  write->req.data = write.get();
  // libuv copies the bufs array; the bytes stay put until OnWrite.
  int rc = uv_write(&write->req, stream(), bufs_.data(), static_cast<unsigned>(bufs_.size()),
                    &Connection::OnWrite);
  if (rc != 0) {
    write->bytes.clear();
    idle_writes_.push_back(std::move(write));
    Close();
    return;
  }
  write.release();  // owned by libuv until OnWrite
}

void Connection::OnWrite(uv_write_t* req, int status) {
  // Runs before the socket's close callback, also when cancelled (UV_ECANCELED): self is alive.
  auto* self = static_cast<Connection*>(req->handle->data);
  std::unique_ptr<WriteRequest> write(static_cast<WriteRequest*>(req->data));
  write->bytes.clear();
  self->idle_writes_.push_back(std::move(write));
  if (status < 0) {
    self->Close();
    return;
  }
  if (self->state_ == State::kOpen) self->UpdateReading();  // back-pressure may be over
}

void Connection::StartShutdown() {
  Flush();
  if (state_ == State::kClosing) return;
  state_ = State::kShuttingDown;
  // uv_shutdown waits for the queued writes, then sends FIN.
  if (uv_shutdown(&shutdown_req_, stream(), &Connection::OnShutdown) != 0) {
    Close();
    return;
  }
  uv_timer_start(&timer_, &Connection::OnTimer, kLingerMs, 0);
  UpdateReading();
}

void Connection::OnShutdown(uv_shutdown_t* req, int status) {
  auto* self = static_cast<Connection*>(req->handle->data);
  if (self->state_ == State::kClosing) return;  // cancelled by Close()
  self->shutdown_done_ = true;
  if (status < 0 || self->peer_eof_) self->Close();
}

void Connection::Close() {
  if (state_ == State::kClosing) return;
  state_ = State::kClosing;
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), &Connection::OnHandleClosed);
  uv_close(reinterpret_cast<uv_handle_t*>(stream()), &Connection::OnHandleClosed);
}

void Connection::OnHandleClosed(uv_handle_t* handle) {
  auto* self = static_cast<Connection*>(handle->data);
  if (--self->open_handles_ == 0) delete self;  // libuv is done with both handles
}

int Connection::OnMessageBegin(llhttp_t* parser) {
  Connection* self = From(parser);
  self->url_.clear();
  self->header_field_.clear();
  self->header_value_.clear();
  self->expect_continue_ = false;
  self->body_bytes_ = 0;
  self->error_status_ = 400;
  self->method_ = HTTP_GET;  // until the head is complete; a bad head is answered with a body
  return 0;
}

int Connection::OnUrl(llhttp_t* parser, const char* at, size_t length) {
  Connection* self = From(parser);
  if (self->url_.size() + length > kMaxUrlBytes) {
    self->error_status_ = 414;
    return -1;
  }
  self->url_.append(at, length);  // copied: a URL may span two reads
  return 0;
}

int Connection::OnHeaderField(llhttp_t* parser, const char* at, size_t length) {
  Connection* self = From(parser);
  if (self->header_field_.size() + length > kMaxHeaderPartBytes) {
    self->error_status_ = 431;
    return -1;
  }
  self->header_field_.append(at, length);
  return 0;
}

int Connection::OnHeaderValue(llhttp_t* parser, const char* at, size_t length) {
  Connection* self = From(parser);
  if (self->header_value_.size() + length > kMaxHeaderPartBytes) {
    self->error_status_ = 431;
    return -1;
  }
  self->header_value_.append(at, length);
  return 0;
}

int Connection::OnHeaderValueComplete(llhttp_t* parser) {
  Connection* self = From(parser);
  if (EqualsIgnoreCase(self->header_field_, "expect") &&
      EqualsIgnoreCase(self->header_value_, "100-continue")) {
    self->expect_continue_ = true;
  }
  self->header_field_.clear();
  self->header_value_.clear();
  return 0;
}

int Connection::OnHeadersComplete(llhttp_t* parser) {
  Connection* self = From(parser);
  self->method_ = static_cast<llhttp_method_t>(llhttp_get_method(parser));
  self->keep_alive_ = llhttp_should_keep_alive(parser) != 0;
  self->upgrade_ = llhttp_get_upgrade(parser) != 0;
  self->http_1_0_ = llhttp_get_http_major(parser) == 1 && llhttp_get_http_minor(parser) == 0;
  // The parser is not paused while a body is still to come, so no earlier answer is outstanding:
  // "100 Continue" goes out in order (RFC 9110, 10.1.1). curl otherwise waits a second.
  if (self->expect_continue_ && !self->http_1_0_) self->out_ += "HTTP/1.1 100 Continue\r\n\r\n";
  return 0;
}

int Connection::OnBody(llhttp_t* parser, const char*, size_t length) {
  From(parser)->body_bytes_ += length;  // counted and dropped
  return 0;
}

int Connection::OnMessageComplete(llhttp_t*) {
  return HPE_PAUSED;  // Feed answers it, then parses what follows (pipelining)
}

struct ListenAddress {
  bool is_unix = false;
  std::string path;  // is_unix
  sockaddr_storage addr{};
};

// "127.0.0.1:3000", "[::1]:3000", "localhost:3000" or "unix:/path".
std::optional<ListenAddress> ParseListenAddress(std::string_view text) {
  ListenAddress result;
  if (text.substr(0, 5) == "unix:") {
    result.is_unix = true;
    result.path = std::string(text.substr(5));
    if (result.path.empty()) return std::nullopt;
    return result;
  }
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string host(text.substr(0, colon));
  std::optional<uint64_t> port = ParseUint(text.substr(colon + 1));
  if (!port || *port > 65535) return std::nullopt;
  if (host == "localhost") host = "127.0.0.1";
  int p = static_cast<int>(*port);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    if (uv_ip6_addr(host.c_str(), p, reinterpret_cast<sockaddr_in6*>(&result.addr)) != 0) {
      return std::nullopt;
    }
    return result;
  }
  if (uv_ip4_addr(host.c_str(), p, reinterpret_cast<sockaddr_in*>(&result.addr)) != 0) {
    return std::nullopt;
  }
  return result;
}

int Usage(FILE* to, int status) {
  std::fprintf(to,
               "usage: sample_app [--listen HOST:PORT | --listen unix:/path]"
               "   (default 127.0.0.1:3000)\n"
               "  GET /, GET /slow?ms=N, GET /bytes?n=N, POST|PUT /upload\n");
  return status;
}

int Fail(const char* what, int rc) {
  std::fprintf(stderr, "sample_app: %s: %s\n", what, uv_strerror(rc));
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen_text = "127.0.0.1:3000";
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") return Usage(stdout, 0);
    if (arg == "--listen" && i + 1 < argc) {
      listen_text = argv[++i];
    } else if (arg.substr(0, 9) == "--listen=") {
      listen_text = std::string(arg.substr(9));
    } else {
      std::fprintf(stderr, "sample_app: unknown argument: %s\n", argv[i]);
      return Usage(stderr, 2);
    }
  }
  std::optional<ListenAddress> address = ParseListenAddress(listen_text);
  if (!address) {
    std::fprintf(stderr, "sample_app: --listen: bad address: %s\n", listen_text.c_str());
    return 2;
  }

  // Writes to a socket the client closed must fail with EPIPE, not kill the process. SIGTERM keeps
  // its default action on purpose (see the top of this file).
  std::signal(SIGPIPE, SIG_IGN);
  std::memset(g_fill, 'x', sizeof(g_fill));
  Connection::InitParserSettings();

  uv_loop_t* loop = uv_default_loop();
  uv_stream_t* server = reinterpret_cast<uv_stream_t*>(&g_listener);
  std::string shown = listen_text;
  if (address->is_unix) {
    struct stat st;
    if (stat(address->path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
      unlink(address->path.c_str());  // left behind by a previous run killed by a signal
    }
    uv_pipe_init(loop, &g_listener.pipe, 0);
    if (int rc = uv_pipe_bind(&g_listener.pipe, address->path.c_str()); rc != 0) {
      return Fail("bind", rc);
    }
  } else {
    uv_tcp_init(loop, &g_listener.tcp);
    auto* sa = reinterpret_cast<const sockaddr*>(&address->addr);
    if (int rc = uv_tcp_bind(&g_listener.tcp, sa, 0); rc != 0) return Fail("bind", rc);
  }
  if (int rc = uv_listen(server, kBacklog, &Connection::OnConnection); rc != 0) {
    return Fail("listen", rc);
  }
  if (!address->is_unix) {  // show the bound port, which matters for port 0
    sockaddr_storage bound{};
    int length = sizeof(bound);
    char host[INET6_ADDRSTRLEN] = "";
    if (uv_tcp_getsockname(&g_listener.tcp, reinterpret_cast<sockaddr*>(&bound), &length) == 0) {
      int port = 0;
      if (bound.ss_family == AF_INET6) {
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&bound);
        uv_ip6_name(in6, host, sizeof(host));
        port = ntohs(in6->sin6_port);
        shown = "[" + std::string(host) + "]:" + std::to_string(port);
      } else {
        auto* in = reinterpret_cast<sockaddr_in*>(&bound);
        uv_ip4_name(in, host, sizeof(host));
        port = ntohs(in->sin_port);
        shown = std::string(host) + ":" + std::to_string(port);
      }
    }
  }
  std::fprintf(stderr, "sample_app listening on %s\n", shown.c_str());
  return uv_run(loop, UV_RUN_DEFAULT);
}
