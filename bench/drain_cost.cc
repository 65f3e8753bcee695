// drain_cost: what a drain costs lameduck itself, beyond the accept grace. Starts sample_app
// and lameduck (--drain-delay 0 --drain-spread 0), opens N keep-alive connections, sends one
// request on each and reads its response, so that all N sit idle; then sends SIGTERM and times the
// exit. The clients behave like well-mannered keep-alive clients: each closes its socket as soon as
// it reads the proxy's FIN. Reported: SIGTERM to exit, and drain.complete's own duration_ms.
//
//   drain_cost --lameduck PATH --sample-app PATH [--connections N[,N...]] [--runs R]
//
// Prints one line per connection count (the median of R runs) and, with --json, a JSON array.
// Not a test: timings go here, not into assertions. Raises RLIMIT_NOFILE as far as it may.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

std::vector<pid_t> g_children;  // killed on the way out, so a failed run leaves nothing behind

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "drain_cost: %s\n", message.c_str());
  for (pid_t pid : g_children) kill(pid, SIGKILL);
  std::exit(1);
}

int PickPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) Die("bind");
  socklen_t length = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length);
  close(fd);
  return ntohs(addr.sin_port);
}

int ConnectTo(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) Die(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

bool WaitForPort(int port, std::chrono::seconds limit) {
  auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    int fd = ConnectTo(port);
    if (fd >= 0) {
      close(fd);
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

pid_t Spawn(const std::vector<std::string>& args, int stdout_fd) {
  pid_t pid = fork();
  if (pid < 0) Die("fork");
  if (pid == 0) {
    if (stdout_fd >= 0) dup2(stdout_fd, STDOUT_FILENO);
    std::vector<char*> argv;
    for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  g_children.push_back(pid);
  return pid;
}

// One request on each connection, pipelined across connections: all sent, then all read.
void WarmUpBatch(const std::vector<int>& fds) {
  static const char kRequest[] = "GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
  for (int fd : fds) {
    if (send(fd, kRequest, sizeof(kRequest) - 1, MSG_NOSIGNAL) < 0) Die("send");
  }
  char buf[4096];
  for (int fd : fds) {
    // sample_app's answer to GET / is small: one read holds it whole.
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0 || std::strncmp(buf, "HTTP/1.1 200", 12) != 0) {
      Die("no 200 during warm-up: " + (n <= 0 ? std::string(n == 0 ? "EOF" : std::strerror(errno))
                                              : std::string(buf, std::min<size_t>(n, 40))));
    }
  }
}

// A batch of connections at a time, so that lameduck's pool holds a batch's worth of app
// connections rather than one per client (sample_app's backlog would overflow).
void WarmUp(const std::vector<int>& fds) {
  constexpr size_t kBatch = 128;
  for (size_t begin = 0; begin < fds.size(); begin += kBatch) {
    size_t end = std::min(fds.size(), begin + kBatch);
    WarmUpBatch({fds.begin() + begin, fds.begin() + end});
  }
}

struct Run {
  double exit_ms = 0;      // SIGTERM to the process's exit, as waitpid sees it
  double complete_ms = 0;  // drain.complete's duration_ms, as lameduck reports it
  long idle_closed = -1;   // drain.complete's idle_closed
};

long JsonNumber(const std::string& line, const std::string& key) {
  auto at = line.find("\"" + key + "\":");
  if (at == std::string::npos) return -1;
  return std::strtol(line.c_str() + at + key.size() + 3, nullptr, 10);
}

Run Measure(const std::string& lameduck, int app_port, int connections) {
  int port = PickPort();
  int admin_port = PickPort();
  char log_path[] = "/tmp/drain_cost.XXXXXX";
  int log_fd = mkstemp(log_path);
  if (log_fd < 0) Die("mkstemp");
  pid_t pid = Spawn(
      {lameduck, "--listen=127.0.0.1:" + std::to_string(port),
       "--admin=127.0.0.1:" + std::to_string(admin_port),
       "--upstream=127.0.0.1:" + std::to_string(app_port), "--drain-delay=0s", "--drain-spread=0s",
       "--drain-timeout=60s", "--max-connections=100000", "--log-format=json"},
      log_fd);
  if (!WaitForPort(port, std::chrono::seconds(10))) Die("lameduck did not listen");
  std::vector<int> fds;
  fds.reserve(connections);
  for (int i = 0; i < connections; ++i) {
    int fd = ConnectTo(port);
    if (fd < 0) Die("connect to lameduck: " + std::string(std::strerror(errno)));
    fds.push_back(fd);
  }
  WarmUp(fds);

  // The clients: close on the proxy's FIN (or anything else it does).
  int epoll = epoll_create1(0);
  for (int fd : fds) {
    epoll_event event{};
    event.events = EPOLLIN | EPOLLRDHUP;
    event.data.fd = fd;
    epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event);
  }
  std::thread clients([&] {
    int open = connections;
    std::vector<epoll_event> events(1024);
    char buf[4096];
    while (open > 0) {
      int n = epoll_wait(epoll, events.data(), static_cast<int>(events.size()), 20000);
      if (n <= 0) break;
      for (int i = 0; i < n; ++i) {
        int fd = events[i].data.fd;
        ssize_t got = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (got > 0) continue;
        epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nullptr);
        close(fd);
        --open;
      }
    }
  });

  auto start = Clock::now();
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  Run run;
  run.exit_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  clients.join();
  close(epoll);

  std::string log;
  char buf[65536];
  lseek(log_fd, 0, SEEK_SET);
  for (ssize_t n; (n = read(log_fd, buf, sizeof(buf))) > 0;) log.append(buf, n);
  close(log_fd);
  unlink(log_path);
  auto at = log.find("\"event\":\"drain.complete\"");
  if (at != std::string::npos) {
    auto begin = log.rfind('\n', at);
    std::string line = log.substr(begin == std::string::npos ? 0 : begin + 1,
                                  log.find('\n', at) - (begin == std::string::npos ? 0 : begin));
    run.complete_ms = static_cast<double>(JsonNumber(line, "duration_ms"));
    run.idle_closed = JsonNumber(line, "idle_closed");
  }
  if (!WIFEXITED(status)) Die("lameduck did not exit normally");
  return run;
}

}  // namespace

int main(int argc, char** argv) {
  std::string lameduck;
  std::string sample_app;
  std::vector<int> counts = {1000, 10000};
  int runs = 3;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Die(arg + ": needs a value");
      return argv[++i];
    };
    if (arg == "--lameduck") {
      lameduck = value();
    } else if (arg == "--sample-app") {
      sample_app = value();
    } else if (arg == "--connections") {
      counts.clear();
      std::string list = value();
      for (size_t at = 0; at < list.size();) {
        size_t comma = list.find(',', at);
        if (comma == std::string::npos) comma = list.size();
        counts.push_back(std::atoi(list.substr(at, comma - at).c_str()));
        at = comma + 1;
      }
    } else if (arg == "--runs") {
      runs = std::max(1, std::atoi(value().c_str()));
    } else if (arg == "--json") {
      json = true;
    } else {
      Die("usage: drain_cost --lameduck PATH --sample-app PATH [--connections N,N] [--runs R] "
          "[--json]");
    }
  }
  if (lameduck.empty() || sample_app.empty()) Die("--lameduck and --sample-app are required");
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
  signal(SIGPIPE, SIG_IGN);

  int app_port = PickPort();
  pid_t app = Spawn({sample_app, "--listen", "127.0.0.1:" + std::to_string(app_port)}, -1);
  if (!WaitForPort(app_port, std::chrono::seconds(10))) Die("sample_app did not listen");

  if (json) std::printf("[");
  for (size_t c = 0; c < counts.size(); ++c) {
    std::vector<Run> results;
    for (int r = 0; r < runs; ++r) results.push_back(Measure(lameduck, app_port, counts[c]));
    std::sort(results.begin(), results.end(),
              [](const Run& a, const Run& b) { return a.exit_ms < b.exit_ms; });
    const Run& median = results[results.size() / 2];
    if (json) {
      std::printf(
          "%s{\"connections\":%d,\"sigterm_to_exit_ms\":%.1f,\"drain_complete_ms\":%.0f,"
          "\"idle_closed\":%ld}",
          c == 0 ? "" : ",", counts[c], median.exit_ms, median.complete_ms, median.idle_closed);
    } else {
      std::printf(
          "%6d idle connections: SIGTERM to exit %8.1f ms (median of %d), "
          "drain.complete duration_ms %6.0f, idle_closed %ld\n",
          counts[c], median.exit_ms, runs, median.complete_ms, median.idle_closed);
    }
    std::fflush(stdout);
  }
  if (json) std::printf("]\n");
  kill(app, SIGKILL);
  waitpid(app, nullptr, 0);
  return 0;
}
