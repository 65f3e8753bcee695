// `lameduck inject` and `lameduck install`: wiring lameduck into a workload's pod spec, and the
// init container's copy of the binary into the pod's shared volume.
//
// inject is a filter, `kubectl get deploy web -o json | lameduck inject | kubectl apply -f -`:
// it reads one Deployment, StatefulSet, DaemonSet or Pod (or a List of them) as JSON, edits the
// parsed tree in place, so every field it does not know about survives in its original order,
// and writes the result as JSON. It talks to no cluster, reads no YAML and never half-wires: an
// object it cannot wire safely is refused, with one line saying what to do, and nothing is
// written. Injecting twice gives the same bytes: an object that already has a container named
// "lameduck" is passed through as it is.
#pragma once

#include <istream>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace lameduck::coordinator {

// `lameduck inject [--port N] [--app-port N] [--image IMAGE] [--drain-delay DUR]
// [--drain-timeout DUR] [--app-exit-timeout DUR] [--mode native|classic] [--container NAME]`.
// args: what follows "inject". Reads the object from `in`, writes it wired (JSON, 4-space
// indent, as kubectl prints it) to `out`. Returns 0 when written; 1 when it refuses the input
// (one line on `err`, nothing on `out`); 2 for bad usage (one line naming the option). `--help`
// prints InjectUsageText() to `out` and returns 0.
int RunInject(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
              std::ostream& err);

// `lameduck install PATH`: copies the running binary (/proc/self/exe) to PATH, mode 0755, through
// PATH.tmp and a rename, so a reader never sees half a binary and a binary that is running can
// be replaced. For the init container: distroless images have no cp. Prints nothing on success;
// returns 0, 1 with one line on `err` when the copy failed, 2 for bad usage.
int RunInstall(const std::vector<std::string>& args, std::ostream& err);

// `lameduck inject --help`.
std::string_view InjectUsageText();

}  // namespace lameduck::coordinator
