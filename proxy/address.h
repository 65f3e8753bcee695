// Network addresses as the command line spells them: HOST:PORT, [V6]:PORT or unix:/path.
// Parsing only; does not resolve names (lameduck takes literal IPs and "localhost").
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <string>
#include <string_view>

#include "proxy/result.h"

namespace lameduck::proxy {

struct Address {
  enum class Kind { kTcp, kUnix };
  Kind kind = Kind::kTcp;
  sockaddr_storage sockaddr{};  // kTcp: a sockaddr_in or sockaddr_in6
  std::string path;             // kUnix
  std::string text;             // as given, for messages

  const struct sockaddr* sa() const { return reinterpret_cast<const struct sockaddr*>(&sockaddr); }
  int port() const;  // kTcp only; the bound port after a listener on port 0 started is not here
  void set_port(int port);  // kTcp only
};

// The peer's IP as text into out (at least INET6_ADDRSTRLEN bytes); an IPv4-mapped IPv6 address
// (a dual-stack listener) as plain IPv4. False, and out empty, if it cannot be read.
bool PeerIp(const struct sockaddr_storage& peer, char* out, size_t size);

// "127.0.0.1:8080", "0.0.0.0:80", "[::1]:8080", "[::]:80", "localhost:3000", "unix:/run/x.sock".
Result<Address> ParseAddress(std::string_view text);

}  // namespace lameduck::proxy
