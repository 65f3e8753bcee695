#include "proxy/worker_group.h"

#include <condition_variable>
#include <functional>
#include <future>
#include <thread>
#include <utility>

namespace lameduck::proxy {

// One worker beyond the first: a thread, its loop, its Proxy. Tasks from the main loop arrive
// over async_ and run on the worker's loop; Run() waits for the answer.
class WorkerGroup::Worker final : public ProxyEvents {
 public:
  Worker(WorkerGroup& group, size_t index, ProxyOptions options)
      : group_(group), index_(index), options_(std::move(options)) {}
  ~Worker() override { Stop(); }

  Result<void> Start() {
    std::promise<Result<void>> started;
    std::future<Result<void>> result = started.get_future();
    thread_ = std::thread([this, &started] { Main(started); });
    Result<void> bound = result.get();
    if (!bound.ok()) thread_.join();  // it ended after saying so
    return bound;
  }

  // fn(Proxy&) on the worker's loop; returns what fn returns, once it has run.
  template <typename Fn>
  auto Run(Fn fn) -> decltype(fn(std::declval<Proxy&>())) {
    using R = decltype(fn(std::declval<Proxy&>()));
    std::packaged_task<R()> task([this, &fn] { return fn(*proxy_); });
    std::future<R> done = task.get_future();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      tasks_.emplace_back([&task] { task(); });
    }
    uv_async_send(&async_);
    return done.get();
  }

  // The worker closes everything it holds and its thread ends; joined here.
  void Stop() {
    if (!thread_.joinable()) return;
    Run([this](Proxy& proxy) {
      proxy.StopAccepting();
      proxy.ForceCloseAll();
      stopping_ = true;
      return 0;
    });
    thread_.join();
  }

  // ProxyEvents: on the worker's thread, passed to the main loop with the counts after them.
  void OnConnectionOpened() override { Post(Event::Kind::kOpened); }
  void OnConnectionClosed() override { Post(Event::Kind::kClosed); }
  void OnConnectionFinished() override { Post(Event::Kind::kFinished); }
  void OnResponseComplete(int status, Protocol protocol) override {
    Post(Event::Kind::kResponse, protocol, status);
  }
  void OnProxyError(ProxyError error) override {
    Post(Event::Kind::kError, Protocol::kHttp1, 0, error);
  }
  void OnLongLivedEnded(LongLivedKind kind, LongLivedEnd how) override {
    Event event = MakeEvent(Event::Kind::kLongLived);
    event.long_lived = kind;
    event.how = how;
    Send(event);
  }

 private:
  void Post(Event::Kind kind, Protocol protocol = Protocol::kHttp1, int status = 0,
            ProxyError error = ProxyError::kNone) {
    Event event = MakeEvent(kind);
    event.protocol = protocol;
    event.status = status;
    event.error = error;
    Send(event);
  }
  Event MakeEvent(Event::Kind kind) {
    Event event;
    event.kind = kind;
    event.worker = index_;
    event.counts = proxy_->counts();
    return event;
  }
  void Send(const Event& event) {
    posted_ = event.counts;
    group_.Post(event);
  }

  // The end of each loop turn: counts that changed without an event (a request begun, a
  // connection gone idle) go to the main loop too.
  static void OnTurnEnd(uv_check_t* check) {
    auto* self = static_cast<Worker*>(check->data);
    if (self->proxy_ != nullptr && self->proxy_->counts() != self->posted_) {
      self->Post(Event::Kind::kCounts);
    }
  }

  void Main(std::promise<Result<void>>& started) {
    uv_loop_init(&loop_);
    uv_async_init(&loop_, &async_, &Worker::OnAsync);
    async_.data = this;
    uv_check_init(&loop_, &turn_end_);
    turn_end_.data = this;
    uv_check_start(&turn_end_, &Worker::OnTurnEnd);
    proxy_ = std::make_unique<Proxy>(&loop_, options_, *this);
    Result<void> bound = proxy_->Start();
    bool ok = bound.ok();
    started.set_value(std::move(bound));  // `started` is gone after this
    if (!ok) stopping_ = true;            // ends at once: nothing is open
    while (true) {
      if (stopping_ && proxy_ != nullptr && proxy_->empty()) {
        proxy_.reset();  // its own handles close in the next turns
        uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
        uv_close(reinterpret_cast<uv_handle_t*>(&turn_end_), nullptr);
      }
      if (proxy_ == nullptr && uv_loop_alive(&loop_) == 0) break;
      uv_run(&loop_, UV_RUN_ONCE);
      RunTasks();
    }
    uv_loop_close(&loop_);
  }

  static void OnAsync(uv_async_t* async) { static_cast<Worker*>(async->data)->RunTasks(); }

  void RunTasks() {
    std::vector<std::function<void()>> tasks;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      tasks.swap(tasks_);
    }
    for (auto& task : tasks) task();
  }

  WorkerGroup& group_;
  size_t index_;
  ProxyOptions options_;
  std::thread thread_;
  uv_loop_t loop_;
  uv_async_t async_;
  uv_check_t turn_end_;
  std::unique_ptr<Proxy> proxy_;
  ProxyCounts posted_;     // the counts the main loop was last sent
  bool stopping_ = false;  // the worker's thread only
  std::mutex mutex_;
  std::vector<std::function<void()>> tasks_;  // under mutex_
};

namespace {

ProxyOptions ForWorkers(ProxyOptions options, int workers) {
  if (workers > 1) {
    options.reuse_port = true;
    // --max-connections is the process's: each worker takes its share.
    options.max_connections = (options.max_connections + workers - 1) / workers;
  }
  return options;
}

}  // namespace

WorkerGroup::WorkerGroup(uv_loop_t* loop, ProxyOptions options, ProxyEvents& events, int workers)
    : loop_(loop),
      options_(ForWorkers(std::move(options), workers)),
      events_(events),
      worker_count_(workers),
      main_(loop, options_, events) {}

WorkerGroup::~WorkerGroup() { Shutdown(); }

Result<void> WorkerGroup::Start() {
  if (Result<void> bound = main_.Start(); !bound.ok()) return bound;
  if (worker_count_ <= 1) return {};
  if (int rc = events_async_.Init(
          loop_,
          [](uv_loop_t* loop, uv_async_t* async) {
            return uv_async_init(loop, async, &WorkerGroup::OnEvents);
          },
          this);
      rc != 0) {
    main_.StopAccepting();
    return Error{std::string("cannot start the workers: ") + uv_strerror(rc)};
  }
  // The others bind the ports worker 0 got (port 0 resolved); unix sockets stay with worker 0.
  ProxyOptions options = options_;
  options.listen.clear();
  std::vector<int> ports = main_.listening_ports();
  for (size_t i = 0; i < options_.listen.size(); ++i) {
    if (options_.listen[i].kind == Address::Kind::kUnix) continue;
    Address address = options_.listen[i];
    address.set_port(ports[i]);
    options.listen.push_back(address);
  }
  if (options.listen.empty()) return {};  // only unix sockets: one worker serves them
  seen_.assign(static_cast<size_t>(worker_count_) - 1, ProxyCounts{});
  for (int i = 1; i < worker_count_; ++i) {
    auto worker = std::make_unique<Worker>(*this, static_cast<size_t>(i), options);
    if (Result<void> bound = worker->Start(); !bound.ok()) {
      Shutdown();
      main_.StopAccepting();
      return bound;
    }
    others_.push_back(std::move(worker));
  }
  return {};
}

template <typename Fn>
auto WorkerGroup::OnEveryWorker(Fn fn) -> decltype(fn(std::declval<Proxy&>())) {
  auto sum = fn(main_);
  for (auto& worker : others_) sum += worker->Run(fn);
  return sum;
}

void WorkerGroup::StopAccepting() {
  OnEveryWorker([](Proxy& proxy) {
    proxy.StopAccepting();
    return size_t{0};
  });
}

void WorkerGroup::CloseAfterCurrentResponse() {
  OnEveryWorker([](Proxy& proxy) {
    proxy.CloseAfterCurrentResponse();
    return size_t{0};
  });
}

void WorkerGroup::ResumeKeepAlive() {
  OnEveryWorker([](Proxy& proxy) {
    proxy.ResumeKeepAlive();
    return size_t{0};
  });
}

SpreadStep WorkerGroup::CloseSpread(size_t step, size_t steps) {
  // Each worker spreads its own: together, the same fraction of all of them by each step.
  return OnEveryWorker([=](Proxy& proxy) { return proxy.CloseSpread(step, steps); });
}

size_t WorkerGroup::ForceCloseAll() {
  return OnEveryWorker([](Proxy& proxy) { return proxy.ForceCloseAll(); });
}

ProxyCounts WorkerGroup::worker_counts(int worker) const {
  if (worker == 0) return main_.counts();
  return seen_.at(static_cast<size_t>(worker) - 1);
}

ProxyCounts WorkerGroup::counts_now() {
  return OnEveryWorker([](Proxy& proxy) { return proxy.counts(); });
}

ProxyCounts WorkerGroup::counts() const {
  ProxyCounts sum = main_.counts();
  for (const ProxyCounts& c : seen_) sum += c;
  return sum;
}

void WorkerGroup::Shutdown() {
  others_.clear();  // each stops and joins
  Deliver();        // what they said last
  events_async_.Close();
}

void WorkerGroup::Post(const Event& event) {
  {
    std::lock_guard<std::mutex> lock(events_mutex_);
    queued_.push_back(event);
  }
  uv_async_send(events_async_.get());
}

void WorkerGroup::OnEvents(uv_async_t* async) {
  if (auto* self = static_cast<WorkerGroup*>(async->data)) self->Deliver();
}

void WorkerGroup::Deliver() {
  while (true) {
    std::vector<Event> events;
    {
      std::lock_guard<std::mutex> lock(events_mutex_);
      events.swap(queued_);
    }
    if (events.empty()) break;
    for (const Event& event : events) {
      seen_.at(event.worker - 1) = event.counts;  // first: the handler sees counts after it
      switch (event.kind) {
        case Event::Kind::kCounts:
          break;
        case Event::Kind::kOpened:
          events_.OnConnectionOpened();
          break;
        case Event::Kind::kClosed:
          events_.OnConnectionClosed();
          break;
        case Event::Kind::kFinished:
          events_.OnConnectionFinished();
          break;
        case Event::Kind::kResponse:
          events_.OnResponseComplete(event.status, event.protocol);
          break;
        case Event::Kind::kError:
          events_.OnProxyError(event.error);
          break;
        case Event::Kind::kLongLived:
          events_.OnLongLivedEnded(event.long_lived, event.how);
          break;
      }
    }
  }
}

}  // namespace lameduck::proxy
