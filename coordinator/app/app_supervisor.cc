#include "coordinator/app/app_supervisor.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <string_view>
#include <system_error>

#include "coordinator/config/text.h"
#include "coordinator/control/http_client.h"
#include "proxy/address.h"

extern char** environ;

namespace lameduck::coordinator {
namespace {

using nlohmann::json;

constexpr uint64_t kPollIntervalMs = 50;
// A response head bigger than this is not an answer to a quit request.
constexpr size_t kMaxResponseHeadBytes = 8192;

std::string ErrnoText(int error) { return std::generic_category().message(error); }

// The shell's convention, which is also what lameduck exits with in launch mode.
int StatusOf(int wait_status) {
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return WEXITSTATUS(wait_status);
}

json ExitFields(const AppExit& app_exit, int wait_status) {
  json fields = {{"pid", app_exit.pid}, {"status", app_exit.status}};
  if (WIFSIGNALED(wait_status)) {
    fields["signal"] = SignalName(WTERMSIG(wait_status));
  } else {
    fields["exit_code"] = WEXITSTATUS(wait_status);
  }
  return fields;
}

// A pidfile or a /proc entry; /proc/PID/cmdline is bounded by the kernel's argument limit.
constexpr size_t kMaxProcFileBytes = 4 * 1024 * 1024;

std::optional<int> ParsePid(std::string_view text) {
  std::optional<int> pid = ParseDigits<int>(text);
  if (pid && *pid <= 0) return std::nullopt;
  return pid;
}

// What /proc/PID/stat says of a process: its state letter ('R', 'S', 'Z', ...) and flags.
struct ProcStat {
  char state = 0;  // 0 when unreadable: gone, or hidden (hidepid)
  unsigned long flags = 0;
};

ProcStat ReadProcStat(int pid) {
  ProcStat stat;
  auto text = ReadFile("/proc/" + std::to_string(pid) + "/stat", kMaxProcFileBytes);
  // The command name before the state is in parentheses and may itself hold them (proc(5)).
  size_t close = text ? text->rfind(')') : std::string::npos;
  if (close == std::string::npos) return stat;
  // state ppid pgrp session tty_nr tpgid flags
  if (std::sscanf(text->c_str() + close + 1, " %c %*d %*d %*d %*d %*d %lu", &stat.state,
                  &stat.flags) < 1) {
    stat.state = 0;
  }
  return stat;
}

constexpr unsigned long kKernelThreadFlag = 0x00200000;  // PF_KTHREAD, include/linux/sched.h

// Gone, or a zombie: a process that is not our child stays a zombie until its parent reaps it.
bool IsGone(int pid) {
  if (kill(pid, 0) != 0 && errno == ESRCH) return true;
  return ReadProcStat(pid).state == 'Z';
}

// Processes whose comm or argv[0] basename is `name`, as `pgrep -x` and `pidof` match. Never
// lameduck itself, never PID 1 (the pause container when the PID namespace is shared), never a
// zombie (it has exited already) nor a kernel thread.
std::vector<int> FindProcesses(const std::string& name) {
  std::vector<int> pids;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return pids;
  const int self = getpid();
  while (dirent* entry = readdir(proc)) {
    std::optional<int> pid = ParsePid(entry->d_name);
    if (!pid || *pid == self || *pid == 1) continue;
    std::string dir = "/proc/" + std::to_string(*pid);
    bool matches = false;
    if (auto comm = ReadFile(dir + "/comm", kMaxProcFileBytes)) {
      std::string_view text(*comm);
      if (text.ends_with('\n')) text.remove_suffix(1);
      matches = text == name;  // the kernel truncates comm to 15 bytes: argv[0] catches longer
    }
    if (auto cmdline = ReadFile(dir + "/cmdline", kMaxProcFileBytes); !matches && cmdline) {
      std::string_view argv0(cmdline->c_str());                    // up to the first NUL
      std::string_view base = argv0.substr(argv0.rfind('/') + 1);  // npos + 1 == 0
      matches = !base.empty() && base == name;
    }
    if (!matches) continue;
    ProcStat stat = ReadProcStat(*pid);
    if (stat.state != 'Z' && (stat.flags & kKernelThreadFlag) == 0) pids.push_back(*pid);
  }
  closedir(proc);
  std::sort(pids.begin(), pids.end());
  return pids;
}

// kill(-pgid): the APP leads its own group, so a shell wrapper's children get the signal too.
// Falls back to the pid alone if the APP left its group (setsid).
Result<void> SignalGroup(int pid, int signal) {
  if (kill(-pid, signal) == 0) return {};
  if (errno == ESRCH && kill(pid, signal) == 0) return {};
  return Error{ErrnoText(errno)};
}

std::string JoinPids(const std::vector<int>& pids) {
  std::string text;
  for (int pid : pids) text += (text.empty() ? "" : ", ") + std::to_string(pid);
  return text;
}

std::string Base64(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t n = static_cast<uint8_t>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) n |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    if (i + 2 < bytes.size()) n |= static_cast<uint8_t>(bytes[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? kAlphabet[n & 63] : '=';
  }
  return out;
}

struct ExitUrl {
  proxy::Address address;
  std::string host;  // the Host field: the authority as written, without user info
  std::string target;
  std::string user_info;  // user:password, sent as Basic credentials (RFC 7617)
};

// http://[USER:PASSWORD@]HOST[:PORT][/PATH][?QUERY]; config.cc has already checked the scheme.
Result<ExitUrl> ParseExitUrl(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.size() < kScheme.size()) return Error{"not an http:// URL"};
  std::string_view rest = url.substr(kScheme.size());
  rest = rest.substr(0, rest.find('#'));  // a fragment never goes on the wire
  size_t authority_end = std::min(rest.find('/'), rest.find('?'));
  std::string_view authority = rest.substr(0, authority_end);
  ExitUrl exit_url;
  if (authority_end != std::string_view::npos) exit_url.target = rest.substr(authority_end);
  if (!exit_url.target.starts_with('/')) exit_url.target.insert(0, "/");
  if (size_t at = authority.rfind('@'); at != std::string_view::npos) {
    exit_url.user_info = authority.substr(0, at);
    authority = authority.substr(at + 1);
  }
  exit_url.host = authority;
  std::string host_port(authority);
  bool has_port = !authority.ends_with(']') && authority.find(':') != std::string_view::npos;
  if (!has_port) host_port += ":80";
  auto address = proxy::ParseAddress(host_port);
  if (!address) return Error{address.error()};
  if (address->kind != proxy::Address::Kind::kTcp) return Error{"not an http:// URL"};
  exit_url.address = *address;
  return exit_url;
}

}  // namespace

struct AppSupervisor::ExitRequest {
  explicit ExitRequest(uv_loop_t* loop) : client(loop) {}
  std::string url;  // shown form, for logs and errors
  HttpClient client;
};

AppSupervisor::AppSupervisor(uv_loop_t* loop, const Config& config, EventLog& log)
    : loop_(loop), config_(config), log_(log) {}

AppSupervisor::~AppSupervisor() { *alive_ = false; }

Result<int> AppSupervisor::Launch() {
  const std::vector<std::string>& command = config_.app_command;
  if (command.empty()) return Error{"cannot start APP: no command given"};
  if (app_pid_) return Error{"cannot start APP: already started"};
  // Orphans of the APP (a wrapper script's background jobs) are then reparented to lameduck,
  // which reaps them, instead of to PID 1, which may not (or may be us anyway).
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    log_.Warn("app.start", {{"warning", "cannot become a child subreaper (" + ErrnoText(errno) +
                                            "); the APP's orphans go to PID 1"}});
  }
  // Before the spawn, so that no exit can come before the handler.
  if (!sigchld_) {
    int rc = sigchld_.Init(loop_, uv_signal_init, this);
    if (rc == 0) rc = uv_signal_start(sigchld_.get(), &AppSupervisor::OnSigchld, SIGCHLD);
    if (rc != 0) {
      std::string error =
          "cannot start APP: cannot handle SIGCHLD (" + std::string(uv_strerror(rc)) + ")";
      log_.Error("app.start", {{"error", error}});
      return Error{error};
    }
  }

  // Its own process group, so that signals reach a shell wrapper's children as well; default
  // dispositions and an empty mask, since lameduck ignores SIGPIPE and libuv blocks signals.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t all;
  sigfillset(&all);
  posix_spawnattr_setsigdefault(&attr, &all);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  std::vector<char*> argv;
  for (const std::string& arg : command) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, argv[0], nullptr, &attr, argv.data(), environ);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    std::string error = "cannot start APP: " + command[0] + ": " + ErrnoText(rc);
    log_.Error("app.start", {{"command", command[0]}, {"error", error}});
    return Error{error};
  }
  app_pid_ = pid;
  app_running_ = true;
  log_.Info("app.start", {{"pid", pid}, {"command", command[0]}});
  return pid;
}

void AppSupervisor::OnSigchld(uv_signal_t* handle, int /*signum*/) {
  if (auto* self = static_cast<AppSupervisor*>(handle->data)) self->ReapChildren();
}

// Every child, not only the APP: signals coalesce, and as a subreaper (or PID 1) lameduck
// inherits orphans that nobody else will reap.
void AppSupervisor::ReapChildren() {
  std::optional<AppExit> app_exit;
  int app_wait_status = 0;
  for (;;) {
    int wait_status = 0;
    pid_t pid = waitpid(-1, &wait_status, WNOHANG);
    if (pid < 0 && errno == EINTR) continue;
    if (pid <= 0) break;  // 0: none exited; ECHILD: no children left
    if (app_pid_ && pid == *app_pid_) {
      app_exit = AppExit{pid, StatusOf(wait_status)};
      app_wait_status = wait_status;
    }
  }
  if (!app_exit) return;

  app_running_ = false;
  app_status_ = app_exit->status;
  log_.Info("app.exit", ExitFields(*app_exit, app_wait_status));
  std::shared_ptr<bool> alive = alive_;
  if (on_app_exit_) {
    auto callback = on_app_exit_;  // it may replace itself
    callback(*app_exit);
    if (!*alive) return;
  }
  if (!done_.empty() && !config_.app_command.empty()) {
    outcome_.exited_seen = true;
    outcome_.status = app_exit->status;
    Finish(outcome_);
  }
}

void AppSupervisor::TellAppToExit(std::function<void(const Outcome&)> done) {
  done_.push_back(std::move(done));
  if (done_.size() > 1) return;  // joins the one in progress
  outcome_ = {};
  uv_update_time(loop_);
  told_at_ms_ = uv_now(loop_);
  if (!timer_) timer_.Init(loop_, uv_timer_init, this);
  if (!config_.app_command.empty()) {
    TellLaunchedApp();
  } else if (config_.app_pid || config_.app_pidfile || config_.app_process) {
    TellProcesses();
  } else if (config_.app_exit_url) {
    PostExitUrl();
  } else {
    Finish(outcome_);  // nothing configured: the app exits on its own (kubelet's SIGTERM)
  }
}

void AppSupervisor::TellLaunchedApp() {
  if (!app_running_) {  // it exited already, or never started
    outcome_.exited_seen = app_status_.has_value();
    outcome_.status = app_status_;
    Finish(outcome_);
    return;
  }
  int pid = *app_pid_;
  if (auto sent = SignalGroup(pid, config_.app_signal); !sent) {
    outcome_.error = "APP pid " + std::to_string(pid) + ": cannot send " +
                     SignalName(config_.app_signal) + " (" + sent.error() + ")";
    log_.Error("app.signal", {{"mode", "launch"}, {"pid", pid}, {"error", outcome_.error}});
  } else {
    outcome_.told = true;
    log_.Info("app.signal",
              {{"mode", "launch"}, {"pids", {pid}}, {"signal", SignalName(config_.app_signal)}});
  }
  // Whether or not the signal went out, the APP must be gone before lameduck exits.
  uv_timer_start(timer_.get(), &AppSupervisor::OnKillDeadline,
                 static_cast<uint64_t>(config_.app_exit_timeout.count()), 0);
}

void AppSupervisor::OnKillDeadline(uv_timer_t* timer) {
  auto* self = static_cast<AppSupervisor*>(timer->data);
  if (self == nullptr || !self->app_running_) return;
  int pid = *self->app_pid_;
  // Unanswered on purpose: our own child cannot refuse it, and one that exited meanwhile is
  // reaped by ReapChildren either way.
  (void)SignalGroup(pid, SIGKILL);
  self->outcome_.killed = true;
  self->log_.Warn("app.kill",
                  {{"pid", pid}, {"after_ms", uv_now(self->loop_) - self->told_at_ms_}});
  // Done when ReapChildren sees it go: SIGKILL cannot be caught.
}

void AppSupervisor::TellProcesses() {
  if (config_.app_pid) {
    SignalAndWait("pid", "--app-pid " + std::to_string(*config_.app_pid), {*config_.app_pid});
    return;
  }
  if (config_.app_pidfile) {
    std::string label = "--app-pidfile " + *config_.app_pidfile;
    auto text = ReadFile(*config_.app_pidfile, kMaxProcFileBytes);
    std::optional<int> pid;
    if (!text) {
      outcome_.error = label + ": cannot read (" + text.error() + ")";
    } else if (pid = ParsePid(Trim(*text)); !pid) {
      outcome_.error = label + ": holds \"" + std::string(Trim(*text).substr(0, 40)) +
                       "\", not a positive integer pid";
    }
    if (!pid) {
      log_.Error("app.signal", {{"mode", "pidfile"}, {"error", outcome_.error}});
      Finish(outcome_);
      return;
    }
    SignalAndWait("pidfile", label, {*pid});
    return;
  }
  std::string label = "--app-process " + *config_.app_process;
  std::vector<int> pids = FindProcesses(*config_.app_process);
  if (pids.empty()) {
    outcome_.error = label + ": no process matched";
    log_.Error("app.signal", {{"mode", "process"}, {"error", outcome_.error}});
    Finish(outcome_);
    return;
  }
  SignalAndWait("process", label, pids);
}

void AppSupervisor::SignalAndWait(std::string_view mode, const std::string& label,
                                  const std::vector<int>& pids) {
  const bool matched_by_name = mode == "process";
  std::vector<int> signalled;
  std::vector<std::string> errors;
  for (int pid : pids) {
    if (pid == getpid()) {
      errors.push_back(label + ": pid " + std::to_string(pid) + " is lameduck itself");
    } else if (kill(pid, config_.app_signal) == 0) {
      signalled.push_back(pid);
    } else if (!(matched_by_name && errno == ESRCH)) {  // a match may exit before its signal
      errors.push_back(label + ": cannot signal pid " + std::to_string(pid) + " (" +
                       ErrnoText(errno) + ")");
    }
  }
  for (const std::string& error : errors) {
    log_.Error("app.signal", {{"mode", mode}, {"error", error}});
  }
  if (!errors.empty()) outcome_.error = errors.front();
  if (signalled.empty()) {
    if (errors.empty()) outcome_.error = label + ": no process matched";
    Finish(outcome_);
    return;
  }
  outcome_.told = true;
  log_.Info("app.signal",
            {{"mode", mode}, {"pids", signalled}, {"signal", SignalName(config_.app_signal)}});
  // Not our children: no SIGCHLD and no waitpid, so poll until they are gone.
  wait_label_ = label;
  told_pids_ = signalled;
  waiting_pids_ = std::move(signalled);
  uv_timer_start(timer_.get(), &AppSupervisor::OnPoll, kPollIntervalMs, kPollIntervalMs);
}

void AppSupervisor::OnPoll(uv_timer_t* timer) {
  if (auto* self = static_cast<AppSupervisor*>(timer->data)) self->CheckProcessesGone();
}

void AppSupervisor::CheckProcessesGone() {
  std::erase_if(waiting_pids_, IsGone);
  uint64_t waited_ms = uv_now(loop_) - told_at_ms_;
  if (waiting_pids_.empty()) {
    outcome_.exited_seen = true;
    log_.Info("app.exit", {{"pids", told_pids_}, {"after_ms", waited_ms}});
    Finish(outcome_);
  } else if (waited_ms >= static_cast<uint64_t>(config_.app_exit_timeout.count())) {
    // No SIGKILL: these processes are not ours, and their own container's stop will end them.
    std::string error = wait_label_ + ": still running after " + std::to_string(waited_ms) +
                        " ms (pid " + JoinPids(waiting_pids_) + "); check its handling of " +
                        SignalName(config_.app_signal) + " or raise --app-exit-timeout";
    log_.Error("app.exit", {{"pids", waiting_pids_}, {"error", error}});
    if (outcome_.error.empty()) outcome_.error = error;
    Finish(outcome_);
  }
}

void AppSupervisor::PostExitUrl() {
  exit_request_ = std::make_unique<ExitRequest>(loop_);
  exit_request_->url = HideUrlCredentials(*config_.app_exit_url);
  auto url = ParseExitUrl(*config_.app_exit_url);
  if (!url) {
    FinishExitUrl(Error{"invalid URL (" + url.error() + ")"}, 0);
    return;
  }
  HttpClient::Request request;
  request.address = url->address;
  request.bytes = "POST " + url->target + " HTTP/1.1\r\nHost: " + url->host +
                  "\r\nContent-Length: 0\r\nConnection: close\r\nUser-Agent: "
                  "lameduck/" LAMEDUCK_VERSION "\r\n";
  if (!url->user_info.empty()) {
    request.bytes += "Authorization: Basic " + Base64(url->user_info) + "\r\n";
  }
  request.bytes += "\r\n";
  request.deadline = config_.app_exit_timeout;
  request.until = ResponseParser::Until::kHead;  // the status is the answer; the body is not read
  request.limits.max_head_bytes = kMaxResponseHeadBytes;
  // The callback may run before Start returns; FinishExitUrl then destroys the client.
  exit_request_->client.Start(std::move(request), [this](HttpResult result) {
    if (!result.ok()) {
      FinishExitUrl(Error{result.message}, 0);
    } else if (result.status < 200 || result.status > 299) {
      FinishExitUrl(Error{"answered \"" + result.status_line.substr(0, 80) + "\""}, result.status);
    } else {
      FinishExitUrl({}, result.status);
    }
  });
}

// answer: ok on a 2xx. status_code: the answer's, 0 when there was none.
void AppSupervisor::FinishExitUrl(Result<void> answer, int status_code) {
  std::string url = exit_request_->url;
  exit_request_.reset();  // closes the socket; pending callbacks then find no owner
  json fields = {{"mode", "url"}, {"url", url}};
  if (status_code != 0) fields["status_code"] = status_code;
  fields["duration_ms"] = uv_now(loop_) - told_at_ms_;
  if (answer.ok()) {
    outcome_.told = true;
    log_.Info("app.signal", fields);
  } else {
    outcome_.error = "--app-exit-url " + url + ": " + answer.error();
    fields["error"] = outcome_.error;
    log_.Error("app.signal", fields);
  }
  Finish(outcome_);
}

void AppSupervisor::Finish(Outcome outcome) {
  if (timer_) uv_timer_stop(timer_.get());
  exit_request_.reset();
  waiting_pids_.clear();
  outcome_ = {};
  auto callbacks = std::move(done_);
  done_.clear();
  // Nothing of `this` is used from here on: a callback may destroy the supervisor.
  for (auto& callback : callbacks) callback(outcome);
}

}  // namespace lameduck::coordinator
