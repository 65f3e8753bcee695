// ChildProcess: a real lameduck (or any program) started by a test, with its stdout captured
// line by line, signalled and waited for with deadlines. The destructor SIGKILLs and reaps what
// is still running, so a failing test leaves no process behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lameduck::testing {

class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // argv[0] is the program path. stdout is captured; stderr too, when capture_stderr.
  bool Start(const std::vector<std::string>& argv, bool capture_stderr = false);
  // The next line of output (without '\n'), or nullopt at EOF or the deadline.
  std::optional<std::string> ReadLine(std::chrono::milliseconds timeout);
  // Lines until one contains `needle`; that line, or nullopt. Every line read is kept in output().
  std::optional<std::string> WaitForLine(const std::string& needle,
                                         std::chrono::milliseconds timeout);
  bool Signal(int signal);
  // The exit status (or 128 + signal), or nullopt if still running at the deadline.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  pid_t pid() const { return pid_; }
  const std::vector<std::string>& output() const { return lines_; }
  // Peak resident memory (VmHWM) in KiB, from /proc; -1 if unreadable.
  long PeakRssKib() const;

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string buffer_;
  std::vector<std::string> lines_;
  std::optional<int> status_;
};

// A program run to its end: `input` on its stdin, then EOF; its stdout and stderr kept apart.
struct CompletedProcess {
  std::optional<int> status;  // the exit status (or 128 + signal); nullopt if it was too slow
  std::string out;
  std::string err;
};
// argv[0] is the program path. Past `timeout` the program is killed and status is nullopt.
CompletedProcess RunToCompletion(const std::vector<std::string>& argv, std::string_view input,
                                 std::chrono::milliseconds timeout);

// Paths of the binaries under test (set by CMake).
std::string LameduckBinary();
std::string SampleAppBinary();
// A TCP port on 127.0.0.1 that was free a moment ago.
int FreePort();

}  // namespace lameduck::testing
