#include "coordinator/admin/admin_server.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <string_view>
#include <vector>

#include "coordinator/admin/admin_eviction.h"
#include "proxy/http1/request_parser.h"
#include "proxy/message_head.h"

namespace lameduck::coordinator {
namespace {

constexpr std::string_view kHeadTooLarge = R"({"error":"request head too large"})"
                                           "\n";
constexpr std::string_view kMalformed = R"({"error":"malformed request"})"
                                        "\n";
constexpr std::string_view kTooSlow = R"({"error":"request head too slow"})"
                                      "\n";
constexpr std::string_view kNotHttp11 = R"({"error":"HTTP/1.x only"})"
                                        "\n";
constexpr std::string_view kMethodNotAllowed = R"({"error":"method not allowed"})"
                                               "\n";

// A request the proxy's own HTTP/1 checks refused: the same status as on the data plane.
std::string_view ErrorBody(proxy::ProxyError error) {
  switch (error) {
    case proxy::ProxyError::kHeadTooLarge:
      return kHeadTooLarge;
    case proxy::ProxyError::kVersionNotSupported:
      return kNotHttp11;
    case proxy::ProxyError::kMethodNotAllowed:
      return kMethodNotAllowed;
    default:
      return kMalformed;
  }
}

}  // namespace

// One admin connection: read one request head (bodies are not used and not read), answer it,
// close. Dies in its socket's close callback.
class AdminServer::Connection final : private proxy::Socket::Owner {
 public:
  enum class State {
    kReadingHead,  // header timer armed; the parser takes what arrives
    kWaiting,      // a /drain?wait=1 request: answered when the drain is done, even if the
                   // client has half-closed meanwhile
    kAnswered,     // the answer is written or queued, a FIN follows (then the close, also when
                   // the client has half-closed); later bytes are ignored
    kClosing,      // the socket is closing; erased from closing_ in OnSocketClosed
  };

  explicit Connection(AdminServer& server)
      : server_(server), socket_(*this, server.buffers_, server.write_reqs_) {
    parser_.StartHead();
  }
  ~Connection() { *alive_ = false; }

  // 0, or a libuv error when no socket could be made (nothing to close then).
  int Accept(proxy::Listener& listener) {
    proxy::Address::Kind kind = listener.address().kind;
    if (int rc = socket_.Init(server_.loop_, kind); rc != 0) return rc;
    accepted_ms_ = uv_now(server_.loop_);
    int rc = timer_.Init(server_.loop_, uv_timer_init, this);
    if (rc == 0) rc = uv_accept(listener.stream(), socket_.stream());
    if (rc != 0) {
      Close();
      return 0;
    }
    if (kind == proxy::Address::Kind::kUnix) {
      peer_ = "unix";
      trusted_ = true;
    } else {
      sockaddr_storage peer{};
      int length = sizeof(peer);
      char text[INET6_ADDRSTRLEN] = "?";
      if (uv_tcp_getpeername(reinterpret_cast<uv_tcp_t*>(socket_.stream()),
                             reinterpret_cast<sockaddr*>(&peer), &length) == 0) {
        proxy::PeerIp(peer, text, sizeof(text));
      }
      peer_ = text;
      trusted_ = IsLoopback(peer_);
    }
    uv_timer_start(
        timer_.get(),
        [](uv_timer_t* t) {
          if (auto* self = static_cast<Connection*>(t->data)) self->OnHeaderTimeout();
        },
        kHeaderTimeoutMs, 0);
    socket_.StartReading();
    return 0;
  }

  // The drain this connection waits for is done.
  void AnswerDrained(const DrainSummary& summary) {
    if (state_ != State::kWaiting) return;
    if (summary.cancelled) {
      Answer(409, "{\"error\":\"the drain was cancelled by POST /undrain before it completed\"}\n");
      return;
    }
    Answer(200, AdminApi::SummaryBody(summary));
  }

  AdminConnectionFacts facts() const {
    return {.awaiting_head = state_ == State::kReadingHead,
            .received_any = received_any_,
            .accepted_ms = accepted_ms_};
  }

  // A whole request head is in the socket, not read yet: a probe accepted in the same batch as
  // a flood, about to be answered.
  bool HeadWaiting() const {
    int fd = socket_.fd();
    if (fd < 0) return false;
    char* buffer = server_.peek_buffer_;
    ssize_t n = recv(fd, buffer, sizeof(server_.peek_buffer_), MSG_PEEK | MSG_DONTWAIT);
    return n > 0 && std::string_view(buffer, static_cast<size_t>(n)).find("\r\n\r\n") !=
                        std::string_view::npos;
  }

  void Close() {
    if (state_ == State::kClosing) return;
    state_ = State::kClosing;
    server_.closing_.splice(server_.closing_.end(), server_.connections_, position_);
    timer_.Close();
    socket_.Close();
  }

  std::list<std::unique_ptr<Connection>>::iterator position_;  // in connections_ or closing_

 private:
  // proxy::Socket::Owner
  void OnSocketRead(ssize_t nread, proxy::BlockRef block) override {
    if (nread < 0) {
      // RFC 9112 9.6: a client may half-close once its request is sent and still read the
      // answer, so an EOF after a whole head changes nothing: a waiter is answered when the
      // drain is done, an answer being written is finished, and OnSocketShutdown closes. (A
      // full close looks the same from here: that answer goes nowhere, harmlessly.) An EOF
      // before the head is whole, or a reset, ends the connection now.
      if (nread == UV_EOF && (state_ == State::kWaiting || state_ == State::kAnswered)) return;
      Close();
      return;
    }
    if (state_ != State::kReadingHead) return;  // later bytes are not read
    received_any_ = true;
    // The data plane's parser and checks: one HTTP/1 stack. Bodies are not read.
    proxy::http1::RequestParser::Result parsed =
        parser_.ParseHead(block.data(), static_cast<size_t>(nread));
    switch (parsed.outcome) {
      case proxy::http1::RequestParser::Outcome::kNeedMore:
        return;  // more of the head to come
      case proxy::http1::RequestParser::Outcome::kError:
        Answer(proxy::StatusFor(parsed.error), ErrorBody(parsed.error));
        return;
      case proxy::http1::RequestParser::Outcome::kHeadComplete:
      case proxy::http1::RequestParser::Outcome::kMessageComplete:
        OnHead();
        return;
    }
  }
  void OnSocketWritten(int) override {}  // the shutdown after it says how it went
  void OnSocketShutdown(int) override { Close(); }
  void OnSocketClosed() override {
    server_.Remove(*this);  // destroys this: nothing may follow
  }

  void OnHeaderTimeout() {
    if (state_ == State::kReadingHead) Answer(408, kTooSlow);
  }

  void OnHead() {
    uv_timer_stop(timer_.get());
    AdminRequest request;
    const proxy::HeadCollector& head = parser_.head();
    request.method = parser_.method_name();
    request.target = head.target();
    // Two of either are no one's honest request: treated as none.
    if (head.Count("authorization") == 1) request.authorization = head.Find("authorization");
    if (head.Count("user-agent") == 1) request.user_agent = head.Find("user-agent");
    request.peer = peer_;
    request.trusted_peer = trusted_;
    head_request_ = request.method == "HEAD";
    AdminResponse response = server_.api_.Handle(request, uv_now(server_.loop_));
    if (response.wait_for_drain) {
      state_ = State::kWaiting;
      server_.controller_.WhenDrained([this, alive = alive_](const DrainSummary& summary) {
        if (*alive) AnswerDrained(summary);
      });
      return;
    }
    Answer(response.status, response.body, response.content_type, response.allow);
  }

  void Answer(int status, std::string_view body, std::string_view content_type = "application/json",
              std::string_view allow = {}) {
    if (state_ == State::kAnswered || state_ == State::kClosing) return;
    state_ = State::kAnswered;
    out_ = "HTTP/1.1 " + std::to_string(status) + " ";
    out_ += proxy::ReasonPhrase(status);
    out_ += "\r\nContent-Type: ";
    out_ += content_type;
    out_ += "\r\nContent-Length: " + std::to_string(body.size());
    out_ += "\r\nCache-Control: no-store\r\nConnection: close\r\n";
    if (!allow.empty()) out_.append("Allow: ").append(allow).append("\r\n");
    out_ += "\r\n";
    if (!head_request_) out_ += body;
    if (socket_.Write(&out_, nullptr, 0, proxy::BlockRef()) != 0) {
      Close();
      return;
    }
    // Half-close after the answer and let the client read everything; then close.
    socket_.Shutdown();
  }

  AdminServer& server_;
  proxy::Socket socket_;
  proxy::UvHandle<uv_timer_t> timer_;
  proxy::http1::RequestParser parser_{kMaxHeadBytes};
  std::string out_;
  std::string peer_;
  State state_ = State::kReadingHead;
  uint64_t accepted_ms_ = 0;
  bool trusted_ = false;
  bool received_any_ = false;  // a fact for the eviction policy
  bool head_request_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

AdminServer::AdminServer(uv_loop_t* loop, AdminApi& api, DrainController& controller)
    : loop_(loop), api_(api), controller_(controller) {}

AdminServer::~AdminServer() { Close(); }

Result<void> AdminServer::ListenTcp(const proxy::Address& address) {
  tcp_ = std::make_unique<proxy::Listener>(listener_owner(), address);
  return tcp_->Start(loop_);
}

Result<void> AdminServer::ListenUnix(const std::string& path) {
  proxy::Address address;
  address.kind = proxy::Address::Kind::kUnix;
  address.path = path;
  address.text = "unix:" + path;
  unix_ = std::make_unique<proxy::Listener>(listener_owner(), std::move(address));
  // Created 0600 from the start (umask), so no other user can connect in between.
  mode_t old_mask = umask(0177);
  Result<void> started = unix_->Start(loop_);
  umask(old_mask);
  return started;
}

int AdminServer::tcp_port() const { return tcp_ ? tcp_->port() : -1; }

void AdminServer::OnIncoming(proxy::Listener& listener) {
  connections_.push_back(std::make_unique<Connection>(*this));
  Connection& connection = *connections_.back();
  connection.position_ = std::prev(connections_.end());
  if (connection.Accept(listener) != 0) {  // no socket to close
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

void AdminServer::EvictOverCap() {
  if (connections_.size() <= kMaxConnections) return;
  std::vector<Connection*> open;
  std::vector<AdminConnectionFacts> facts;
  open.reserve(connections_.size());
  facts.reserve(connections_.size());
  for (const auto& connection : connections_) {
    open.push_back(connection.get());
    facts.push_back(connection->facts());
  }
  std::vector<size_t> doomed = ChooseEvictions(
      facts, {.max_connections = kMaxConnections, .silent_grace_ms = kSilentGraceMs}, uv_now(loop_),
      [&](size_t i) { return open[i]->HeadWaiting(); });
  // Close() moves a connection to closing_; the pointers in `open` stay valid.
  for (size_t i : doomed) open[i]->Close();
}

void AdminServer::Remove(Connection& connection) { closing_.erase(connection.position_); }

void AdminServer::CloseAll() {
  while (!connections_.empty()) connections_.front()->Close();
}

void AdminServer::Close() {
  if (tcp_) tcp_->Close();
  if (unix_) unix_->Close();  // removes the socket file
}

}  // namespace lameduck::coordinator
