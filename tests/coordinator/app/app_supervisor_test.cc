// AppSupervisor over real processes and real signals: the launched APP's exit status, SIGTERM
// then SIGKILL to its group, reaping orphans, the three signal modes (and whom they must not
// signal), and the exit URL against a small blocking HTTP server.
#include "coordinator/app/app_supervisor.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace lameduck::coordinator {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using std::chrono::steady_clock;
using Outcome = AppSupervisor::Outcome;

::testing::AssertionResult Contains(std::string_view text, std::string_view part) {
  if (text.find(part) != std::string_view::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Every child of this process, running or zombie: pid -> state letter, from /proc/*/stat.
std::map<int, char> Children() {
  std::map<int, char> children;
  DIR* proc = opendir("/proc");
  while (dirent* entry = readdir(proc)) {
    int pid = atoi(entry->d_name);
    if (pid <= 0) continue;
    std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
    size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    int ppid = 0;
    if (sscanf(stat.c_str() + close + 1, " %c %d", &state, &ppid) == 2 && ppid == getpid()) {
      children[pid] = state;
    }
  }
  closedir(proc);
  return children;
}

// Whether `pid` ignores `signal`, from the SigIgn mask of /proc/PID/status: a shell's `trap ''`
// has run once this holds.
bool Ignores(int pid, int signal) {
  std::string status = ReadFile("/proc/" + std::to_string(pid) + "/status");
  size_t at = status.find("SigIgn:\t");
  if (at == std::string::npos) return false;
  unsigned long long mask = std::stoull(status.substr(at + 8, 16), nullptr, 16);
  return (mask >> (signal - 1)) & 1;
}

// A TCP listener on 127.0.0.1, port 0. Never accepting it is already a silent server: the kernel
// completes the handshake and buffers the request.
struct Listener {
  Listener() {
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    bind(fd, reinterpret_cast<sockaddr*>(&address), length);
    listen(fd, 8);
    getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    port = ntohs(address.sin_port);
  }
  ~Listener() { close(fd); }
  std::string Url(std::string_view path) const {
    return "http://127.0.0.1:" + std::to_string(port) + std::string(path);
  }
  int fd = -1;
  int port = 0;
};

// Answers one request with `response` on its own thread, and records the request head.
class QuitServer {
 public:
  explicit QuitServer(std::string response)
      : response_(std::move(response)), thread_([this] { Serve(); }) {}
  ~QuitServer() { thread_.join(); }
  std::string Url(std::string_view path) const { return listener_.Url(path); }
  std::string head() const {
    std::lock_guard lock(mutex_);
    return head_;
  }

 private:
  void Serve() {
    pollfd ready{listener_.fd, POLLIN, 0};
    if (poll(&ready, 1, 5000) != 1) return;  // bounded, so a failed test still ends
    int fd = accept4(listener_.fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    std::string head;
    char chunk[1024];
    pollfd readable{fd, POLLIN, 0};
    while (head.find("\r\n\r\n") == std::string::npos && poll(&readable, 1, 5000) == 1) {
      ssize_t n = read(fd, chunk, sizeof(chunk));
      if (n <= 0) break;
      head.append(chunk, static_cast<size_t>(n));
    }
    {
      std::lock_guard lock(mutex_);
      head_ = head;
    }
    (void)!write(fd, response_.data(), response_.size());
    close(fd);
  }

  Listener listener_;  // before thread_: the thread uses it
  std::string response_;
  mutable std::mutex mutex_;
  std::string head_;
  std::thread thread_;
};

// A copy of /bin/sleep under `name`, so that --app-process can tell it from every other sleep.
class RenamedSleep {
 public:
  explicit RenamedSleep(const std::string& name) {
    char dir[] = "/tmp/app_supervisor_test.XXXXXX";
    dir_ = mkdtemp(dir);
    path_ = dir_ + "/" + name;
    std::filesystem::copy_file("/bin/sleep", path_);
  }
  ~RenamedSleep() { std::filesystem::remove_all(dir_); }
  const std::string& path() const { return path_; }

 private:
  std::string dir_;
  std::string path_;
};

class AppSupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    log_file_ = open_memstream(&log_text_, &log_size_);
    log_ = std::make_unique<EventLog>(log_file_, LogFormat::kJson, LogLevel::kDebug);
    config_.app_exit_timeout = 500ms;
  }

  void TearDown() override {
    std::optional<int> app;
    if (supervisor_ && supervisor_->app_running()) app = supervisor_->app_pid();
    supervisor_.reset();
    // What a failing test left behind; the supervisor's SIGCHLD handler is gone, so reap here.
    if (app) kill(-*app, SIGKILL);
    if (app) waitpid(*app, nullptr, 0);
    for (int pid : spawned_) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    auto deadline = steady_clock::now() + 2s;
    while (uv_loop_alive(&loop_) && steady_clock::now() < deadline) uv_run(&loop_, UV_RUN_NOWAIT);
    EXPECT_EQ(uv_loop_close(&loop_), 0) << "a handle was left open";
    if (HasFailure()) std::cerr << "event log:\n" << log() << "\n";
    log_.reset();
    fclose(log_file_);
    free(log_text_);
  }

  AppSupervisor& supervisor() {
    if (!supervisor_) supervisor_ = std::make_unique<AppSupervisor>(&loop_, config_, *log_);
    return *supervisor_;
  }

  // Runs the loop until done() holds; gives up at the deadline with a failure naming `what`.
  bool RunUntil(const std::function<bool()>& done, milliseconds timeout, std::string_view what) {
    uv_timer_t tick;  // wakes the loop, so that done() is checked while nothing else happens
    uv_timer_init(&loop_, &tick);
    uv_timer_start(
        &tick, [](uv_timer_t*) {}, 5, 5);
    auto deadline = steady_clock::now() + timeout;
    bool held = false;
    while (!(held = done()) && steady_clock::now() < deadline) uv_run(&loop_, UV_RUN_ONCE);
    uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
    uv_run(&loop_, UV_RUN_NOWAIT);  // finishes the close before `tick` goes out of scope
    if (!held) ADD_FAILURE() << "gave up after " << timeout.count() << " ms waiting for " << what;
    return held;
  }

  // TellAppToExit, then the loop until done runs.
  std::optional<Outcome> TellAndWait(milliseconds timeout = 3s) {
    std::optional<Outcome> outcome;
    supervisor().TellAppToExit([&](const Outcome& result) { outcome = result; });
    RunUntil([&] { return outcome.has_value(); }, timeout, "TellAppToExit to finish");
    return outcome;
  }

  // A process the test owns (not launched by the supervisor); killed and reaped in TearDown.
  int Spawn(const std::vector<std::string>& args) {
    std::vector<char*> argv;
    for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    pid_t pid = -1;
    EXPECT_EQ(posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ), 0);
    spawned_.push_back(pid);
    return pid;
  }

  // Until `pid` runs `path`: posix_spawn may return while the kernel is still inside the exec,
  // when /proc shows the parent's comm and an empty command line.
  bool WaitForExec(int pid, const std::string& path) {
    return RunUntil(
        [&] { return ReadFile("/proc/" + std::to_string(pid) + "/cmdline").starts_with(path); }, 3s,
        "the exec of " + path);
  }

  // The exit status of a process the test spawned that should be gone (a zombie) by now.
  int ReapSpawned(int pid) {
    int status = 0;
    EXPECT_EQ(waitpid(pid, &status, 0), pid);
    std::erase(spawned_, pid);
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
  }

  bool Running(int pid) { return waitpid(pid, nullptr, WNOHANG) == 0; }

  std::string log() {
    fflush(log_file_);
    return std::string(log_text_, log_size_);
  }
  // The logged events named `name`, in order.
  std::vector<nlohmann::json> Events(std::string_view name) {
    std::vector<nlohmann::json> events;
    std::istringstream lines(log());
    for (std::string line; std::getline(lines, line);) {
      auto event = nlohmann::json::parse(line);
      if (event["event"] == name) events.push_back(event);
    }
    return events;
  }

  uv_loop_t loop_;
  Config config_;
  char* log_text_ = nullptr;
  size_t log_size_ = 0;
  FILE* log_file_ = nullptr;
  std::unique_ptr<EventLog> log_;
  std::unique_ptr<AppSupervisor> supervisor_;
  std::vector<int> spawned_;
};

TEST_F(AppSupervisorTest, ReportsTheExitCodeOfAnAppThatExitsOnItsOwn) {
  config_.app_command = {"/bin/sh", "-c", "exit 7"};
  std::optional<AppExit> exit;
  supervisor().set_on_app_exit([&](const AppExit& app_exit) { exit = app_exit; });
  auto pid = supervisor().Launch();
  ASSERT_TRUE(pid.ok()) << pid.error();
  EXPECT_TRUE(supervisor().app_running());

  ASSERT_TRUE(RunUntil([&] { return exit.has_value(); }, 3s, "the app to exit"));
  EXPECT_EQ(exit->pid, *pid);
  EXPECT_EQ(exit->status, 7);
  EXPECT_FALSE(supervisor().app_running());
  auto events = Events("app.exit");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["exit_code"], 7);
  EXPECT_EQ(Events("app.start").at(0)["command"], "/bin/sh");
}

TEST_F(AppSupervisorTest, FailsToLaunchAMissingProgramWithAMessage) {
  config_.app_command = {"/nonexistent/app", "--flag"};
  auto pid = supervisor().Launch();
  ASSERT_FALSE(pid.ok());
  EXPECT_TRUE(Contains(pid.error(), "cannot start APP: /nonexistent/app: No such file"));
  EXPECT_FALSE(supervisor().app_running());
}

TEST_F(AppSupervisorTest, SigtermEndsTheLaunchedAppAndTheOutcomeHasItsStatus) {
  config_.app_command = {"sleep", "30"};
  std::optional<AppExit> exit;
  supervisor().set_on_app_exit([&](const AppExit& app_exit) { exit = app_exit; });
  ASSERT_TRUE(supervisor().Launch().ok());

  auto outcome = TellAndWait();
  ASSERT_TRUE(outcome);
  EXPECT_TRUE(outcome->told);
  EXPECT_TRUE(outcome->exited_seen);
  EXPECT_EQ(outcome->status, 128 + SIGTERM);
  EXPECT_FALSE(outcome->killed);
  EXPECT_EQ(outcome->error, "");
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->status, 128 + SIGTERM);
  auto signal = Events("app.signal").at(0);
  EXPECT_EQ(signal["mode"], "launch");
  EXPECT_EQ(signal["signal"], "SIGTERM");
  EXPECT_EQ(Events("app.exit").at(0)["signal"], "SIGTERM");
}

TEST_F(AppSupervisorTest, AppThatIgnoresTheSignalGetsSigkillAtTheExitTimeout) {
  config_.app_command = {"/bin/sh", "-c", "trap '' TERM; sleep 30"};
  auto pid = supervisor().Launch();
  ASSERT_TRUE(pid.ok());
  ASSERT_TRUE(RunUntil([&] { return Ignores(*pid, SIGTERM); }, 3s, "the shell's trap"));

  auto told_at = steady_clock::now();
  auto outcome = TellAndWait();
  ASSERT_TRUE(outcome);
  // libuv's clock counts whole milliseconds, so its 500 ms can be a fraction of one short.
  EXPECT_GE(steady_clock::now() - told_at, config_.app_exit_timeout - 2ms);
  EXPECT_TRUE(outcome->told);
  EXPECT_TRUE(outcome->killed);
  EXPECT_TRUE(outcome->exited_seen);
  EXPECT_EQ(outcome->status, 128 + SIGKILL);
  auto kill_event = Events("app.kill").at(0);
  EXPECT_EQ(kill_event["pid"], *pid);
  EXPECT_GE(kill_event["after_ms"].get<int>(), 500);
}

TEST_F(AppSupervisorTest, ReapsTheOrphansOfTheApp) {
  // The shell exits at once; its background sleep is reparented to us (child subreaper). The
  // sleep outlives the shell by a wide margin, so that a loaded machine cannot reap both first.
  config_.app_command = {"/bin/sh", "-c", "sleep 2 & exit 0"};
  std::optional<AppExit> exit;
  supervisor().set_on_app_exit([&](const AppExit& app_exit) { exit = app_exit; });
  ASSERT_TRUE(supervisor().Launch().ok());
  ASSERT_TRUE(RunUntil([&] { return exit.has_value(); }, 3s, "the shell to exit"));
  EXPECT_EQ(exit->status, 0);
  EXPECT_EQ(Children().size(), 1u) << "the orphaned sleep should now be our child";

  EXPECT_TRUE(RunUntil([&] { return Children().empty(); }, 5s, "no child left, zombie or not"));
}

TEST_F(AppSupervisorTest, PidfileModeSignalsOnlyThePidInTheFile) {
  int target = Spawn({"sleep", "30"});
  int sibling = Spawn({"sleep", "30"});
  std::string pidfile = ::testing::TempDir() + "app_supervisor_test_" + std::to_string(getpid());
  std::ofstream(pidfile) << "  " << target << "\n";
  config_.app_pidfile = pidfile;

  auto outcome = TellAndWait();
  std::filesystem::remove(pidfile);
  ASSERT_TRUE(outcome);
  EXPECT_TRUE(outcome->told);
  EXPECT_TRUE(outcome->exited_seen);
  EXPECT_EQ(outcome->error, "");
  EXPECT_EQ(ReapSpawned(target), 128 + SIGTERM);
  EXPECT_TRUE(Running(sibling));
  auto signal = Events("app.signal").at(0);
  EXPECT_EQ(signal["mode"], "pidfile");
  EXPECT_EQ(signal["pids"], nlohmann::json::array({target}));
}

TEST_F(AppSupervisorTest, UnreadablePidfileIsAnErrorThatNamesTheFile) {
  config_.app_pidfile = "/nonexistent/app.pid";
  auto outcome = TellAndWait();
  ASSERT_TRUE(outcome);
  EXPECT_FALSE(outcome->told);
  EXPECT_EQ(outcome->error,
            "--app-pidfile /nonexistent/app.pid: cannot read (No such file or directory)");
  auto error = Events("app.signal").at(0);
  EXPECT_EQ(error["level"], "error");
  EXPECT_EQ(error["error"], outcome->error);
}

TEST_F(AppSupervisorTest, ProcessModeSignalsEveryProcessWithTheNameAndNoOther) {
  RenamedSleep sleep("ldtestsleep" + std::to_string(getpid()));
  int first = Spawn({sleep.path(), "30"});
  int second = Spawn({sleep.path(), "30"});
  int other = Spawn({"sleep", "30"});
  ASSERT_TRUE(WaitForExec(first, sleep.path()) && WaitForExec(second, sleep.path()));
  config_.app_process = "ldtestsleep" + std::to_string(getpid());

  auto outcome = TellAndWait();
  ASSERT_TRUE(outcome);
  EXPECT_TRUE(outcome->told);
  EXPECT_TRUE(outcome->exited_seen);
  EXPECT_EQ(ReapSpawned(first), 128 + SIGTERM);
  EXPECT_EQ(ReapSpawned(second), 128 + SIGTERM);
  EXPECT_TRUE(Running(other));
  EXPECT_EQ(Events("app.signal").at(0)["pids"], nlohmann::json::array({first, second}));
}

volatile sig_atomic_t usr2_received = 0;

TEST_F(AppSupervisorTest, ProcessModeNeverSignalsLameduckItself) {
  std::string name = "ldt" + std::to_string(getpid());  // short enough to be a whole comm
  RenamedSleep sleep(name);
  int target = Spawn({sleep.path(), "30"});
  ASSERT_TRUE(WaitForExec(target, sleep.path()));
  // This process takes the same name (comm) as the target, and catches the signal to notice.
  char old_name[16] = {};
  prctl(PR_GET_NAME, old_name);
  prctl(PR_SET_NAME, name.c_str());
  struct sigaction catcher {};
  catcher.sa_handler = [](int) { usr2_received = 1; };
  struct sigaction old_action {};
  sigaction(SIGUSR2, &catcher, &old_action);
  usr2_received = 0;
  config_.app_process = name;
  config_.app_signal = SIGUSR2;

  auto outcome = TellAndWait();
  prctl(PR_SET_NAME, old_name);
  sigaction(SIGUSR2, &old_action, nullptr);
  ASSERT_TRUE(outcome);
  EXPECT_TRUE(outcome->exited_seen);
  EXPECT_EQ(ReapSpawned(target), 128 + SIGUSR2);
  EXPECT_EQ(usr2_received, 0);
  EXPECT_EQ(Events("app.signal").at(0)["signal"], "SIGUSR2");
}

TEST_F(AppSupervisorTest, ProcessModeWithNoMatchIsAnError) {
  config_.app_process = "no-such-process-" + std::to_string(getpid());
  auto outcome = TellAndWait();
  ASSERT_TRUE(outcome);
  EXPECT_FALSE(outcome->told);
  EXPECT_EQ(outcome->error, "--app-process " + *config_.app_process + ": no process matched");
}

TEST_F(AppSupervisorTest, ProcessThatOutlivesTheTimeoutIsReportedAndNotKilled) {
  int target = Spawn({"/bin/sh", "-c", "trap '' TERM; exec sleep 30"});  // one process to kill
  ASSERT_TRUE(RunUntil([&] { return Ignores(target, SIGTERM); }, 3s, "the shell's trap"));
  config_.app_pid = target;

  auto outcome = TellAndWait();
  ASSERT_TRUE(outcome);
  EXPECT_TRUE(outcome->told);
  EXPECT_FALSE(outcome->exited_seen);
  EXPECT_FALSE(outcome->killed);
  EXPECT_TRUE(Contains(outcome->error, "--app-pid " + std::to_string(target) + ": still running"));
  EXPECT_TRUE(Running(target));
}

TEST_F(AppSupervisorTest, ExitUrlGetsAPostAndA2xxCountsAsTold) {
  QuitServer server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  config_.app_exit_url = server.Url("/quit?now=1");

  auto outcome = TellAndWait();
  ASSERT_TRUE(outcome);
  EXPECT_TRUE(outcome->told);
  EXPECT_FALSE(outcome->exited_seen);
  EXPECT_EQ(outcome->error, "");
  std::string head = server.head();
  EXPECT_TRUE(head.starts_with("POST /quit?now=1 HTTP/1.1\r\n")) << head;
  EXPECT_TRUE(Contains(head, "\r\nContent-Length: 0\r\n"));
  EXPECT_TRUE(Contains(head, "\r\nConnection: close\r\n"));
  EXPECT_EQ(Events("app.signal").at(0)["status_code"], 200);
}

TEST_F(AppSupervisorTest, ExitUrlUserInfoIsSentAsBasicCredentialsAndNotLogged) {
  QuitServer server("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
  std::string url = server.Url("/quit");
  config_.app_exit_url = url.insert(7, "admin:s3cret@");

  auto outcome = TellAndWait();
  ASSERT_TRUE(outcome);
  EXPECT_TRUE(outcome->told);
  EXPECT_TRUE(Contains(server.head(), "\r\nAuthorization: Basic YWRtaW46czNjcmV0\r\n"));
  EXPECT_FALSE(Contains(log(), "s3cret"));
}

TEST_F(AppSupervisorTest, ExitUrlAnsweredWithAnErrorStatusIsNotTold) {
  QuitServer server("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n");
  config_.app_exit_url = server.Url("/quit");

  auto outcome = TellAndWait();
  ASSERT_TRUE(outcome);
  EXPECT_FALSE(outcome->told);
  EXPECT_TRUE(Contains(outcome->error, "answered \"HTTP/1.1 500 Internal Server Error\""));
}

TEST_F(AppSupervisorTest, UnreachableExitUrlIsAnErrorWithinTheTimeout) {
  std::string url;
  {
    Listener closed;  // a port that refuses once this closes
    url = closed.Url("/quit");
  }
  config_.app_exit_url = url;
  auto told_at = steady_clock::now();
  auto outcome = TellAndWait();
  ASSERT_TRUE(outcome);
  EXPECT_LT(steady_clock::now() - told_at, config_.app_exit_timeout);
  EXPECT_FALSE(outcome->told);
  EXPECT_TRUE(Contains(outcome->error, "--app-exit-url " + url + ": cannot connect"));
  EXPECT_EQ(Events("app.signal").at(0)["level"], "error");
}

TEST_F(AppSupervisorTest, SilentExitUrlIsAnErrorAtTheTimeout) {
  Listener silent;  // accepts (in the kernel) and never answers
  config_.app_exit_url = silent.Url("/quit");
  auto outcome = TellAndWait();
  ASSERT_TRUE(outcome);
  EXPECT_FALSE(outcome->told);
  EXPECT_TRUE(Contains(outcome->error, "no response within 500 ms"));
}

TEST_F(AppSupervisorTest, NothingConfiguredIsDoneAtOnce) {
  auto outcome = TellAndWait();
  ASSERT_TRUE(outcome);
  EXPECT_FALSE(outcome->told);
  EXPECT_EQ(outcome->error, "");
}

}  // namespace
}  // namespace lameduck::coordinator
