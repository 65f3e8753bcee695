// `lameduck install PATH`: the init container's copy of the binary into the pod's shared volume,
// from where the app container's preStop runs `lameduck drain` (its image may have no lameduck,
// and a distroless image has no cp).
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace lameduck::coordinator {

// Copies the running binary (/proc/self/exe) to PATH, mode 0755, through PATH.tmp and a rename,
// so a reader never sees half a binary and a binary that is running can be replaced. Prints
// nothing on success; returns 0, 1 with one line on `err` when the copy failed, 2 for bad usage.
int RunInstall(const std::vector<std::string>& args, std::ostream& err);

}  // namespace lameduck::coordinator
