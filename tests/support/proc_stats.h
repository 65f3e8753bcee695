// What a test can see of another process through /proc: resident memory and open file
// descriptors. For bounds on a real lameduck (ChildProcess::pid()) while a test stresses it.
#pragma once

#include <dirent.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <fstream>
#include <string>

namespace lameduck::testing {

// A "Vm...:  N kB" field of /proc/PID/status (VmRSS, VmHWM) in KiB; -1 if unreadable.
inline long ProcStatusKib(pid_t pid, const std::string& field) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with(field + ":")) return std::stol(line.substr(field.size() + 1));
  }
  return -1;
}

inline long RssKib(pid_t pid) { return ProcStatusKib(pid, "VmRSS"); }

// Entries in /proc/PID/fd; -1 if unreadable.
inline int OpenFdCount(pid_t pid) {
  DIR* dir = opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (dir == nullptr) return -1;
  int count = 0;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count;
}

// The soft RLIMIT_NOFILE of a running process (from /proc/PID/limits); -1 if unreadable.
inline long OpenFileLimit(pid_t pid) {
  std::ifstream limits("/proc/" + std::to_string(pid) + "/limits");
  std::string line;
  while (std::getline(limits, line)) {
    if (line.starts_with("Max open files")) {
      return std::stol(line.substr(sizeof("Max open files") - 1));
    }
  }
  return -1;
}

// Raises this process's soft RLIMIT_NOFILE to at least `needed` if the hard limit allows
// (children started afterwards inherit it); true if the soft limit is now >= needed.
inline bool RaiseOpenFileLimit(rlim_t needed) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return false;
  if (limit.rlim_cur >= needed) return true;
  if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < needed) return false;
  limit.rlim_cur = needed;
  return setrlimit(RLIMIT_NOFILE, &limit) == 0;
}

}  // namespace lameduck::testing
