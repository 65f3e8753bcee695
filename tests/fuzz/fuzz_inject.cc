// fuzz_inject: coordinator::RunInject with the input as its standard input (manifests as JSON
// or YAML: workloads, Services, Lists, anything). Byte 0 picks one of a few argument lists, the
// rest is stdin. Any return (0, 1 or 2) is fine; a crash, a hang or UB is a bug. When it returns
// 0, its output must itself be accepted, unchanged, by a second inject (idempotence), and
// uninject must take it (RunUninject on what inject wrote).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "coordinator/cli/inject.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using lameduck::coordinator::RunInject;
  using lameduck::coordinator::RunUninject;
  static const std::vector<std::vector<std::string>> kArgs = {
      {},
      {"--mode", "classic"},
      {"--port", "9000", "--app-port", "80"},
      {"--admin-port", "9100", "--app-port", "8080", "--container", "app"},
      {"--container", "web", "--drain-delay", "3s", "--drain-timeout", "20s"},
      {"--image", "example.com/lameduck:1", "--mode", "native", "--app-exit-timeout", "5s"},
  };
  if (size == 0) return 0;
  const std::vector<std::string>& args = kArgs[data[0] % kArgs.size()];
  std::istringstream in(std::string(reinterpret_cast<const char*>(data) + 1, size - 1));
  std::ostringstream out;
  std::ostringstream err;
  int status = RunInject(args, in, out, err);
  if (status == 0) {
    std::string first = out.str();
    std::istringstream again(first);
    std::ostringstream second;
    std::ostringstream second_err;
    if (RunInject(args, again, second, second_err) != 0 || second.str() != first) {
      std::fprintf(stderr, "fuzz_inject: not idempotent: %s\n", second_err.str().c_str());
      std::abort();
    }
    std::istringstream wired(first);
    std::ostringstream restored;
    std::ostringstream restored_err;
    if (RunUninject({}, wired, restored, restored_err) != 0) {
      std::fprintf(stderr, "fuzz_inject: uninject refused inject's output: %s\n",
                   restored_err.str().c_str());
      std::abort();
    }
  }
  return 0;
}
