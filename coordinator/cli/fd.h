// Fd: owns a file descriptor and closes it when it goes; for the blocking command-line tools
// (lameduck drain's socket, install's copy). Not for the loop: libuv handles own their own.
#pragma once

#include <unistd.h>

namespace lameduck::coordinator {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }
  // close() reports write-back errors some file systems only find then.
  int Close() {
    int rc = close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

}  // namespace lameduck::coordinator
