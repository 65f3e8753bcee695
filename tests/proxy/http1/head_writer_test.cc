// Unit tests of the HTTP/1.1 head writers: bytes only, no sockets.
#include "proxy/http1/head_writer.h"

#include <gtest/gtest.h>

namespace lameduck::proxy::http1 {
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

}  // namespace
}  // namespace lameduck::proxy::http1
