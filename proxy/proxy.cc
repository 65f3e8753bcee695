#include "proxy/proxy.h"

#include <unistd.h>

#include "proxy/client_connection.h"
#include "proxy/listener.h"
#include "proxy/upstream_connection.h"

namespace lameduck::proxy {

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
    case ProxyError::kStalled:
    case ProxyError::kNone:
      return 502;
  }
  return 502;
}

Proxy::Proxy(uv_loop_t* loop, ProxyOptions options, ProxyEvents& events)
    : loop_(loop), options_(std::move(options)), events_(events) {
  upstream_host_ =
      options_.upstream.kind == Address::Kind::kUnix ? "localhost" : options_.upstream.text;
}

Proxy::~Proxy() = default;

Result<void> Proxy::Start() {
  for (const Address& address : options_.listen) {
    auto listener = std::make_unique<Listener>(*this, address);
    if (Result<void> started = listener->Start(loop_); !started.ok()) {
      StopAccepting();
      return started;
    }
    listeners_.push_back(std::move(listener));
  }
  return {};
}

std::vector<int> Proxy::listening_ports() const {
  std::vector<int> ports;
  for (const auto& listener : listeners_) ports.push_back(listener->port());
  return ports;
}

void Proxy::OnIncoming(Listener& listener) {
  if (clients_.size() >= options_.max_connections) {
    listener.set_waiting(true);  // stays in the backlog; libuv pauses this listener
    return;
  }
  Accept(listener);
}

void Proxy::Accept(Listener& listener, int fd) {
  auto connection = std::make_unique<ClientConnection>(*this);
  ClientConnection* raw = connection.get();
  clients_.emplace(raw, std::move(connection));
  if (raw->Accept(listener.stream(), fd, listener.address().kind) != 0) {
    if (fd >= 0) close(fd);
    clients_.erase(raw);  // no handle was created: nothing to close
    return;
  }
  events_.OnConnectionOpened();
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
  MoveCount(connection.counted_as(), ClientConnection::CountClass::kUncounted);
  clients_.erase(&connection);
  events_.OnConnectionClosed();
  for (auto& listener : listeners_) {
    if (clients_.size() >= options_.max_connections) break;
    if (listener->waiting()) {
      listener->set_waiting(false);
      Accept(*listener);
    }
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

size_t Proxy::CloseIdleConnections() {
  // CloseIfIdle may close a connection, but it is erased only in its close callback, later: the
  // map does not change under this loop.
  size_t closed = 0;
  for (auto& [raw, connection] : clients_) closed += connection->CloseIfIdle() ? 1 : 0;
  pool_.CloseAll();
  return closed;
}

size_t Proxy::ForceCloseAll() {
  size_t closed = 0;
  for (auto& [raw, connection] : clients_) {
    if (connection->state() == ClientConnection::State::kClosing) continue;
    // A finished connection was served in full; it only waits for the client's FIN. One given
    // time for a first request that has not come holds nothing either.
    if (connection->counted_as() != ClientConnection::CountClass::kFinishing &&
        !connection->AwaitingFirstRequest()) {
      ++closed;
    }
    connection->Close();
  }
  pool_.CloseAll();
  for (auto& [raw, connection] : upstreams_) connection->Close();
  return closed;
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
