// `lameduck install`: one file copy.
#include "coordinator/cli/install.h"

#include <fcntl.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "coordinator/cli/fd.h"
#include "proxy/result.h"

namespace lameduck::coordinator {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr size_t kCopyChunkBytes = 64 * 1024;

void Say(std::ostream& err, std::string_view line) {
  err << "lameduck install: " << line << '\n' << std::flush;
}

Result<void> CopyFile(const std::string& source_path, const std::string& dest_path) {
  auto failed = [](const std::string& what) { return Error{what + ": " + std::strerror(errno)}; };
  Fd source(open(source_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (source.get() < 0) return failed("cannot read " + source_path);
  Fd dest(open(dest_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755));
  if (dest.get() < 0) return failed("cannot create " + dest_path);
  std::vector<char> buffer(kCopyChunkBytes);
  while (true) {
    ssize_t got = read(source.get(), buffer.data(), buffer.size());
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return failed("cannot read " + source_path);
    if (got == 0) break;
    for (ssize_t done = 0; done < got;) {
      ssize_t put = write(dest.get(), buffer.data() + done, static_cast<size_t>(got - done));
      if (put < 0 && errno == EINTR) continue;
      if (put < 0) return failed("cannot write " + dest_path);
      done += put;
    }
  }
  // The umask may have taken bits from open()'s mode; the app's user must be able to run it.
  if (fchmod(dest.get(), 0755) != 0) return failed("cannot chmod " + dest_path);
  if (dest.Close() != 0) return failed("cannot write " + dest_path);
  return {};
}

}  // namespace

int RunInstall(const std::vector<std::string>& args, std::ostream& err) {
  if (args.size() != 1 || args[0].empty() || args[0].starts_with("-")) {
    Say(err, "usage: lameduck install PATH (copies this binary to PATH)");
    return kExitUsage;
  }
  const std::string& path = args[0];
  std::string temporary = path + ".tmp";
  // /proc/self/exe is the running binary even if its path changed; without /proc (an empty
  // root, a chroot), the path the kernel executed (AT_EXECFN) is the next best.
  const char* self = "/proc/self/exe";
  if (access(self, R_OK) != 0) {
    if (auto execfn = reinterpret_cast<const char*>(getauxval(AT_EXECFN))) self = execfn;
  }
  auto copied = CopyFile(self, temporary);
  if (copied && rename(temporary.c_str(), path.c_str()) != 0) {
    copied = Error{"cannot rename " + temporary + " to " + path + ": " + std::strerror(errno)};
  }
  if (!copied) {
    unlink(temporary.c_str());
    Say(err, copied.error());
    return kExitFailed;
  }
  err << std::flush;
  return kExitOk;
}

}  // namespace lameduck::coordinator
