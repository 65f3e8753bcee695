#include "proxy/exchange.h"

#include "proxy/upstream.h"

namespace lameduck::proxy {

void Exchange::Begin(bool http10_client, bool upgrade_requested, bool close_connection_after) {
  // An upstream still attached would go on reporting into the next request: let it go.
  DropUpstream();
  // The owner recounts right after (it moves the connection to kProxying).
  request = RequestState::kBody;
  response = ResponseState::kAwaitingHead;
  attempt = Attempt::kNone;
  unsent.Reset();
  body_bytes_forwarded = 0;
  body_replayable = false;
  status = 0;
  http10 = http10_client;
  upgrade = upgrade_requested;
  close_after = close_connection_after;
}

void Exchange::Attach(Upstream& attached, bool head_request, bool retry) {
  upstream = &attached;
  attached.Attach(*this, head_request);
  attempt = retry ? Attempt::kRetry : attached.reused() ? Attempt::kReused : Attempt::kFresh;
}

bool Exchange::upstream_ready() const { return upstream != nullptr && upstream->ready(); }

int Exchange::SendHead(const HeadCollector& head, const http1::RequestRewrite& rewrite) {
  bool complete = request == RequestState::kComplete;
  if (int rc = upstream->WriteRequestHead(head, rewrite, complete); rc != 0) return rc;
  if (complete) upstream->EndRequest(nullptr);
  return 0;
}

int Exchange::ForwardBody(const BlockRef& block, size_t offset, size_t length) {
  if (length == 0 || upstream == nullptr) return 0;
  uv_buf_t buf = uv_buf_init(block.data() + offset, static_cast<unsigned>(length));
  if (int rc = upstream->Write(nullptr, &buf, 1, block.Share()); rc != 0) return rc;
  body_bytes_forwarded += length;
  return 0;
}

void Exchange::HoldBody(const BlockRef& block, size_t offset, size_t length) {
  unsent = block.Share();
  unsent_offset = offset;
  unsent_length = length;
}

int Exchange::ForwardHeldBody() {
  if (!unsent) return 0;
  if (int rc = ForwardBody(unsent, unsent_offset, unsent_length); rc != 0) return rc;
  unsent.Reset();
  return 0;
}

void Exchange::EndRequest(const HeadCollector* trailers) {
  request = RequestState::kComplete;
  if (upstream != nullptr) upstream->EndRequest(trailers);
}

void Exchange::OnEnd() {
  upstream = nullptr;  // it went back to the pool, or closes: not ours any more
  owner_.OnEnd(*this);
}

void Exchange::OnUpstreamError(ProxyError error, bool response_started) {
  upstream = nullptr;  // detached and closing already
  owner_.OnUpstreamError(*this, error, response_started);
}

void Exchange::OnUpstreamReset(uint32_t code, bool response_started) {
  upstream = nullptr;  // detached already
  owner_.OnUpstreamReset(*this, code, response_started);
}

void Exchange::DropUpstream() {
  Upstream* connection = upstream;
  if (connection == nullptr) return;
  upstream = nullptr;
  connection->Detach();
  connection->Close();
}

bool Exchange::MayRetry(ProxyError error, bool idempotent, bool response_started) const {
  // The app says it never processed the stream (RFC 9113 8.7): safe for any method, once.
  if (error == ProxyError::kUpstreamRefused) {
    return attempt != Attempt::kRetry && !response_started &&
           response == ResponseState::kAwaitingHead &&
           (body_bytes_forwarded == 0 || body_replayable);
  }
  return error == ProxyError::kUpstreamClosed && attempt == Attempt::kReused && idempotent &&
         body_bytes_forwarded == 0 && !response_started && response == ResponseState::kAwaitingHead;
}

std::string_view ToString(Exchange::RequestState state) {
  switch (state) {
    case Exchange::RequestState::kBody:
      return "body";
    case Exchange::RequestState::kComplete:
      return "complete";
  }
  return "unknown";
}

std::string_view ToString(Exchange::ResponseState state) {
  switch (state) {
    case Exchange::ResponseState::kAwaitingHead:
      return "awaiting_head";
    case Exchange::ResponseState::kHeadHeld:
      return "head_held";
    case Exchange::ResponseState::kStreaming:
      return "streaming";
    case Exchange::ResponseState::kComplete:
      return "complete";
  }
  return "unknown";
}

}  // namespace lameduck::proxy
