// Unit tests of the HTTP/1 response parser: bytes in, facts out.
#include "proxy/http1/response_parser.h"

#include <gtest/gtest.h>

#include <string>

namespace lameduck::proxy::http1 {
namespace {

constexpr size_t kMaxHead = 64 * 1024;

// What a whole response looked like through the parser, fed in reads split at `split`.
struct Seen {
  std::vector<int> heads;  // statuses, in order
  std::string body;
  int ends = 0;
  bool error = false;
  size_t left = 0;  // bytes after the final response's end
  bool keep_alive = false;
  bool chunked = false;
  bool content_length = false;
};

Seen Feed(ResponseParser& parser, std::string bytes, size_t split, bool dechunk = false) {
  Seen seen;
  std::vector<std::string> reads;
  if (split == 0 || split >= bytes.size()) {
    reads.push_back(bytes);
  } else {
    reads.push_back(bytes.substr(0, split));
    reads.push_back(bytes.substr(split));
  }
  for (size_t r = 0; r < reads.size(); ++r) {
    const std::string& read = reads[r];
    size_t offset = 0;
    bool again = false;
    while (offset < read.size() || again) {
      ResponseParser::Step step = parser.Parse(read.data() + offset, read.size() - offset);
      again = false;
      if (step.error) {
        seen.error = true;
        return seen;
      }
      if (step.body) {
        if (parser.dechunk()) {
          for (const uv_buf_t& span : parser.body_spans()) seen.body.append(span.base, span.len);
        } else {
          seen.body.append(read, offset, step.used);
        }
      }
      offset += step.used;
      if (!step.head && !step.end) continue;
      again = true;
      if (step.head) {
        seen.heads.push_back(parser.head().status);
        seen.chunked = parser.head().chunked;
        seen.content_length = parser.head().content_length;
        parser.set_dechunk(dechunk);
      }
      if (step.end) {
        ++seen.ends;
        if (parser.head().interim()) continue;
        seen.keep_alive = parser.keep_alive();
        seen.left = read.size() - offset;
        for (size_t later = r + 1; later < reads.size(); ++later) seen.left += reads[later].size();
        return seen;
      }
    }
  }
  return seen;
}

TEST(ResponseParserTest, ReportsHeadBodyAndEndWhereverAReadSplitsIt) {
  std::string bytes = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello";
  for (size_t split = 0; split < bytes.size(); ++split) {
    SCOPED_TRACE("split at " + std::to_string(split));
    ResponseParser parser(kMaxHead);
    parser.Reset(/*head_request=*/false);
    Seen seen = Feed(parser, bytes, split);
    ASSERT_FALSE(seen.error);
    EXPECT_EQ(seen.heads, std::vector<int>{200});
    EXPECT_EQ(seen.body, "hello");
    EXPECT_EQ(seen.ends, 1);
    EXPECT_TRUE(seen.keep_alive);
    EXPECT_TRUE(seen.content_length);
    EXPECT_EQ(parser.head().fields->target(), "OK");
    EXPECT_EQ(parser.head().fields->Find("x-a"), "b");
  }
}

TEST(ResponseParserTest, SeesNoBodyInResponsesToHeadOr204Or304) {
  for (int status : {204, 304}) {
    ResponseParser parser(kMaxHead);
    parser.Reset(/*head_request=*/false);
    std::string bytes =
        "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: 10\r\n\r\nHTTP/1.1";
    Seen seen = Feed(parser, bytes, 0);
    EXPECT_EQ(seen.heads, std::vector<int>{status});
    EXPECT_EQ(seen.ends, 1);
    EXPECT_EQ(seen.body, "");
    EXPECT_EQ(seen.left, 8u);  // out of step: the caller does not reuse the connection
  }
  ResponseParser parser(kMaxHead);
  parser.Reset(/*head_request=*/true);
  Seen seen = Feed(parser, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", 0);
  EXPECT_EQ(seen.ends, 1);
  EXPECT_EQ(seen.body, "");
  EXPECT_EQ(seen.left, 0u);
}

TEST(ResponseParserTest, ReportsInterimHeadsBeforeTheFinalOne) {
  ResponseParser parser(kMaxHead);
  parser.Reset(/*head_request=*/false);
  Seen seen = Feed(parser,
                   "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nLink: x\r\n\r\n"
                   "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                   0);
  EXPECT_EQ(seen.heads, (std::vector<int>{100, 103, 200}));
  EXPECT_EQ(seen.ends, 3);
  EXPECT_EQ(seen.body, "ok");
}

TEST(ResponseParserTest, DechunksWhereverAReadSplitsIt) {
  std::string bytes =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
  for (size_t split = 0; split < bytes.size(); ++split) {
    SCOPED_TRACE("split at " + std::to_string(split));
    ResponseParser parser(kMaxHead);
    parser.Reset(/*head_request=*/false);
    Seen seen = Feed(parser, bytes, split, /*dechunk=*/true);
    ASSERT_FALSE(seen.error);
    EXPECT_TRUE(seen.chunked);
    EXPECT_EQ(seen.body, "abcde");
    EXPECT_EQ(seen.ends, 1);
  }
}

TEST(ResponseParserTest, EndsACloseDelimitedBodyOnlyAtTheClose) {
  ResponseParser parser(kMaxHead);
  parser.Reset(/*head_request=*/false);
  Seen seen = Feed(parser, "HTTP/1.1 200 OK\r\n\r\nsome", 0);
  EXPECT_EQ(seen.ends, 0);
  EXPECT_EQ(seen.body, "some");
  EXPECT_FALSE(seen.content_length);
  EXPECT_FALSE(seen.chunked);
  EXPECT_TRUE(parser.Finish());
}

TEST(ResponseParserTest, DoesNotEndAShortContentLengthBodyAtTheClose) {
  ResponseParser parser(kMaxHead);
  parser.Reset(/*head_request=*/false);
  Seen seen = Feed(parser, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", 0);
  EXPECT_EQ(seen.ends, 0);
  EXPECT_FALSE(parser.Finish());
}

TEST(ResponseParserTest, RejectsAHeadOverTheLimitAndMalformedBytes) {
  ResponseParser small(32);
  small.Reset(/*head_request=*/false);
  EXPECT_TRUE(Feed(small, "HTTP/1.1 200 OK\r\nX-Pad: 0123456789012345678901\r\n\r\n", 0).error);
  ResponseParser parser(kMaxHead);
  parser.Reset(/*head_request=*/false);
  EXPECT_TRUE(Feed(parser, "NOT HTTP\r\n\r\n", 0).error);
}

TEST(ResponseParserTest, ReportsConnectionCloseAsNotKeepAlive) {
  ResponseParser parser(kMaxHead);
  parser.Reset(/*head_request=*/false);
  Seen seen = Feed(parser, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 0);
  EXPECT_EQ(seen.ends, 1);
  EXPECT_FALSE(seen.keep_alive);
}

}  // namespace
}  // namespace lameduck::proxy::http1
