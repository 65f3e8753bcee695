#include "proxy/address.h"

#include <arpa/inet.h>
#include <sys/un.h>

#include <charconv>

namespace lameduck::proxy {

int Address::port() const {
  if (sockaddr.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&sockaddr)->sin_port);
  }
  if (sockaddr.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&sockaddr)->sin6_port);
  }
  return -1;
}

void Address::set_port(int port) {
  auto value = htons(static_cast<uint16_t>(port));
  if (sockaddr.ss_family == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&sockaddr)->sin6_port = value;
  } else {
    reinterpret_cast<sockaddr_in*>(&sockaddr)->sin_port = value;
  }
}

bool PeerIp(const sockaddr_storage& peer, char* out, size_t size) {
  out[0] = '\0';
  if (peer.ss_family == AF_INET) {
    return inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&peer)->sin_addr, out,
                     static_cast<socklen_t>(size)) != nullptr;
  }
  if (peer.ss_family != AF_INET6) return false;
  const in6_addr& address = reinterpret_cast<const sockaddr_in6*>(&peer)->sin6_addr;
  if (IN6_IS_ADDR_V4MAPPED(&address)) {
    return inet_ntop(AF_INET, &address.s6_addr[12], out, static_cast<socklen_t>(size)) != nullptr;
  }
  return inet_ntop(AF_INET6, &address, out, static_cast<socklen_t>(size)) != nullptr;
}

Result<Address> ParseAddress(std::string_view text) {
  Address address;
  address.text = std::string(text);
  if (text.starts_with("unix:")) {
    std::string_view path = text.substr(5);
    if (path.empty()) return Error{"empty unix socket path in \"" + address.text + "\""};
    if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
      return Error{"unix socket path too long in \"" + address.text + "\""};
    }
    address.kind = Address::Kind::kUnix;
    address.path = std::string(path);
    return address;
  }
  std::string_view host;
  std::string_view port_text;
  if (text.starts_with("[")) {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return Error{"expected [V6]:PORT, got \"" + address.text + "\""};
    }
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return Error{"expected HOST:PORT, [V6]:PORT or unix:/path, got \"" + address.text + "\""};
    }
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return Error{"IPv6 addresses need brackets, as in [::1]:8080, got \"" + address.text + "\""};
    }
  }
  int port = -1;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
      port < 0 || port > 65535) {
    return Error{"invalid port in \"" + address.text + "\""};
  }
  if (host == "localhost") host = "127.0.0.1";
  std::string host_string(host);
  if (host.empty()) host_string = "0.0.0.0";
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address.sockaddr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address.sockaddr);
  if (inet_pton(AF_INET, host_string.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
  } else if (inet_pton(AF_INET6, host_string.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
  } else {
    return Error{"invalid IP address \"" + host_string + "\" in \"" + address.text +
                 "\" (use a literal IPv4 or IPv6 address)"};
  }
  return address;
}

}  // namespace lameduck::proxy
