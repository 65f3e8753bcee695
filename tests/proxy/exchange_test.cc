// Unit tests of Exchange's own rules: no sockets.
#include "proxy/exchange.h"

#include <gtest/gtest.h>

namespace lameduck::proxy {
namespace {

// The exchange's rules tested here never report to the owner.
class NoOwner final : public Exchange::Owner {
 public:
  void OnUpstreamReady(Exchange&) override {}
  void OnUpstreamWritable(Exchange&) override {}
  HeadVerdict OnHead(Exchange&, const ResponseHead&) override { return HeadVerdict::kForward; }
  Verdict OnBody(Exchange&, const uv_buf_t*, size_t, const BlockRef&) override {
    return Verdict::kContinue;
  }
  void OnReadDone(Exchange&) override {}
  void OnEnd(Exchange&) override {}
  void OnUpgraded(Exchange&, const BlockRef&, size_t, size_t) override {}
  void OnUpstreamError(Exchange&, ProxyError, bool) override {}
  void OnTunnelData(Exchange&, const BlockRef&, size_t, size_t) override {}
  void OnTunnelEof(Exchange&) override {}
  void OnTunnelShutdown(Exchange&, int) override {}
};

TEST(ExchangeTest, BeginsEveryRequestAfresh) {
  NoOwner owner;
  Exchange exchange(owner);
  exchange.request = Exchange::RequestState::kComplete;
  exchange.response = Exchange::ResponseState::kComplete;
  exchange.attempt = Exchange::Attempt::kRetry;
  exchange.body_bytes_forwarded = 10;
  exchange.status = 200;
  exchange.Begin(/*http10=*/true, /*upgrade=*/false, /*close_after=*/true);
  EXPECT_EQ(exchange.request, Exchange::RequestState::kBody);
  EXPECT_EQ(exchange.response, Exchange::ResponseState::kAwaitingHead);
  EXPECT_EQ(exchange.attempt, Exchange::Attempt::kNone);
  EXPECT_EQ(exchange.upstream, nullptr);
  EXPECT_EQ(exchange.body_bytes_forwarded, 0u);
  EXPECT_EQ(exchange.status, 0);
  EXPECT_TRUE(exchange.http10);
  EXPECT_TRUE(exchange.close_after);
}

TEST(ExchangeTest, RetriesOnlyAnIdempotentRequestOnceOnAReusedConnectionTheAppClosed) {
  NoOwner owner;
  Exchange exchange(owner);
  exchange.Begin(false, false, false);
  exchange.attempt = Exchange::Attempt::kReused;
  EXPECT_TRUE(exchange.MayRetry(ProxyError::kUpstreamClosed, /*idempotent=*/true,
                                /*response_started=*/false));
  EXPECT_FALSE(exchange.MayRetry(ProxyError::kUpstreamTimeout, true, false));
  EXPECT_FALSE(exchange.MayRetry(ProxyError::kUpstreamClosed, /*idempotent=*/false, false));
  EXPECT_FALSE(exchange.MayRetry(ProxyError::kUpstreamClosed, true, /*response_started=*/true));
  exchange.body_bytes_forwarded = 1;  // the body started to flow
  EXPECT_FALSE(exchange.MayRetry(ProxyError::kUpstreamClosed, true, false));
  exchange.body_bytes_forwarded = 0;
  exchange.response = Exchange::ResponseState::kHeadHeld;
  EXPECT_FALSE(exchange.MayRetry(ProxyError::kUpstreamClosed, true, false));
  exchange.response = Exchange::ResponseState::kAwaitingHead;
  for (Exchange::Attempt attempt :
       {Exchange::Attempt::kFresh, Exchange::Attempt::kRetry, Exchange::Attempt::kNone}) {
    exchange.attempt = attempt;
    EXPECT_FALSE(exchange.MayRetry(ProxyError::kUpstreamClosed, true, false));
  }
}

TEST(ExchangeTest, NamesEveryState) {
  EXPECT_EQ(ToString(Exchange::RequestState::kBody), "body");
  EXPECT_EQ(ToString(Exchange::RequestState::kComplete), "complete");
  EXPECT_EQ(ToString(Exchange::ResponseState::kAwaitingHead), "awaiting_head");
  EXPECT_EQ(ToString(Exchange::ResponseState::kHeadHeld), "head_held");
  EXPECT_EQ(ToString(Exchange::ResponseState::kStreaming), "streaming");
  EXPECT_EQ(ToString(Exchange::ResponseState::kComplete), "complete");
}

}  // namespace
}  // namespace lameduck::proxy
