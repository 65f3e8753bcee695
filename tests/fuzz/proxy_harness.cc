#include "tests/fuzz/proxy_harness.h"

#include <llhttp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace lameduck::fuzz {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// How long one exchange may take before it is cut short (a well-formed one takes well under a
// millisecond), and how long the proxy may take to come back to empty after ForceCloseAll.
constexpr auto kExchangeBound = 50ms;
constexpr auto kCleanupBound = 5s;
// Turns of the loop without a byte for the client after which the client stops waiting (a
// request through the proxy and the stub and back takes about six; a turn takes microseconds).
constexpr int kQuietTurns = 100;
constexpr std::string_view kFixedResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

}  // namespace

struct ProxyHarness::StubConnection {
  uv_pipe_t pipe;  // first: the handle's address is the connection's
  ProxyHarness* harness = nullptr;
  llhttp_t parser;
  bool got_data = false;
  bool eof = false;
  bool closing = false;
  bool upgraded = false;
};

namespace {

using StubConnection = ProxyHarness::StubConnection;

void OnStubWritten(uv_write_t* request, int /*status*/) { delete request; }

int OnStubMessageComplete(llhttp_t* parser) {
  auto* stub = static_cast<StubConnection*>(parser->data);
  auto* request = new uv_write_t;
  uv_buf_t buf = uv_buf_init(const_cast<char*>(kFixedResponse.data()),
                             static_cast<unsigned>(kFixedResponse.size()));
  if (uv_write(request, reinterpret_cast<uv_stream_t*>(&stub->pipe), &buf, 1, &OnStubWritten) !=
      0) {
    delete request;
  }
  return 0;
}

const llhttp_settings_t* StubSettings() {
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_complete = &OnStubMessageComplete;
    return s;
  }();
  return &settings;
}

void OnStubClosed(uv_handle_t* handle) { delete reinterpret_cast<StubConnection*>(handle); }

void OnStubAlloc(uv_handle_t* /*handle*/, size_t /*suggested*/, uv_buf_t* buf) {
  static char block[64 * 1024];
  *buf = uv_buf_init(block, sizeof(block));
}

// The harness of a fuzzer lives until the process exits (libFuzzer calls exit()): its sockets
// and folder are removed then.
std::string* leftover_dir = nullptr;
void RemoveLeftovers() {
  if (leftover_dir == nullptr) return;
  unlink((*leftover_dir + "/proxy.sock").c_str());
  unlink((*leftover_dir + "/upstream.sock").c_str());
  rmdir(leftover_dir->c_str());
}

}  // namespace

std::vector<std::string_view> SplitInput(const uint8_t* data, size_t size, int count_bits,
                                         unsigned& flags) {
  std::vector<std::string_view> pieces;
  flags = 0;
  if (size == 0) return pieces;
  unsigned count = data[0] & ((1u << count_bits) - 1);
  flags = data[0] >> count_bits;
  size_t header = std::min<size_t>(1 + count, size);
  std::string_view payload(reinterpret_cast<const char*>(data) + header, size - header);
  std::vector<size_t> points;
  for (size_t i = 1; i < header; ++i) points.push_back(data[i] * payload.size() / 256);
  std::sort(points.begin(), points.end());
  size_t start = 0;
  for (size_t point : points) {
    if (point > start) pieces.push_back(payload.substr(start, point - start));
    start = std::max(start, point);
  }
  if (start < payload.size()) pieces.push_back(payload.substr(start));
  return pieces;
}

ProxyHarness::ProxyHarness(proxy::UpstreamProtocol protocol) : protocol_(protocol) {
  signal(SIGPIPE, SIG_IGN);  // as lameduck's main: a peer gone away is an EPIPE
  char dir[] = "/tmp/lameduck-fuzz-XXXXXX";
  if (mkdtemp(dir) == nullptr) {
    std::perror("mkdtemp");
    std::abort();
  }
  dir_ = dir;
  if (leftover_dir == nullptr) {
    leftover_dir = new std::string(dir_);
    std::atexit(&RemoveLeftovers);
  }
  proxy_path_ = dir_ + "/proxy.sock";
  upstream_path_ = dir_ + "/upstream.sock";
  uv_loop_init(&loop_);

  uv_pipe_init(&loop_, &stub_server_, 0);
  stub_server_.data = this;
  if (uv_pipe_bind(&stub_server_, upstream_path_.c_str()) != 0 ||
      uv_listen(reinterpret_cast<uv_stream_t*>(&stub_server_), 128, &OnStubConnection) != 0) {
    std::fprintf(stderr, "fuzz: cannot listen on %s\n", upstream_path_.c_str());
    std::abort();
  }

  StartProxy();
}

void ProxyHarness::StartProxy() {
  unlink(proxy_path_.c_str());  // a drained proxy's, closed
  proxy::ProxyOptions options;
  options.listen.push_back(*proxy::ParseAddress("unix:" + proxy_path_));
  options.upstream = *proxy::ParseAddress("unix:" + upstream_path_);
  options.header_timeout = 2s;
  options.idle_timeout = 2s;
  options.connect_timeout = 1s;
  options.upstream_timeout = 2s;
  options.max_header_bytes = 2048;  // reachable within libFuzzer's default -max_len of 4096
  options.upstream_protocol = protocol_;
  proxy_ = std::make_unique<proxy::Proxy>(&loop_, std::move(options), events_);
  if (Result<void> started = proxy_->Start(); !started.ok()) {
    std::fprintf(stderr, "fuzz: proxy did not start: %s\n", started.error().c_str());
    std::abort();
  }
}

ProxyHarness::~ProxyHarness() {
  Cleanup();
  proxy_->StopAccepting();
  uv_close(reinterpret_cast<uv_handle_t*>(&stub_server_), nullptr);
  uv_run(&loop_, UV_RUN_DEFAULT);
  proxy_.reset();
  uv_run(&loop_, UV_RUN_DEFAULT);
  uv_loop_close(&loop_);
  unlink(upstream_path_.c_str());
  unlink(proxy_path_.c_str());
  rmdir(dir_.c_str());
}

void ProxyHarness::OnStubConnection(uv_stream_t* server, int status) {
  auto* self = static_cast<ProxyHarness*>(server->data);
  if (status != 0) return;
  auto* stub = new StubConnection;
  stub->harness = self;
  uv_pipe_init(&self->loop_, &stub->pipe, 0);
  stub->pipe.data = stub;
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&stub->pipe)) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&stub->pipe), &OnStubClosed);
    return;
  }
  llhttp_init(&stub->parser, HTTP_REQUEST, StubSettings());
  stub->parser.data = stub;
  self->stubs_.push_back(stub);
  uv_read_start(reinterpret_cast<uv_stream_t*>(&stub->pipe), &OnStubAlloc,
                [](uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
                  auto* stub = static_cast<StubConnection*>(stream->data);
                  if (nread < 0) {
                    stub->eof = true;
                    uv_read_stop(stream);
                    return;
                  }
                  if (nread == 0) return;
                  stub->got_data = true;
                  const ProxyHarness& harness = *stub->harness;
                  if (harness.exchange_ == nullptr ||
                      harness.exchange_->upstream_mode != UpstreamMode::kAnswerEach ||
                      stub->upgraded) {
                    return;
                  }
                  llhttp_errno_t rc = llhttp_execute(&stub->parser, buf->base, nread);
                  if (rc == HPE_PAUSED_UPGRADE) {
                    stub->upgraded = true;  // answered 200, not 101: the rest is ignored
                  } else if (rc != HPE_OK) {
                    uv_read_stop(stream);  // the proxy sent something the stub cannot parse
                    stub->eof = true;
                  }
                });
}

bool ProxyHarness::ReadClient() {
  if (client_fd_ < 0 || client_eof_) return false;
  char buf[16 * 1024];
  for (;;) {
    ssize_t n = read(client_fd_, buf, sizeof(buf));
    if (n > 0) {
      client_bytes_received_ += n;
      continue;
    }
    if (n == 0 || (errno != EAGAIN && errno != EINTR)) client_eof_ = true;
    return !client_eof_;
  }
}

void ProxyHarness::Pump(int turns) {
  for (int i = 0; i < turns; ++i) {
    uv_run(&loop_, UV_RUN_NOWAIT);
    ReadClient();
  }
}

void ProxyHarness::Run(const Exchange& exchange) {
  exchange_ = &exchange;
  client_eof_ = false;
  client_bytes_received_ = 0;
  const auto deadline = Clock::now() + kExchangeBound;

  client_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, proxy_path_.c_str(), proxy_path_.size() + 1);
  if (client_fd_ < 0 ||
      connect(client_fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    std::perror("fuzz: connect to the proxy");
    std::abort();
  }
  Pump(2);

  for (std::string_view piece : exchange.client) {
    while (!piece.empty() && !client_eof_ && Clock::now() < deadline) {
      ssize_t n = write(client_fd_, piece.data(), piece.size());
      if (n > 0) {
        piece.remove_prefix(n);
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        break;  // the proxy closed the connection: the rest is not wanted
      }
      Pump(1);
    }
    Pump(2);
  }
  if (exchange.client_end == ClientEnd::kHalfClose) shutdown(client_fd_, SHUT_WR);

  if (exchange.upstream_mode == UpstreamMode::kScript) {
    StubConnection* stub = nullptr;
    while (stub == nullptr && !client_eof_ && Clock::now() < deadline) {
      Pump(1);
      for (StubConnection* s : stubs_) {
        if (s->got_data && !s->closing) stub = s;
      }
    }
    if (stub != nullptr) {
      int written = 0;
      for (std::string_view piece : exchange.upstream) {
        if (written++ == exchange.drain_after_pieces) Drain();
        while (!piece.empty() && !stub->closing && Clock::now() < deadline) {
          uv_buf_t buf =
              uv_buf_init(const_cast<char*>(piece.data()), static_cast<unsigned>(piece.size()));
          int n = uv_try_write(reinterpret_cast<uv_stream_t*>(&stub->pipe), &buf, 1);
          if (n > 0) {
            piece.remove_prefix(n);
          } else if (n != UV_EAGAIN) {
            break;
          }
          Pump(1);
        }
        Pump(2);
      }
      if (exchange.drain_after_pieces >= written) Drain();
      if (exchange.upstream_end == UpstreamEnd::kClose && !stub->closing) {
        stub->closing = true;
        uv_close(reinterpret_cast<uv_handle_t*>(&stub->pipe), &OnStubClosed);
        std::erase(stubs_, stub);
      }
    }
  }

  // Until the proxy closes the client connection, or has had enough turns of the loop to answer
  // and has nothing more to say (it waits for a timeout of a second or more: not fuzzed here).
  int quiet_turns = 0;
  while (!client_eof_ && Clock::now() < deadline) {
    size_t before = client_bytes_received_;
    Pump(1);
    quiet_turns = client_bytes_received_ == before ? quiet_turns + 1 : 0;
    if (quiet_turns > kQuietTurns) break;
  }
  if (std::getenv("LAMEDUCK_FUZZ_DEBUG") != nullptr) {
    std::fprintf(stderr, "fuzz: exchange %s after %lld us, %zu bytes back\n",
                 client_eof_ ? "closed" : "cut short",
                 static_cast<long long>(std::chrono::duration_cast<std::chrono::microseconds>(
                                            Clock::now() - (deadline - kExchangeBound))
                                            .count()),
                 client_bytes_received_);
  }
  Cleanup();
  exchange_ = nullptr;
}

void ProxyHarness::Cleanup() {
  if (client_fd_ >= 0) close(client_fd_);
  client_fd_ = -1;
  proxy_->ForceCloseAll();
  for (StubConnection* stub : stubs_) {
    stub->closing = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&stub->pipe), &OnStubClosed);
  }
  stubs_.clear();
  const auto deadline = Clock::now() + kCleanupBound;
  while (!proxy_->empty()) {
    if (Clock::now() > deadline) {
      proxy::ProxyCounts counts = proxy_->counts();
      std::fprintf(stderr,
                   "fuzz: the proxy did not come back to empty within %lld ms of ForceCloseAll: "
                   "%zu connections, %zu in flight, %zu idle upstreams\n",
                   static_cast<long long>(kCleanupBound.count() * 1000), counts.connections,
                   counts.in_flight, proxy_->idle_upstreams());
      std::abort();
    }
    uv_run(&loop_, UV_RUN_NOWAIT);
    for (StubConnection* stub : stubs_) {  // upstream connections made during the cleanup
      stub->closing = true;
      uv_close(reinterpret_cast<uv_handle_t*>(&stub->pipe), &OnStubClosed);
    }
    stubs_.clear();
  }
  uv_run(&loop_, UV_RUN_NOWAIT);  // the last close callbacks
  // Empty again: every request and connection it ever had ended in exactly one way (the
  // drain's accounting rests on it).
  proxy::ProxyCounts counts = proxy_->counts();
  const proxy::ProxyTally& t = counts.tally;
  uint64_t requests_ended = t.requests_ended();
  uint64_t connections_ended = t.connections_ended();
  if (t.requests != requests_ended + counts.in_flight ||
      t.accepted != connections_ended + counts.connections) {
    std::fprintf(stderr,
                 "fuzz: the tally does not balance: %llu requests arrived, %llu ended, %zu in "
                 "flight; %llu connections accepted, %llu ended, %zu open\n",
                 static_cast<unsigned long long>(t.requests),
                 static_cast<unsigned long long>(requests_ended), counts.in_flight,
                 static_cast<unsigned long long>(t.accepted),
                 static_cast<unsigned long long>(connections_ended), counts.connections);
    std::abort();
  }
  if (drained_) {
    // A drain is for good (every response says close from then on): the next input gets a
    // fresh proxy, so that each input means the same whatever ran before it.
    drained_ = false;
    proxy_->StopAccepting();
    proxy_.reset();
    uv_run(&loop_, UV_RUN_NOWAIT);  // its handles' close callbacks
    StartProxy();
  }
}

void ProxyHarness::Drain() {
  drained_ = true;
  proxy_->CloseAfterCurrentResponse();
  proxy_->CloseSpread(1, 1);
  Pump(2);
}

}  // namespace lameduck::fuzz
