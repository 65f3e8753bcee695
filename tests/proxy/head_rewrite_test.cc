// Unit tests of the head writers and the address parser: no sockets.
#include "proxy/head_rewrite.h"

#include <gtest/gtest.h>

#include "proxy/address.h"

namespace lameduck::proxy {
namespace {

HeadCollector Head(std::initializer_list<std::pair<std::string, std::string>> fields,
                   std::string target = "/") {
  HeadCollector head;
  head.AppendTarget(target.data(), target.size());
  for (const auto& [name, value] : fields) {
    head.AppendField(name.data(), name.size());
    head.AppendValue(value.data(), value.size());
  }
  return head;
}

TEST(HeadCollectorTest, JoinsFieldsAndValuesSplitAcrossReads) {
  HeadCollector head;
  head.AppendTarget("/a", 2);
  head.AppendTarget("bc", 2);
  head.AppendField("Con", 3);
  head.AppendField("tent-Type", 9);
  head.AppendValue("text/", 5);
  head.AppendValue("plain  ", 7);
  head.AppendField("X", 1);
  head.AppendValue("1", 1);
  EXPECT_EQ(head.target(), "/abc");
  ASSERT_EQ(head.field_count(), 2u);
  EXPECT_EQ(head.name(0), "Content-Type");
  EXPECT_EQ(head.value(0), "text/plain");  // trailing whitespace trimmed
  EXPECT_EQ(head.Find("content-type"), "text/plain");
  EXPECT_EQ(head.Count("x"), 1);
}

TEST(HeadCollectorTest, ResetKeepsNothingOfThePreviousMessage) {
  HeadCollector head = Head({{"A", "1"}});
  head.Reset();
  EXPECT_EQ(head.field_count(), 0u);
  EXPECT_EQ(head.target(), "");
}

TEST(ListHasTokenTest, FindsTokensCaseInsensitivelyInCommaLists) {
  EXPECT_TRUE(ListHasToken("keep-alive, Upgrade", "upgrade"));
  EXPECT_TRUE(ListHasToken("close", "Close"));
  EXPECT_FALSE(ListHasToken("keep-alive", "close"));
  EXPECT_FALSE(ListHasToken("", "close"));
}

TEST(WriteRequestHeadTest, KeepsEndToEndFieldsAndFramingAndAddsForwardingFields) {
  HeadCollector head = Head({{"Host", "h"},
                             {"Content-Length", "3"},
                             {"Connection", "close, X-Hop"},
                             {"X-Hop", "1"},
                             {"Accept", "*/*"}},
                            "/p?q=1");
  std::string out;
  WriteRequestHead(head, {"POST", "10.0.0.1", false, ""}, out);
  EXPECT_EQ(out,
            "POST /p?q=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nAccept: */*\r\n"
            "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\n\r\n");
}

TEST(WriteRequestHeadTest, MergesEveryXForwardedForIntoOneListEndingWithTheClient) {
  HeadCollector head = Head(
      {{"Host", "h"}, {"X-Forwarded-For", "1.1.1.1"}, {"X-Forwarded-For", "2.2.2.2, 3.3.3.3"}});
  std::string out;
  WriteRequestHead(head, {"GET", "4.4.4.4", false, ""}, out);
  EXPECT_NE(out.find("X-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, 4.4.4.4\r\n"), std::string::npos)
      << out;
  EXPECT_EQ(out.find("X-Forwarded-For", out.find("X-Forwarded-For") + 1), std::string::npos);
}

TEST(WriteRequestHeadTest, KeepsUpgradeOnlyForAnUpgrade) {
  HeadCollector head = Head({{"Host", "h"}, {"Connection", "Upgrade"}, {"Upgrade", "websocket"}});
  std::string upgrade;
  WriteRequestHead(head, {"GET", "", true, ""}, upgrade);
  EXPECT_NE(upgrade.find("Upgrade: websocket\r\n"), std::string::npos);
  EXPECT_NE(upgrade.find("Connection: upgrade\r\n"), std::string::npos);
  EXPECT_EQ(upgrade.find("X-Forwarded-For"), std::string::npos);  // unix client: no address
  std::string plain;
  WriteRequestHead(head, {"GET", "", false, ""}, plain);
  EXPECT_EQ(plain.find("Upgrade"), std::string::npos);
}

TEST(WriteResponseHeadTest, SaysCloseOrKeepAliveAsTheConnectionRequires) {
  HeadCollector head = Head({{"Content-Length", "0"}, {"Keep-Alive", "timeout=5"}}, "OK");
  std::string out;
  WriteResponseHead(head, {200, ResponseFraming::kAsIs, ResponseConnection::kClose}, out);
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  WriteResponseHead(head, {200, ResponseFraming::kAsIs, ResponseConnection::kKeepAliveHttp10}, out);
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n");
}

TEST(WriteResponseHeadTest, DropsTransferEncodingWhenDechunking) {
  HeadCollector head = Head({{"Transfer-Encoding", "chunked"}, {"X", "1"}}, "OK");
  std::string out;
  WriteResponseHead(head, {200, ResponseFraming::kDechunk, ResponseConnection::kClose}, out);
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nX: 1\r\nConnection: close\r\n\r\n");
}

TEST(WriteErrorResponseTest, IsCompleteWithAShortBodyAndConnectionClose) {
  std::string out;
  WriteErrorResponse(502, out);
  EXPECT_EQ(out,
            "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n"
            "Connection: close\r\n\r\nBad Gateway\n");
}

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
