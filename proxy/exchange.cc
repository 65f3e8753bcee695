#include "proxy/exchange.h"

namespace lameduck::proxy {

void Exchange::Begin(bool http10_client, bool upgrade_requested, bool close_connection_after) {
  request = RequestState::kBody;
  response = ResponseState::kAwaitingHead;
  attempt = Attempt::kNone;
  upstream = nullptr;
  unsent.Reset();
  body_bytes_forwarded = 0;
  status = 0;
  http10 = http10_client;
  upgrade = upgrade_requested;
  close_after = close_connection_after;
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
