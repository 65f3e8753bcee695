// AppSupervisor: starts the APP in launch mode and reaps it (and any orphan reparented to
// lameduck), and, once the drain is over, tells the app to exit the configured way (DESIGN.md
// "The drain", step 7): a signal to the launched APP's process group, to --app-pid, to the pid in
// --app-pidfile or to every --app-process match, or an HTTP POST to --app-exit-url. It then waits
// for the exit where lameduck can see it, bounded by --app-exit-timeout.
//
// Everything runs on one libuv loop and nothing blocks it: exits are seen through SIGCHLD
// (launched children) or by polling every 50 ms (processes that are not our children).
// It does not decide lameduck's own exit status; its owner does, from AppExit and Outcome.
//
// Owns the loop's SIGCHLD handling: it reaps every child with waitpid(-1), so nothing else on
// the same loop may use uv_spawn (whose exit callbacks would then never run).
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/config/config.h"
#include "coordinator/control/event_log.h"
#include "proxy/result.h"
#include "proxy/uv_handle.h"

namespace lameduck::coordinator {

struct AppExit {
  int pid;
  int status;  // the exit code, or 128 + the signal number (shell convention)
};

class AppSupervisor {
 public:
  struct Outcome {
    bool told = false;          // a signal was delivered, or the exit URL answered 2xx
    bool exited_seen = false;   // every process told has gone (launch and signal modes)
    std::optional<int> status;  // the launched APP's status, as in AppExit
    bool killed = false;        // the launched APP's group got SIGKILL at app_exit_timeout
    std::string error;          // what went wrong, for a person; empty when nothing did
  };

  AppSupervisor(uv_loop_t* loop, const Config& config, EventLog& log);
  ~AppSupervisor();  // closes its handles; a pending TellAppToExit never completes
  AppSupervisor(const AppSupervisor&) = delete;
  AppSupervisor& operator=(const AppSupervisor&) = delete;

  // Launch mode (config.app_command): starts the APP in its own process group, with default
  // signal dispositions and an empty signal mask, inheriting stdin, stdout and stderr. Returns
  // its pid, or "cannot start APP: ...".
  Result<int> Launch();
  // Runs when the launched APP exits, whether on its own or after being told.
  void set_on_app_exit(std::function<void(const AppExit&)> callback) {
    on_app_exit_ = std::move(callback);
  }
  // Tells the app to exit and calls done exactly once with what happened: when the launched APP
  // has been reaped, when every signalled process is gone or app_exit_timeout passed, when the
  // exit URL answered or failed, or at once when there is nothing to tell (done may then run
  // before this returns). A call while another is in progress joins it. Callbacks may destroy
  // the supervisor.
  void TellAppToExit(std::function<void(const Outcome&)> done);

  std::optional<int> app_pid() const { return app_pid_; }
  bool app_running() const { return app_running_; }

 private:
  struct ExitRequest;  // the --app-exit-url exchange in flight

  static void OnSigchld(uv_signal_t* handle, int signum);
  static void OnKillDeadline(uv_timer_t* timer);
  static void OnPoll(uv_timer_t* timer);

  void ReapChildren();
  void TellLaunchedApp();
  // The signal modes: resolve the pids, signal them, then poll until they are gone.
  void TellProcesses();
  void SignalAndWait(std::string_view mode, const std::string& label, const std::vector<int>& pids);
  void CheckProcessesGone();
  void PostExitUrl();
  void FinishExitUrl(Result<void> answer, int status_code);  // ok on 2xx; code 0: none
  void Finish(Outcome outcome);

  uv_loop_t* loop_;
  const Config config_;  // a copy: tests and main need not keep theirs alive
  EventLog& log_;
  std::optional<int> app_pid_;  // the launched APP, which leads its own process group
  bool app_running_ = false;
  std::optional<int> app_status_;  // once it has exited
  std::function<void(const AppExit&)> on_app_exit_;

  // The TellAppToExit in progress (done_ not empty).
  std::vector<std::function<void(const Outcome&)>> done_;
  Outcome outcome_;
  uint64_t told_at_ms_ = 0;
  std::string wait_label_;         // signal modes: "--app-process web", for messages
  std::vector<int> told_pids_;     // signal modes: every pid signalled
  std::vector<int> waiting_pids_;  // signal modes: signalled, not yet seen gone
  std::unique_ptr<ExitRequest> exit_request_;

  proxy::UvHandle<uv_signal_t> sigchld_;
  proxy::UvHandle<uv_timer_t> timer_;  // the SIGKILL deadline or the 50 ms poll
  // Expires with the supervisor, so callbacks can tell whether it survived the one before.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace lameduck::coordinator
