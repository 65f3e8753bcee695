// Unit tests of the address parser: no sockets.
#include "proxy/address.h"

#include <gtest/gtest.h>

namespace lameduck::proxy {
namespace {

TEST(ParseAddressTest, AcceptsIpv4Ipv6AndUnixForms) {
  auto v4 = ParseAddress("127.0.0.1:8080");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->kind, Address::Kind::kTcp);
  EXPECT_EQ(v4->port(), 8080);
  auto v6 = ParseAddress("[::1]:9901");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->sockaddr.ss_family, AF_INET6);
  EXPECT_EQ(v6->port(), 9901);
  auto unix_socket = ParseAddress("unix:/run/app.sock");
  ASSERT_TRUE(unix_socket.ok());
  EXPECT_EQ(unix_socket->kind, Address::Kind::kUnix);
  EXPECT_EQ(unix_socket->path, "/run/app.sock");
  EXPECT_EQ(ParseAddress("localhost:3000")->port(), 3000);
}

TEST(ParseAddressTest, RejectsMalformedAddressesWithAReason) {
  for (const char* bad : {"", "8080", "127.0.0.1", "127.0.0.1:", "127.0.0.1:99999", "::1:80",
                          "[::1]80", "example.com:80", "unix:", "1.2.3.4:8x"}) {
    auto parsed = ParseAddress(bad);
    EXPECT_FALSE(parsed.ok()) << bad;
    if (!parsed.ok()) {
      EXPECT_FALSE(parsed.error().empty());
    }
  }
}

}  // namespace
}  // namespace lameduck::proxy
