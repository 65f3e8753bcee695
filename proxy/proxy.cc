#include "proxy/proxy.h"

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <optional>

#include "proxy/client_connection.h"
#include "proxy/listener.h"
#include "proxy/upstream_connection.h"

namespace lameduck::proxy {
namespace {

// How often the pools give back what they held and nobody used since the last time.
constexpr uint64_t kTrimIntervalMs = 1000;

}  // namespace

std::string_view ToString(ProxyError error) {
  switch (error) {
    case ProxyError::kNone:
      return "none";
    case ProxyError::kBadRequest:
      return "bad_request";
    case ProxyError::kHeadTooLarge:
      return "head_too_large";
    case ProxyError::kHeaderTimeout:
      return "header_timeout";
    case ProxyError::kUpstreamConnect:
      return "upstream_connect";
    case ProxyError::kUpstreamTimeout:
      return "upstream_timeout";
    case ProxyError::kUpstreamBadResponse:
      return "upstream_bad_response";
    case ProxyError::kUpstreamClosed:
      return "upstream_closed";
    case ProxyError::kMethodNotAllowed:
      return "method_not_allowed";
    case ProxyError::kVersionNotSupported:
      return "version_not_supported";
    case ProxyError::kUpstreamRefused:
      return "upstream_refused";
    case ProxyError::kUpstreamReset:
      return "upstream_reset";
    case ProxyError::kProtocolAbuse:
      return "protocol_abuse";
    case ProxyError::kStalled:
      return "stalled";
  }
  return "unknown";
}

int StatusFor(ProxyError error) {
  switch (error) {
    case ProxyError::kBadRequest:
      return 400;
    case ProxyError::kHeadTooLarge:
      return 431;
    case ProxyError::kHeaderTimeout:
      return 408;
    case ProxyError::kUpstreamTimeout:
      return 504;
    case ProxyError::kMethodNotAllowed:
      return 405;
    case ProxyError::kVersionNotSupported:
      return 505;
    case ProxyError::kUpstreamConnect:
    case ProxyError::kUpstreamBadResponse:
    case ProxyError::kUpstreamClosed:
    case ProxyError::kUpstreamRefused:
    case ProxyError::kUpstreamReset:
    case ProxyError::kProtocolAbuse:
    case ProxyError::kStalled:
    case ProxyError::kNone:
      return 502;
  }
  return 502;
}

Proxy::Proxy(uv_loop_t* loop, ProxyOptions options, ProxyEvents& events)
    : loop_(loop), options_(std::move(options)), events_(events), deadlines_(loop) {
  upstream_host_ =
      options_.upstream.kind == Address::Kind::kUnix ? "localhost" : options_.upstream.text;
}

Proxy::~Proxy() {
  while (ClientConnection* connection = clients_.front()) {
    clients_.Erase(*connection);
    client_slab_.Delete(connection);
  }
}

Result<void> Proxy::Start() {
  for (const Address& address : options_.listen) {
    auto listener = std::make_unique<Listener>(*this, address);
    if (Result<void> started = listener->Start(loop_, options_.reuse_port); !started.ok()) {
      StopAccepting();
      return started;
    }
    listeners_.push_back(std::move(listener));
  }
  if (trim_timer_.Init(loop_, uv_timer_init, this) == 0) {
    uv_timer_start(
        trim_timer_.get(),
        [](uv_timer_t* timer) {
          auto* self = static_cast<Proxy*>(timer->data);
          if (self == nullptr) return;
          self->TrimPools();
        },
        kTrimIntervalMs, kTrimIntervalMs);
    uv_unref(reinterpret_cast<uv_handle_t*>(trim_timer_.get()));  // keeps no loop alive
  }
  return {};
}

void Proxy::TrimPools() {
  // Blocks are unmapped at once; the rest went to the malloc heap, which keeps freed pages
  // unless asked. malloc_trim walks the heap, so only after a burst: when a pool gave something
  // back, or once 64 connections of either side are gone since the last time.
  size_t freed = buffers_.Trim() + write_reqs_.Trim() + http1_work_.Trim();
  size_t connections =
      clients_.size() + sessions_.size() + upstreams_.size() + h2_upstreams_.size();
  peak_connections_ = std::max(peak_connections_, connections);
  if (freed > 0 || connections + 64 < peak_connections_) {
    malloc_trim(0);
    peak_connections_ = connections;
  }
}

std::vector<int> Proxy::listening_ports() const {
  std::vector<int> ports;
  for (const auto& listener : listeners_) ports.push_back(listener->port());
  return ports;
}

void Proxy::OnIncoming(Listener& listener) {
  if (clients_.size() + sessions_.size() >= options_.max_connections) {
    listener.set_waiting(true);  // stays in the backlog; libuv pauses this listener
    return;
  }
  Accept(listener);
}

void Proxy::Accept(Listener& listener, int fd) {
  ClientConnection* connection = client_slab_.New(*this);  // deleted in Remove (or ~Proxy)
  clients_.PushBack(*connection);
  if (connection->Accept(listener.stream(), fd, listener.address().kind) != 0) {
    if (fd >= 0) close(fd);
    clients_.Erase(*connection);  // no handle was created: nothing to close
    client_slab_.Delete(connection);
    return;
  }
  ++counts_.tally.accepted;
  events_.OnConnectionOpened();
}

Upstream* Proxy::TakeUpstream(bool h2c, bool fresh) {
  if (h2c) return TakeH2cStream();
  UpstreamConnection* connection = fresh ? nullptr : pool_.Take();
  return connection != nullptr ? connection : NewUpstream();
}

UpstreamConnection* Proxy::NewUpstream() {
  auto connection = std::make_unique<UpstreamConnection>(*this);
  UpstreamConnection* raw = connection.get();
  upstreams_.emplace(raw, std::move(connection));
  if (raw->Connect() != 0) {
    // Either no socket was made (erase now) or it is closing (erased in its close callback).
    if (raw->state() != UpstreamConnection::State::kClosing) upstreams_.erase(raw);
    return nullptr;
  }
  return raw;
}

void Proxy::Remove(ClientConnection& connection) {
  // Handed over to HTTP/2, it goes on as the session: no end of a connection.
  if (ClientConnection::Owes(connection.counted_as())) ++tally().ended_by(connection.end());
  MoveCount(connection.counted_as(), ClientConnection::CountClass::kUncounted);
  bool handed_over = connection.state() == ClientConnection::State::kHandedOver;
  clients_.Erase(connection);
  client_slab_.Delete(&connection);
  if (!handed_over) events_.OnConnectionClosed();  // else the session reports it, later
  ResumeListeners();
}

void Proxy::AdoptHttp2(int fd, Address::Kind kind, std::string_view client_ip,
                       std::string_view prefix, const BlockRef& block, size_t offset,
                       size_t length) {
  auto session = std::make_unique<Http2ClientSession>(*this);
  Http2ClientSession* raw = session.get();
  sessions_.emplace(raw, std::move(session));
  if (raw->Open(fd, kind, client_ip) != 0) {
    close(fd);
    sessions_.erase(raw);                          // no handle was created: nothing to close
    ++tally().ended_by(ConnectionEnd::kByClient);  // the connection it came from ends here
    events_.OnConnectionClosed();
    return;
  }
  raw->Receive(prefix);
  raw->Receive(block, offset, length);
}

void Proxy::Remove(Http2ClientSession& session) {
  if (session.counted().connections > 0) ++tally().ended_by(session.end());
  MoveCounts(session.counted(), ProxyCounts{});
  sessions_.erase(&session);
  events_.OnConnectionClosed();
  ResumeListeners();
}

void Proxy::ResumeListeners() {
  for (auto& listener : listeners_) {
    if (clients_.size() + sessions_.size() >= options_.max_connections) break;
    if (listener->waiting()) {
      listener->set_waiting(false);
      Accept(*listener);
    }
  }
}

Http2UpstreamStream* Proxy::TakeH2cStream() {
  for (auto& [raw, session] : h2_upstreams_) {
    if (session->HasRoom()) return session->TakeStream();
  }
  auto session = std::make_unique<Http2UpstreamSession>(*this);
  Http2UpstreamSession* raw = session.get();
  h2_upstreams_.emplace(raw, std::move(session));
  if (raw->Connect() != 0) {
    // Either no socket was made (erase now) or it is closing (erased in its close callback).
    if (raw->state() != Http2UpstreamSession::State::kClosing) h2_upstreams_.erase(raw);
    return nullptr;
  }
  return raw->TakeStream();
}

void Proxy::Remove(Http2UpstreamSession& session) { h2_upstreams_.erase(&session); }

void Proxy::CloseAfterCurrentResponse() {
  close_after_each_response_ = true;
  for (auto& [raw, session] : sessions_) session->StartShutdown();
}

std::string Proxy::GrpcMessage(ProxyError error) const {
  std::string app = "the app at " + options_.upstream.text;
  switch (error) {
    case ProxyError::kUpstreamConnect:
      return "lameduck: cannot connect to " + app;
    case ProxyError::kUpstreamTimeout:
      return "lameduck: no response from " + app + " within --upstream-timeout (" +
             std::to_string(options_.upstream_timeout.count()) + "ms)";
    case ProxyError::kUpstreamClosed:
      return "lameduck: " + app + " closed the connection before it responded";
    case ProxyError::kUpstreamBadResponse:
      return "lameduck: " + app + " sent a malformed response";
    default:
      return "lameduck: " + std::string(ToString(error));
  }
}

void Proxy::Remove(UpstreamConnection& connection) {
  pool_.Remove(connection);
  upstreams_.erase(&connection);
}

void Proxy::StopAccepting() {
  for (auto& listener : listeners_) {
    // Clients whose handshake the kernel already completed would be reset by the close: they
    // were routed here before the listener closed, so serve them, over the limit if need be.
    if (listener->waiting()) {
      listener->set_waiting(false);
      Accept(*listener);
    }
    int fd;
    while ((fd = listener->AcceptRaw()) >= 0) Accept(*listener, fd);
    listener->Close();
  }
  listeners_.clear();
}

SpreadStep Proxy::CloseSpread(size_t step, size_t steps) {
  // DrainClose may close a connection, but it is erased only in its close callback, later: the
  // list does not change under these loops.
  if (step <= 1) {
    spread_total_ = 0;
    spread_done_ = 0;
    clients_.ForEach([&](ClientConnection& connection) {
      spread_total_ += connection.AwaitsDrainClose() ? 1 : 0;
    });
    for (auto& [raw, session] : sessions_) {
      spread_total_ += (session->idle() ? 1 : 0) + session->long_lived_awaiting();
    }
    pool_.CloseAll();
    // h2c connections to the app: GOAWAY once their last stream is done (now, if none).
    for (auto& [raw, session] : h2_upstreams_) session->Retire();
  }
  bool last = step >= steps;
  size_t target = last ? SIZE_MAX : (spread_total_ * step + steps - 1) / steps;
  SpreadStep done;
  clients_.ForEach([&](ClientConnection& connection) {
    if (spread_done_ >= target || !connection.AwaitsDrainClose()) return;
    ++spread_done_;
    std::optional<LongLivedKind> kind = connection.long_lived_kind();
    if (connection.DrainClose()) {
      ++done.idle_closed;
    } else if (kind) {
      ++done.long_lived_ending[static_cast<size_t>(*kind)];
    }
  });
  for (auto& [raw, session] : sessions_) {
    if (spread_done_ >= target) break;
    spread_done_ += session->EndLongLived(target - spread_done_, done);
    if (spread_done_ < target && session->idle() && session->CloseIfIdle()) {
      ++spread_done_;
      ++done.idle_closed;
    }
  }
  if (last) end_long_lived_at_once_ = true;
  return done;
}

size_t Proxy::ForceCloseAll() {
  size_t closed = 0;
  clients_.ForEach([&](ClientConnection& connection) {
    if (connection.state() == ClientConnection::State::kClosing) return;
    // A finished connection was served in full; it only waits for the client's FIN. One given
    // time for a first request that has not come holds nothing either.
    if (connection.counted_as() != ClientConnection::CountClass::kFinishing &&
        !connection.AwaitingFirstRequest()) {
      ++closed;
    }
    connection.ForceClose();
  });
  for (auto& [raw, session] : sessions_) closed += session->ForceClose();
  pool_.CloseAll();
  for (auto& [raw, connection] : upstreams_) connection->Close();
  for (auto& [raw, session] : h2_upstreams_) session->Close();
  return closed;
}

void Proxy::MoveCounts(const ProxyCounts& from, const ProxyCounts& to) {
  auto move = [](size_t& count, size_t before, size_t after) { count = count - before + after; };
  move(counts_.connections, from.connections, to.connections);
  move(counts_.finishing, from.finishing, to.finishing);
  move(counts_.in_flight, from.in_flight, to.in_flight);
  move(counts_.idle, from.idle, to.idle);
  move(counts_.upgraded, from.upgraded, to.upgraded);
  move(counts_.http2_connections, from.http2_connections, to.http2_connections);
  move(counts_.http2_streams, from.http2_streams, to.http2_streams);
}

void Proxy::MoveCount(ClientConnection::CountClass from, ClientConnection::CountClass to) {
  auto add = [this](ClientConnection::CountClass which, bool entering) {
    using Class = ClientConnection::CountClass;
    auto step = [entering](size_t& count) { count = entering ? count + 1 : count - 1; };
    if (which == Class::kUncounted) return;
    step(which == Class::kFinishing ? counts_.finishing : counts_.connections);
    switch (which) {
      case Class::kIdle:
        step(counts_.idle);
        break;
      case Class::kInFlight:
        step(counts_.in_flight);
        break;
      case Class::kUpgraded:
        step(counts_.upgraded);
        break;
      case Class::kUncounted:
      case Class::kFinishing:
      case Class::kOther:
        break;
    }
  };
  add(from, /*entering=*/false);
  add(to, /*entering=*/true);
}

}  // namespace lameduck::proxy
