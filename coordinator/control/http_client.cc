#include "coordinator/control/http_client.h"

#include <string_view>

#include "proxy/buffer_pool.h"
#include "proxy/socket.h"
#include "proxy/uv_handle.h"

namespace lameduck::coordinator {

std::string_view ToString(HttpError error) {
  switch (error) {
    case HttpError::kNone:
      return "none";
    case HttpError::kConnect:
      return "connect";
    case HttpError::kSend:
      return "send";
    case HttpError::kTimeout:
      return "timeout";
    case HttpError::kClosed:
      return "closed";
    case HttpError::kMalformed:
      return "malformed";
  }
  return "unknown";
}

// One connection and its exchange. Owns itself (self_) from Start until its socket's close
// callback, so that the socket outlives a client that cancelled or went away; it keeps its own
// pools for the same reason (a closing socket still returns blocks and write requests).
class HttpClient::Exchange final : private proxy::Socket::Owner {
 public:
  enum class State {
    kConnecting,  // deadline armed; nothing sent
    kAwaiting,    // request written (or queued); the parser takes what arrives
    kClosing,     // result delivered or client gone; the socket is closing
  };

  Exchange(HttpClient& client, Request request)
      : client_(&client),
        request_(std::move(request)),
        socket_(*this, buffers_, writes_),
        parser_(request_.until, request_.limits) {}

  // Makes the socket: "" or why not (then no close callback will come; the caller frees it).
  std::string Init(uv_loop_t* loop) {
    // The timer first: if the socket then fails, the timer's UvHandle closes it alone.
    if (int rc = timer_.Init(loop, uv_timer_init, this); rc != 0) {
      return "cannot arm the deadline (" + std::string(uv_strerror(rc)) + ")";
    }
    if (int rc = socket_.Init(loop, request_.address.kind); rc != 0) {
      return "cannot connect (" + std::string(uv_strerror(rc)) + ")";
    }
    return "";
  }

  // Adopts itself (only OnSocketClosed frees it from here on) and connects. May finish, and
  // call back, before it returns.
  void Run(std::unique_ptr<Exchange> self) {
    self_ = std::move(self);
    uv_timer_start(
        timer_.get(),
        [](uv_timer_t* timer) {
          if (auto* self = static_cast<Exchange*>(timer->data)) self->OnDeadline();
        },
        static_cast<uint64_t>(request_.deadline.count()), 0);
    if (int rc = socket_.Connect(request_.address); rc != 0) {
      Finish(Failed(HttpError::kConnect, "cannot connect (" + std::string(uv_strerror(rc)) + ")"));
    }
  }

  // The client cancelled or went away: close without a word.
  void Abandon() {
    client_ = nullptr;
    Close();
  }

  static HttpResult Failed(HttpError error, std::string message) {
    HttpResult result;
    result.error = error;
    result.message = std::move(message);
    return result;
  }

 private:
  void OnSocketConnected(int status) override {
    if (state_ != State::kConnecting) return;  // cancelled (UV_ECANCELED) or already done
    if (status != 0) {
      Finish(
          Failed(HttpError::kConnect, "cannot connect (" + std::string(uv_strerror(status)) + ")"));
      return;
    }
    if (request_.bytes.empty()) {
      Finish(HttpResult{});
      return;
    }
    state_ = State::kAwaiting;
    socket_.StartReading();  // first: an answer (or reset) may come before the write completes
    if (int rc = socket_.Write(&request_.bytes, nullptr, 0, proxy::BlockRef()); rc != 0) {
      Finish(Failed(HttpError::kSend, "cannot send (" + std::string(uv_strerror(rc)) + ")"));
    }
  }

  // A failed write is not reported from here: the peer may have answered and closed before
  // reading all of the request, and the response still counts. A reset shows in the read; else
  // the deadline.
  void OnSocketWritten(int) override {}

  void OnSocketRead(ssize_t nread, proxy::BlockRef block) override {
    if (state_ != State::kAwaiting) return;
    ResponseParser::State parsed;
    if (nread > 0) {
      parsed = parser_.Feed(std::string_view(block.data(), static_cast<size_t>(nread)));
    } else if (nread == UV_EOF) {
      parsed = parser_.Finish();
    } else {
      std::string why = uv_strerror(static_cast<int>(nread));
      Finish(Failed(HttpError::kClosed,
                    parser_.received_bytes() == 0
                        ? "no response (" + why + ")"
                        : "connection lost in the middle of the response (" + why + ")"));
      return;
    }
    if (parsed == ResponseParser::State::kReading) return;
    if (parsed == ResponseParser::State::kFailed) {
      Finish(ParseFailure());
      return;
    }
    HttpResult result;
    result.status = parser_.status();
    result.status_line = parser_.StatusLine();
    result.head = parser_.TakeHead();
    result.body = parser_.TakeBody();
    Finish(std::move(result));
  }

  HttpResult ParseFailure() const {
    using Failure = ResponseParser::Failure;
    switch (parser_.failure()) {
      case Failure::kNothing:
        return Failed(HttpError::kClosed, "closed the connection without a response");
      case Failure::kTruncated:
        return Failed(HttpError::kClosed, "closed the connection in the middle of the response");
      case Failure::kHeadTooLarge:
        return Failed(HttpError::kMalformed, "answered with a head over " +
                                                 std::to_string(request_.limits.max_head_bytes) +
                                                 " bytes");
      case Failure::kBodyTooLarge:
        return Failed(HttpError::kMalformed, "answered with a body over " +
                                                 std::to_string(request_.limits.max_body_bytes) +
                                                 " bytes");
      case Failure::kMalformed:
      case Failure::kNone:
        break;
    }
    return Failed(HttpError::kMalformed,
                  "answered with something that is not HTTP/1.x (" + parser_.detail() + ")");
  }

  void OnDeadline() {
    uint64_t ms = static_cast<uint64_t>(request_.deadline.count());
    Finish(state_ == State::kConnecting
               ? Failed(HttpError::kTimeout, "cannot connect within " + std::to_string(ms) + " ms")
               : Failed(HttpError::kTimeout, "no response within " + std::to_string(ms) + " ms"));
  }

  void OnSocketClosed() override {
    std::unique_ptr<Exchange> self = std::move(self_);  // frees this: nothing may follow
  }

  void Close() {
    if (state_ == State::kClosing) return;
    state_ = State::kClosing;
    timer_.Close();
    socket_.Close();
  }

  // Delivers the result once. Runs the callback last: it may destroy the client.
  void Finish(HttpResult result) {
    if (state_ == State::kClosing) return;
    HttpClient* client = client_;
    client_ = nullptr;
    Close();
    if (client == nullptr) return;
    client->exchange_ = nullptr;
    Callback done = std::move(client->done_);
    client->done_ = nullptr;
    if (done) done(std::move(result));
  }

  HttpClient* client_;  // null once the result went out or the client let go
  Request request_;
  proxy::BufferPool buffers_{1};
  proxy::WriteReqPool writes_;
  proxy::Socket socket_;
  proxy::UvHandle<uv_timer_t> timer_;
  ResponseParser parser_;
  State state_ = State::kConnecting;
  std::unique_ptr<Exchange> self_;
};

void HttpClient::Start(Request request, Callback done) {
  Cancel();
  auto exchange = std::make_unique<Exchange>(*this, std::move(request));
  if (std::string error = exchange->Init(loop_); !error.empty()) {
    exchange.reset();  // its socket never opened (a timer that did is closed by its UvHandle)
    done(Exchange::Failed(HttpError::kConnect, std::move(error)));
    return;
  }
  done_ = std::move(done);
  exchange_ = exchange.get();
  exchange_->Run(std::move(exchange));  // may call back and destroy this: nothing may follow
}

void HttpClient::Cancel() {
  if (exchange_ == nullptr) return;
  Exchange* exchange = exchange_;
  exchange_ = nullptr;
  done_ = nullptr;
  exchange->Abandon();
}

}  // namespace lameduck::coordinator
