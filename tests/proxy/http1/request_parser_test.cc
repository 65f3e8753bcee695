// Unit tests of the HTTP/1 request parser and its strictness checks: bytes in, facts out.
#include "proxy/http1/request_parser.h"

#include <gtest/gtest.h>

#include <string>

namespace lameduck::proxy::http1 {
namespace {

using Outcome = RequestParser::Outcome;

constexpr size_t kMaxHead = 64 * 1024;

// Feeds a whole head in one read.
RequestParser::Result ParseWhole(RequestParser& parser, std::string_view bytes) {
  parser.StartHead();
  return parser.ParseHead(bytes.data(), bytes.size());
}

ProxyError ErrorOf(std::string_view bytes) {
  RequestParser parser(kMaxHead);
  RequestParser::Result result = ParseWhole(parser, bytes);
  return result.outcome == Outcome::kError ? result.error : ProxyError::kNone;
}

TEST(RequestParserTest, ReportsTheFactsOfACompleteHeadWithoutBody) {
  RequestParser parser(kMaxHead);
  std::string bytes = "GET /a?b HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\nGET /next";
  RequestParser::Result result = ParseWhole(parser, bytes);
  EXPECT_EQ(result.outcome, Outcome::kMessageComplete);
  EXPECT_EQ(result.used, bytes.find("GET /next"));
  EXPECT_EQ(parser.method_name(), "GET");
  EXPECT_EQ(parser.head().target(), "/a?b");
  EXPECT_EQ(parser.head().Find("x-a"), "1");
  EXPECT_FALSE(parser.http10());
  EXPECT_TRUE(parser.keep_alive());
  EXPECT_TRUE(parser.idempotent());
  EXPECT_FALSE(parser.head_request());
  EXPECT_FALSE(parser.upgrade());
}

TEST(RequestParserTest, ReportsABodyThatFollowsTheHeadAndItsEnd) {
  RequestParser parser(kMaxHead);
  std::string head = "POST /u HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n";
  RequestParser::Result result = ParseWhole(parser, head + "he");
  EXPECT_EQ(result.outcome, Outcome::kHeadComplete);
  EXPECT_EQ(result.used, head.size());
  EXPECT_FALSE(parser.idempotent());
  result = parser.ParseBody("he", 2);
  EXPECT_EQ(result.outcome, Outcome::kNeedMore);
  EXPECT_EQ(result.used, 2u);
  result = parser.ParseBody("lloGET", 6);
  EXPECT_EQ(result.outcome, Outcome::kMessageComplete);
  EXPECT_EQ(result.used, 3u);
}

TEST(RequestParserTest, FindsTheSameHeadWhereverAReadSplitsIt) {
  std::string bytes = "PUT /p HTTP/1.1\r\nHost: example\r\nX-Long: abcdef\r\n\r\n";
  for (size_t split = 1; split < bytes.size(); ++split) {
    SCOPED_TRACE("split at " + std::to_string(split));
    RequestParser parser(kMaxHead);
    parser.StartHead();
    RequestParser::Result first = parser.ParseHead(bytes.data(), split);
    ASSERT_EQ(first.outcome, Outcome::kNeedMore);
    ASSERT_EQ(first.used, split);
    RequestParser::Result second = parser.ParseHead(bytes.data() + split, bytes.size() - split);
    ASSERT_EQ(second.outcome, Outcome::kMessageComplete);
    EXPECT_EQ(second.used, bytes.size() - split);
    EXPECT_EQ(parser.method_name(), "PUT");
    EXPECT_EQ(parser.head().target(), "/p");
    EXPECT_EQ(parser.head().Find("host"), "example");
    EXPECT_EQ(parser.head().Find("x-long"), "abcdef");
  }
}

TEST(RequestParserTest, FindsObsFoldWhereverAReadSplitsIt) {
  std::string bytes = "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n";
  for (size_t split = 1; split < bytes.size(); ++split) {
    SCOPED_TRACE("split at " + std::to_string(split));
    RequestParser parser(kMaxHead);
    parser.StartHead();
    RequestParser::Result first = parser.ParseHead(bytes.data(), split);
    if (first.outcome == Outcome::kError) {
      EXPECT_EQ(first.error, ProxyError::kBadRequest);
      continue;
    }
    RequestParser::Result second = parser.ParseHead(bytes.data() + split, bytes.size() - split);
    ASSERT_EQ(second.outcome, Outcome::kError);
    EXPECT_EQ(second.error, ProxyError::kBadRequest);
  }
}

TEST(RequestParserTest, RejectsRunsOfSpacesInTheRequestLine) {
  EXPECT_EQ(ErrorOf("GET  / HTTP/1.1\r\nHost: x\r\n\r\n"), ProxyError::kBadRequest);
  EXPECT_EQ(ErrorOf("GET /  HTTP/1.1\r\nHost: x\r\n\r\n"), ProxyError::kBadRequest);
  EXPECT_EQ(ErrorOf("\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"), ProxyError::kNone);
}

TEST(RequestParserTest, RejectsWhitespaceBeforeAFieldsColon) {
  EXPECT_EQ(ErrorOf("GET / HTTP/1.1\r\nHost : x\r\n\r\n"), ProxyError::kBadRequest);
}

TEST(RequestParserTest, RejectsMissingOrRepeatedHostIn11AndRepeatedHostIn10) {
  EXPECT_EQ(ErrorOf("GET / HTTP/1.1\r\n\r\n"), ProxyError::kBadRequest);
  EXPECT_EQ(ErrorOf("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), ProxyError::kBadRequest);
  EXPECT_EQ(ErrorOf("GET / HTTP/1.0\r\n\r\n"), ProxyError::kNone);
  EXPECT_EQ(ErrorOf("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), ProxyError::kBadRequest);
}

TEST(RequestParserTest, RejectsTransferEncodingInHttp10) {
  EXPECT_EQ(ErrorOf("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            ProxyError::kBadRequest);
}

TEST(RequestParserTest, RejectsTransferEncodingWithoutChunked) {
  EXPECT_EQ(ErrorOf("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
            ProxyError::kBadRequest);
}

TEST(RequestParserTest, AnswersConnectWith405AndOtherVersionsWith505) {
  EXPECT_EQ(ErrorOf("CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n"),
            ProxyError::kMethodNotAllowed);
  EXPECT_EQ(ErrorOf("GET / HTTP/0.9\r\nHost: x\r\n\r\n") != ProxyError::kNone, true);
}

TEST(RequestParserTest, CountsTheHeadAgainstItsLimitAcrossReads) {
  RequestParser parser(40);
  parser.StartHead();
  std::string part = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ";
  ASSERT_EQ(parser.ParseHead(part.data(), part.size()).outcome, Outcome::kNeedMore);
  std::string more = "0123456789";
  RequestParser::Result result = parser.ParseHead(more.data(), more.size());
  ASSERT_EQ(result.outcome, Outcome::kError);
  EXPECT_EQ(result.error, ProxyError::kHeadTooLarge);
}

TEST(RequestParserTest, RejectsABrokenChunkedBody) {
  RequestParser parser(kMaxHead);
  std::string head = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  ASSERT_EQ(ParseWhole(parser, head).outcome, Outcome::kHeadComplete);
  std::string body = "zz\r\n";
  RequestParser::Result result = parser.ParseBody(body.data(), body.size());
  ASSERT_EQ(result.outcome, Outcome::kError);
  EXPECT_EQ(result.error, ProxyError::kBadRequest);
}

TEST(RequestParserTest, ParsesPipelinedRequestsOneAtATime) {
  RequestParser parser(kMaxHead);
  std::string bytes = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /b HTTP/1.0\r\n\r\n";
  RequestParser::Result first = ParseWhole(parser, bytes);
  ASSERT_EQ(first.outcome, Outcome::kMessageComplete);
  EXPECT_EQ(parser.head().target(), "/a");
  parser.Reset();  // as a connection's next request begins
  RequestParser::Result second =
      parser.ParseHead(bytes.data() + first.used, bytes.size() - first.used);
  ASSERT_EQ(second.outcome, Outcome::kMessageComplete);
  EXPECT_EQ(parser.head().target(), "/b");
  EXPECT_TRUE(parser.head_request());
  EXPECT_TRUE(parser.http10());
  EXPECT_FALSE(parser.keep_alive());
}

TEST(RequestParserTest, ParsesHttpAgainAfterADeclinedUpgrade) {
  RequestParser parser(kMaxHead);
  std::string bytes =
      "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
  ASSERT_EQ(ParseWhole(parser, bytes).outcome, Outcome::kMessageComplete);
  EXPECT_TRUE(parser.upgrade());
  parser.Reset();
  std::string next = "GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
  RequestParser::Result result = ParseWhole(parser, next);
  ASSERT_EQ(result.outcome, Outcome::kMessageComplete);
  EXPECT_EQ(parser.head().target(), "/b");
}

}  // namespace
}  // namespace lameduck::proxy::http1
