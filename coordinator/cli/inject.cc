// `lameduck inject`: its options, finding the pod spec in each kind, the checks that decide
// whether a pod can be wired, and the wiring itself; `lameduck install`: one file copy.
//
// The wiring, for a pod whose app container is `web` listening on PORT:
//   volumes          + lameduck (emptyDir), the shared volume that carries the binary to the app
//   initContainers   + lameduck-install: `/lameduck install /run/lameduck/lameduck`
//                    + lameduck (native mode: restartPolicy Always, a sidecar that starts first
//                      and stops last), or appended to containers (classic mode)
//   web              - the port PORT, which moves to lameduck under the same name
//                    + the volume at /lameduck; preStop `/lameduck/lameduck drain --wait`
//                    ~ its probes on PORT now go to APP_PORT, where the app must listen
//   other containers + the volume and the same preStop, unless they have a preStop already
//   the pod          terminationGracePeriodSeconds covering the whole drain; an annotation;
//                    for a PORT below 1024, the sysctl that lets a non-root process bind it
//
// Mount paths: the image's binary is /lameduck (its ENTRYPOINT), so the shared volume must not be
// mounted at /lameduck in a container running that image: it would hide (or, being a directory
// over a file, fail to mount over) the very binary the container runs. lameduck-install and
// lameduck mount it at /run/lameduck; the app, whose image has no /lameduck, at /lameduck.
//
// The edits are in place on an ordered_json tree: fields are never dropped or reordered. Mind
// that inserting a key into an ordered_json object may move its other members, so no reference
// into an object is kept across an insertion into it; Wire looks members up again instead.
#include "coordinator/cli/inject.h"

#include <fcntl.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>

#include "coordinator/cli/fd.h"
#include "coordinator/config/config.h"
#include "coordinator/config/defaults.h"
#include "coordinator/config/option_parser.h"
#include "coordinator/config/text.h"
#include "proxy/result.h"

namespace lameduck::coordinator {
namespace {

using Json = nlohmann::ordered_json;  // ordered: the output keeps the input's key order
using std::chrono::milliseconds;

constexpr int kExitOk = 0;
constexpr int kExitRefused = 1;
constexpr int kExitUsage = 2;

constexpr std::string_view kDefaultImage = "ghcr.io/lameduck/lameduck:" LAMEDUCK_VERSION;
constexpr std::string_view kInjectedAnnotation = "lameduck.dev/injected";
constexpr std::string_view kSidecarName = "lameduck";  // its presence means "already injected"
constexpr std::string_view kInstallName = "lameduck-install";
constexpr std::string_view kVolumeName = "lameduck";
constexpr std::string_view kImageBinary = "/lameduck";           // in the image: its ENTRYPOINT
constexpr std::string_view kSidecarMountPath = "/run/lameduck";  // the volume, in our containers
constexpr std::string_view kInstallTarget = "/run/lameduck/lameduck";
constexpr std::string_view kAppMountPath = "/lameduck";        // the volume, in the app
constexpr std::string_view kAppBinary = "/lameduck/lameduck";  // the copy the app can exec
constexpr std::string_view kAdminSocket = "/run/lameduck/admin.sock";
// The binary (about 2 MiB) and, while lameduck-install runs again, its temporary copy.
constexpr std::string_view kVolumeSizeLimit = "16Mi";
constexpr int kAdminPort = kDefaults.admin_port;
constexpr std::string_view kAdminPortName = "lameduck-admin";
// The app's preStop reaches the admin API over the pod's loopback, not the unix socket: the
// socket is mode 0600 and owned by lameduck's user (65532), so an app running as any other
// non-root user would get EACCES, its preStop would fail, and kubelet would send SIGTERM at
// once. Loopback needs no token (README, "Admin API").
std::string LoopbackAdmin() { return "127.0.0.1:" + std::to_string(kAdminPort); }
constexpr int kUserId = 65532;                            // distroless's "nonroot"
constexpr int kDefaultAppPort = kDefaults.upstream_port;  // the server's --upstream default
// Kubernetes kills the pod at terminationGracePeriodSeconds whatever is still running; this much
// beyond the drain's worst case leaves room for kubelet's own steps (DESIGN, "Kubernetes wiring").
constexpr int kGraceMarginSeconds = 5;
constexpr milliseconds kGraceMargin{kGraceMarginSeconds * 1000};
// Ports below this need CAP_NET_BIND_SERVICE, which lameduck (non-root, all capabilities dropped)
// does not have; the pod's network namespace can lower the limit with a safe sysctl.
constexpr int kFirstUnprivilegedPort = 1024;
constexpr std::string_view kUnprivilegedPortSysctl = "net.ipv4.ip_unprivileged_port_start";
constexpr size_t kCopyChunkBytes = 64 * 1024;

enum class SidecarMode { kNative, kClassic };

struct InjectOptions {
  std::optional<int> port;  // none: the app container's first port
  int app_port = kDefaultAppPort;
  std::string image{kDefaultImage};
  milliseconds drain_delay = kDefaults.drain_delay;
  milliseconds drain_timeout = kDefaults.drain_timeout;
  milliseconds app_exit_timeout = kDefaults.app_exit_timeout;
  SidecarMode mode = SidecarMode::kNative;
  std::optional<std::string> container;
};

std::string BuildUsage() {
  return "Usage: kubectl get deploy NAME -o json | lameduck inject [OPTIONS] | kubectl apply -f -\n"
         "\n"
         "Wires lameduck into a Deployment, StatefulSet, DaemonSet or Pod (or a List of them) read "
         "as\n"
         "JSON from stdin, and writes the result to stdout. lameduck takes over the app "
         "container's\n"
         "port (the Service keeps targeting it) and forwards to the app at 127.0.0.1:APP_PORT; "
         "the\n"
         "app's preStop drains lameduck first. An object already wired is written unchanged.\n"
         "\n"
         "  --port N              the port lameduck takes over (default: the app container's "
         "first)\n"
         "  --app-port N          where the app must listen from now on (default " +
         std::to_string(kDefaultAppPort) +
         "); its probes on\n"
         "                        the taken-over port move there, so kubelet must reach it on the "
         "pod\n"
         "                        IP, or drop them: lameduck's /ready follows the app\n"
         "  --container NAME      the app container (needed when the pod has several)\n"
         "  --image IMAGE         lameduck's image (default "
         "ghcr.io/lameduck/lameduck:" LAMEDUCK_VERSION
         ")\n"
         "  --drain-delay DUR     lameduck's accept grace (default " +
         FormatDuration(kDefaults.drain_delay) +
         ")\n"
         "  --drain-timeout DUR   lameduck's drain deadline, from the drain's start (default " +
         FormatDuration(kDefaults.drain_timeout) +
         ")\n"
         "  --app-exit-timeout DUR\n"
         "                        how long the app takes to exit on SIGTERM (default " +
         FormatDuration(kDefaults.app_exit_timeout) +
         "); with the\n"
         "                        two above it sets terminationGracePeriodSeconds\n"
         "  --mode native|classic native: lameduck is a sidecar init container (Kubernetes 1.29+,\n"
         "                        the default); classic: a second container with its own preStop\n"
         "\n"
         "Options are --name VALUE or --name=VALUE; durations 250ms, 5s, 2m.\n"
         "Make the app listen on APP_PORT before rolling this out. Before Kubernetes 1.32 a "
         "Service\n"
         "cannot find a native sidecar's port by name (kubernetes/kubernetes#127958): there, make\n"
         "its targetPort the number, or use --mode classic.\n"
         "Exit status: 0 when written, 1 when the input cannot be wired (one line on stderr "
         "saying\n"
         "why and what to do; nothing on stdout), 2 for bad usage.\n";
}

// A port-sized number in decimal digits (0 to 99999), for ports and the port sysctl's value.
std::optional<int> ParseSmallNumber(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  if (text.find_first_not_of("0123456789") != std::string_view::npos) return std::nullopt;
  return std::stoi(std::string(text));
}

Result<int> ParsePort(std::string_view text) {
  int port = ParseSmallNumber(text).value_or(0);
  if (port < 1 || port > 65535) {
    return Error{"invalid port " + Quote(text) + " (use a number from 1 to 65535)"};
  }
  return port;
}

// The command line, read: what to do, or only print --help.
struct InjectArgs {
  InjectOptions options;
  bool help = false;
};

constexpr OptionSpec kOptions[] = {
    {"port"},        {"app-port"},      {"image"},
    {"drain-delay"}, {"drain-timeout"}, {"app-exit-timeout"},
    {"mode"},        {"container"},     {"help", OptionKind::kHelp, "-h"},
};

Result<InjectArgs> ReadArgs(const std::vector<std::string>& args) {
  InjectArgs parsed;
  InjectOptions& options = parsed.options;
  bool app_port_given = false;
  auto line =
      ParseCommandLine(args, {.options = kOptions, .stray_hint = "the object comes on stdin"});
  if (!line) return Error{line.error()};
  parsed.help = line->help;
  if (parsed.help) return parsed;
  for (const ParsedOption& given : line->options) {
    std::string_view name = given.name;
    const std::string& text = given.value;
    const std::string& option = given.label;
    if (name == "port" || name == "app-port") {
      auto port = ParsePort(text);
      if (!port) return Error{option + ": " + port.error()};
      if (*port == kAdminPort) {
        return Error{option + ": " + std::to_string(kAdminPort) +
                     " is lameduck's admin port; use another"};
      }
      if (name == "port") {
        options.port = *port;
      } else {
        options.app_port = *port;
        app_port_given = true;
      }
    } else if (name == "image" || name == "container") {
      if (text.empty()) return Error{option + ": must not be empty"};
      if (name == "image") {
        options.image = text;
      } else {
        options.container = text;
      }
    } else if (name == "mode") {
      if (text != "native" && text != "classic") {
        return Error{option + ": invalid mode " + Quote(text) + " (use native or classic)"};
      }
      options.mode = text == "native" ? SidecarMode::kNative : SidecarMode::kClassic;
    } else {
      auto duration = ParseDuration(text);
      if (!duration) return Error{option + ": " + duration.error()};
      // lameduck itself refuses a zero --drain-timeout; an app may exit at once, a delay be 0.
      if (name == "drain-timeout" && duration->count() == 0) {
        return Error{option + ": must be more than 0"};
      }
      (name == "drain-delay"     ? options.drain_delay
       : name == "drain-timeout" ? options.drain_timeout
                                 : options.app_exit_timeout) = *duration;
    }
  }
  if (options.port && *options.port == options.app_port) {
    return Error{std::string(app_port_given ? "--app-port" : "--port") + ": " +
                 std::to_string(options.app_port) +
                 " is both the port lameduck takes over and the app's (--app-port defaults to " +
                 std::to_string(kDefaultAppPort) + "): give the app another"};
  }
  return parsed;
}

// ---- Reading the tree. Input is untrusted: every member used is checked for its type first.

// `parent[key]` when it is an object (nullptr when absent); `path` names it in the refusal.
Result<Json*> OptionalObject(Json& parent, std::string_view key, const std::string& path) {
  auto it = parent.find(key);
  if (it == parent.end() || it->is_null()) return static_cast<Json*>(nullptr);
  if (!it->is_object()) return Error{path + " is not an object"};
  return &*it;
}

Result<Json*> OptionalArray(Json& parent, std::string_view key, const std::string& path) {
  auto it = parent.find(key);
  if (it == parent.end() || it->is_null()) return static_cast<Json*>(nullptr);
  if (!it->is_array()) return Error{path + " is not a list"};
  return &*it;
}

// The `name` of a list entry (a container, a volume, a port); empty when it has none.
std::string NameOf(const Json& entry) {
  auto it = entry.find("name");
  return it != entry.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// `containerPort` of a port entry, when it is a number.
std::optional<int> ContainerPortOf(const Json& port) {
  auto it = port.find("containerPort");
  if (it == port.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<int>();
}

// A list of objects (containers, volumes, ports), or a refusal naming the bad entry.
Result<void> CheckEntries(const Json* list, const std::string& path) {
  if (list == nullptr) return {};
  for (size_t i = 0; i < list->size(); ++i) {
    if (!(*list)[i].is_object()) {
      return Error{path + "[" + std::to_string(i) + "] is not an object"};
    }
  }
  return {};
}

// Where a kind keeps its pod: a controller's pod template, or the Pod itself.
struct PodLocation {
  std::string spec_path;  // "spec.template.spec" or "spec", for messages
  bool is_template = false;
};

Result<PodLocation> LocatePod(std::string_view kind) {
  if (kind == "Deployment" || kind == "StatefulSet" || kind == "DaemonSet") {
    return PodLocation{"spec.template.spec", true};
  }
  if (kind == "Pod") return PodLocation{"spec", false};
  // A Job's pods end on their own and a ReplicaSet is its Deployment's to change: neither is a
  // long-running server to drain in a rollout.
  return Error{"cannot wire a " + std::string(kind.empty() ? "kindless object" : kind) +
               ": give a Deployment, StatefulSet, DaemonSet or Pod, or a List of them"};
}

// What Wire will do to one pod, worked out and checked before anything changes.
struct Plan {
  size_t app_index = 0;  // in containers
  std::string app_name;
  int port = 0;                            // lameduck listens here: what the Service targets
  std::optional<size_t> moved_port_index;  // the app's entry for `port`, which moves to lameduck
  std::string moved_port_name;             // its name, if it had one
  std::string port_name;                   // lameduck's name for `port`
  std::vector<size_t> waiting_containers;  // other regular containers that wait for the drain
  bool set_unprivileged_port_sysctl = false;
};

// A container can take the shared volume at /lameduck unless something is mounted there.
Result<void> CheckCanMount(Json& container, const std::string& path) {
  auto mounts = OptionalArray(container, "volumeMounts", path + ".volumeMounts");
  if (!mounts) return Error{mounts.error()};
  if (auto ok = CheckEntries(*mounts, path + ".volumeMounts"); !ok) return Error{ok.error()};
  if (*mounts == nullptr) return {};
  for (const Json& mount : **mounts) {
    auto mount_path = mount.find("mountPath");
    if (mount_path == mount.end() || !mount_path->is_string()) continue;
    const std::string& text = mount_path->get_ref<const std::string&>();
    if (text == kAppMountPath || text.starts_with(std::string(kAppMountPath) + "/")) {
      return Error{"container " + NameOf(container) + " already mounts a volume at " + text +
                   ": lameduck needs " + std::string(kAppMountPath)};
    }
  }
  return {};
}

Result<size_t> ChooseApp(const Json& containers, const InjectOptions& options) {
  std::string names;
  for (const Json& container : containers) names += (names.empty() ? "" : ", ") + NameOf(container);
  if (options.container) {
    for (size_t i = 0; i < containers.size(); ++i) {
      if (NameOf(containers[i]) == *options.container) return i;
    }
    return Error{"no container named " + *options.container + " (containers: " + names + ")"};
  }
  if (containers.size() == 1) return size_t{0};
  return Error{"several containers: name the app with --container (one of " + names + ")"};
}

// A port of some container in the pod, for clash checks.
struct DeclaredPort {
  std::string container;
  const Json* entry;
};

std::vector<DeclaredPort> AllPorts(const Json& pod_spec) {
  std::vector<DeclaredPort> ports;
  for (std::string_view list : {"initContainers", "containers"}) {
    auto containers = pod_spec.find(list);
    if (containers == pod_spec.end() || !containers->is_array()) continue;
    for (const Json& container : *containers) {
      auto entries = container.find("ports");
      if (entries == container.end() || !entries->is_array()) continue;
      for (const Json& entry : *entries) {
        if (entry.is_object()) ports.push_back({NameOf(container), &entry});
      }
    }
  }
  return ports;
}

// The Service-facing port: --port, else the app's first. It moves to lameduck, so it and the
// app's new port must be free in the pod.
Result<void> PlanPorts(const Json& pod_spec, Json& app, const std::string& app_path,
                       const InjectOptions& options, Plan& plan) {
  auto ports = OptionalArray(app, "ports", app_path + ".ports");
  if (!ports) return Error{ports.error()};
  if (auto ok = CheckEntries(*ports, app_path + ".ports"); !ok) return Error{ok.error()};
  if (options.port) {
    plan.port = *options.port;
  } else if (*ports == nullptr || (*ports)->empty()) {
    return Error{"no container port to take over: pass --port and --app-port"};
  } else if (auto first = ContainerPortOf((**ports)[0])) {
    plan.port = *first;
  } else {
    return Error{app_path + ".ports[0].containerPort is not a number"};
  }
  for (size_t i = 0; *ports != nullptr && i < (*ports)->size(); ++i) {
    const Json& entry = (**ports)[i];
    auto protocol = entry.find("protocol");
    bool tcp = protocol == entry.end() || *protocol == "TCP";
    if (ContainerPortOf(entry) == plan.port && tcp) {
      plan.moved_port_index = i;
      plan.moved_port_name = NameOf(entry);
      break;
    }
  }
  if (plan.port == kAdminPort) {
    return Error{"container " + plan.app_name + "'s port is " + std::to_string(kAdminPort) +
                 ", lameduck's admin port: pass --port with another"};
  }
  if (plan.port == options.app_port) {
    return Error{"container " + plan.app_name + "'s port " + std::to_string(plan.port) +
                 " is the one lameduck takes over, so the app cannot keep it: pass --app-port "
                 "with another port for the app"};
  }

  // The pod shares one network namespace: after the move, nothing else may claim lameduck's two
  // ports or the app's new one.
  bool http_taken = false;
  for (const DeclaredPort& declared : AllPorts(pod_spec)) {
    if (plan.moved_port_index && declared.entry == &(**ports)[*plan.moved_port_index]) continue;
    http_taken = http_taken || NameOf(*declared.entry) == "http";
    std::optional<int> number = ContainerPortOf(*declared.entry);
    std::string owner = "container " + declared.container + " already declares port ";
    if (number == kAdminPort) {
      return Error{owner + std::to_string(kAdminPort) +
                   ", which lameduck needs for its admin API: move it"};
    }
    if (number == options.app_port) {
      return Error{owner + std::to_string(options.app_port) +
                   ", where the app is to listen: pass --app-port with a free port"};
    }
    if (number == plan.port) {
      return Error{owner + std::to_string(plan.port) +
                   ", which lameduck is to take over: pass --port with the app's port"};
    }
  }
  // A Service may target the port by name: it keeps its name. An unnamed one gets "http".
  plan.port_name = !plan.moved_port_name.empty() ? plan.moved_port_name
                   : http_taken                  ? "lameduck-http"
                                                 : "http";
  return {};
}

// Decides whether the pod can be wired. nullopt: it already is (a container named lameduck).
Result<std::optional<Plan>> MakePlan(Json& pod_spec, const std::string& spec_path,
                                     const Json* claim_templates, const InjectOptions& options) {
  auto containers = OptionalArray(pod_spec, "containers", spec_path + ".containers");
  if (!containers) return Error{containers.error()};
  if (*containers == nullptr || (*containers)->empty()) {
    return Error{spec_path + ".containers is empty: nothing to put lameduck in front of"};
  }
  auto init_containers = OptionalArray(pod_spec, "initContainers", spec_path + ".initContainers");
  if (!init_containers) return Error{init_containers.error()};
  auto volumes = OptionalArray(pod_spec, "volumes", spec_path + ".volumes");
  if (!volumes) return Error{volumes.error()};
  for (auto [list, path] : {std::pair{*containers, spec_path + ".containers"},
                            std::pair{*init_containers, spec_path + ".initContainers"},
                            std::pair{*volumes, spec_path + ".volumes"}}) {
    if (auto ok = CheckEntries(list, path); !ok) return Error{ok.error()};
  }

  auto has_container = [&](std::string_view name) {
    for (const Json* list : {*init_containers, *containers}) {
      if (list == nullptr) continue;
      for (const Json& container : *list) {
        if (NameOf(container) == name) return true;
      }
    }
    return false;
  };
  if (has_container(kSidecarName)) return std::optional<Plan>();  // injected before
  if (has_container(kInstallName)) {
    return Error{"a container is already named lameduck-install, but none lameduck: rename it"};
  }
  auto volume_named_lameduck = [](const Json* list) {
    if (list == nullptr || !list->is_array()) return false;
    for (const Json& entry : *list) {
      if (entry.is_object() && NameOf(entry) == kVolumeName) return true;
    }
    return false;
  };
  if (volume_named_lameduck(*volumes) || volume_named_lameduck(claim_templates)) {
    return Error{"the pod already has a volume named lameduck: rename it"};
  }

  Plan plan;
  auto app_index = ChooseApp(**containers, options);
  if (!app_index) return Error{app_index.error()};
  plan.app_index = *app_index;
  Json& app = (**containers)[plan.app_index];
  plan.app_name = NameOf(app);
  std::string app_path = spec_path + ".containers[" + std::to_string(plan.app_index) + "]";

  auto lifecycle = OptionalObject(app, "lifecycle", app_path + ".lifecycle");
  if (!lifecycle) return Error{lifecycle.error()};
  if (*lifecycle != nullptr && (*lifecycle)->contains("preStop")) {
    return Error{"container " + plan.app_name +
                 " already has a preStop hook: remove it, or chain it yourself after " +
                 std::string(kAppBinary) + " drain --wait --admin " + LoopbackAdmin()};
  }
  // Every other regular container holds its SIGTERM until the drain is done too: one the app
  // needs (a database proxy, say) must not stop while requests are still being served. One
  // with a preStop hook of its own is left to it.
  for (size_t i = 0; i < (*containers)->size(); ++i) {
    std::string path = spec_path + ".containers[" + std::to_string(i) + "]";
    Json& container = (**containers)[i];
    if (auto ok = CheckCanMount(container, path); !ok) return Error{ok.error()};
    if (i == plan.app_index) continue;
    auto other_lifecycle = OptionalObject(container, "lifecycle", path + ".lifecycle");
    if (!other_lifecycle) return Error{other_lifecycle.error()};
    if (*other_lifecycle == nullptr || !(*other_lifecycle)->contains("preStop")) {
      plan.waiting_containers.push_back(i);
    }
  }

  if (auto ok = PlanPorts(pod_spec, app, app_path, options, plan); !ok) return Error{ok.error()};

  auto grace = pod_spec.find("terminationGracePeriodSeconds");
  if (grace != pod_spec.end() && !grace->is_null() && !grace->is_number_integer()) {
    return Error{spec_path + ".terminationGracePeriodSeconds is not a whole number of seconds"};
  }
  if (plan.port < kFirstUnprivilegedPort) {
    auto host_network = pod_spec.find("hostNetwork");
    if (host_network != pod_spec.end() && *host_network == true) {
      return Error{"lameduck runs as a non-root user and cannot listen on port " +
                   std::to_string(plan.port) +
                   " in a hostNetwork pod: move the app to a port from 1024 up first"};
    }
    auto security_context =
        OptionalObject(pod_spec, "securityContext", spec_path + ".securityContext");
    if (!security_context) return Error{security_context.error()};
    if (*security_context != nullptr) {
      auto sysctls =
          OptionalArray(**security_context, "sysctls", spec_path + ".securityContext.sysctls");
      if (!sysctls) return Error{sysctls.error()};
    }
    plan.set_unprivileged_port_sysctl = true;
  }
  return std::optional<Plan>(std::move(plan));
}

// ---- Writing the tree.

Json HardenedSecurityContext() {
  return Json{{"runAsNonRoot", true},
              {"runAsUser", kUserId},
              {"runAsGroup", kUserId},
              {"allowPrivilegeEscalation", false},
              {"readOnlyRootFilesystem", true},
              {"capabilities", {{"drop", Json::array({"ALL"})}}},
              {"seccompProfile", {{"type", "RuntimeDefault"}}}};
}

Json Mount(std::string_view path) { return Json{{"name", kVolumeName}, {"mountPath", path}}; }

Json HttpGetProbe(std::string_view path) {
  return Json{{"httpGet", {{"path", path}, {"port", kAdminPort}}}};
}

// How long a preStop's `drain --wait` may wait: the drain ends by --drain-timeout from its start
// (or at the end of a longer --drain-delay). Without it, drain's own default (120s) could cut
// a long drain short and let kubelet SIGTERM the app mid-drain.
std::string DrainWaitTimeout(const InjectOptions& options) {
  return FormatDuration(options.drain_delay + options.drain_timeout + kGraceMargin);
}

Json InstallContainer(const InjectOptions& options) {
  Json small = {{"cpu", "10m"}, {"memory", "16Mi"}};  // one file copy
  return Json{{"name", kInstallName},
              {"image", options.image},
              {"args", Json::array({"install", kInstallTarget})},
              {"volumeMounts", Json::array({Mount(kSidecarMountPath)})},
              {"resources", {{"requests", small}, {"limits", small}}},
              {"securityContext", HardenedSecurityContext()}};
}

Json SidecarContainer(const InjectOptions& options, const Plan& plan, Json service_port) {
  Json container = {{"name", kSidecarName}, {"image", options.image}};
  // Native: an init container that restarts is a sidecar, started before the app and stopped
  // after it (KEP-753).
  if (options.mode == SidecarMode::kNative) container["restartPolicy"] = "Always";
  container["args"] = Json::array({
      "--listen=0.0.0.0:" + std::to_string(plan.port),
      "--upstream=127.0.0.1:" + std::to_string(options.app_port),
      "--admin=0.0.0.0:" + std::to_string(kAdminPort),
      "--admin-socket=" + std::string(kAdminSocket),
      "--drain-delay=" + FormatDuration(options.drain_delay),
      "--drain-timeout=" + FormatDuration(options.drain_timeout),
  });
  container["ports"] = Json::array(
      {std::move(service_port), {{"name", kAdminPortName}, {"containerPort", kAdminPort}}});
  // Readiness turns 503 the moment a drain starts; one failed probe takes the pod out of the
  // endpoints within about a second, well inside the accept grace.
  Json readiness = HttpGetProbe("/ready");
  readiness["periodSeconds"] = 1;
  readiness["failureThreshold"] = 1;
  readiness["timeoutSeconds"] = 1;
  container["readinessProbe"] = std::move(readiness);
  // In native mode the app container starts only once this probe passes.
  Json startup = HttpGetProbe("/live");
  startup["periodSeconds"] = 1;
  startup["failureThreshold"] = 30;
  container["startupProbe"] = std::move(startup);
  Json liveness = HttpGetProbe("/live");  // 200 while draining too: a drain is not a failure
  liveness["periodSeconds"] = 10;
  liveness["failureThreshold"] = 3;
  container["livenessProbe"] = std::move(liveness);
  if (options.mode == SidecarMode::kClassic) {
    // Classic: kubelet stops both containers at once, so lameduck's own hook also waits for the
    // drain, keeping it up until the app's hook (or this one) has drained it.
    container["lifecycle"] = {
        {"preStop",
         {{"exec",
           {{"command", Json::array({kImageBinary, "drain", "--wait", "--admin-socket",
                                     kAdminSocket, "--timeout", DrainWaitTimeout(options)})}}}}}};
  }
  container["volumeMounts"] = Json::array({Mount(kSidecarMountPath)});
  // Measured peak RSS: 4 MiB under wrk, 5.8 MiB moving 1 GiB against a stalling peer
  // (bench/README.md); 64Mi leaves ample room without letting a leak grow unnoticed.
  container["resources"] = {{"requests", {{"cpu", "50m"}, {"memory", "16Mi"}}},
                            {"limits", {{"memory", "64Mi"}}}};
  container["securityContext"] = HardenedSecurityContext();
  return container;
}

// `object[key]`, created as `initial` when absent or null.
Json& Member(Json& object, std::string_view key, Json initial) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) object[std::string(key)] = std::move(initial);
  return object[std::string(key)];
}

// The app's own probes on the taken-over port (by number, or by the name that moved with it)
// would now reach lameduck, or fail to resolve: they go to the app's new port.
void RetargetProbes(Json& app, const Plan& plan, int app_port) {
  for (std::string_view probe_key : {"readinessProbe", "livenessProbe", "startupProbe"}) {
    auto probe = app.find(probe_key);
    if (probe == app.end() || !probe->is_object()) continue;
    for (std::string_view handler_key : {"httpGet", "tcpSocket", "grpc"}) {
      auto handler = probe->find(handler_key);
      if (handler == probe->end() || !handler->is_object()) continue;
      auto port = handler->find("port");
      if (port == handler->end()) continue;
      bool by_number = port->is_number_integer() && port->get<int>() == plan.port;
      bool by_name = port->is_string() && !plan.moved_port_name.empty() &&
                     port->get_ref<const std::string&>() == plan.moved_port_name;
      if (by_number || by_name) *port = app_port;
    }
  }
}

// Gives a regular container the shared volume and a preStop hook that waits for the drain. When
// the hook returns, kubelet sends the container SIGTERM: by then nothing is in flight.
void WaitForDrainBeforeStop(Json& container, const InjectOptions& options) {
  Json mount = Mount(kAppMountPath);
  mount["readOnly"] = true;  // it only runs the binary
  Member(container, "volumeMounts", Json::array()).push_back(std::move(mount));
  Member(container, "lifecycle", Json::object())["preStop"] = {
      {"exec",
       {{"command", Json::array({kAppBinary, "drain", "--wait", "--admin", LoopbackAdmin(),
                                 "--timeout", DrainWaitTimeout(options)})}}}};
}

// Applies a checked plan. Order matters: the app container is edited through a reference into
// containers, so before anything is appended to that list or inserted into the pod spec.
void Wire(Json& pod_spec, const Plan& plan, const InjectOptions& options) {
  Json service_port;
  {
    Json& app = pod_spec["containers"][plan.app_index];
    if (plan.moved_port_index) {
      Json& ports = app["ports"];
      service_port = std::move(ports[*plan.moved_port_index]);
      ports.erase(*plan.moved_port_index);
      if (ports.empty()) app.erase("ports");
      if (NameOf(service_port).empty()) service_port["name"] = plan.port_name;
    } else {
      service_port = {{"name", plan.port_name}, {"containerPort", plan.port}};
    }
    RetargetProbes(app, plan, options.app_port);
    WaitForDrainBeforeStop(app, options);
  }
  for (size_t index : plan.waiting_containers) {
    WaitForDrainBeforeStop(pod_spec["containers"][index], options);
  }

  Member(pod_spec, "volumes", Json::array())
      .push_back({{"name", kVolumeName}, {"emptyDir", {{"sizeLimit", kVolumeSizeLimit}}}});
  {
    Json& init_containers = Member(pod_spec, "initContainers", Json::array());
    init_containers.push_back(InstallContainer(options));
    if (options.mode == SidecarMode::kNative) {
      init_containers.push_back(SidecarContainer(options, plan, std::move(service_port)));
    }
  }
  if (options.mode == SidecarMode::kClassic) {
    pod_spec["containers"].push_back(SidecarContainer(options, plan, std::move(service_port)));
  }

  // The pod is killed at the grace period, drained or not: it must cover the accept grace, the
  // drain and the app's exit. (--drain-timeout already counts from the drain's start, so this
  // over-counts the delay; cheap insurance, and what DESIGN asks.) A longer one is kept.
  milliseconds worst = options.drain_delay + options.drain_timeout + options.app_exit_timeout;
  int64_t grace_seconds = (worst.count() + 999) / 1000 + kGraceMarginSeconds;
  Json& grace = Member(pod_spec, "terminationGracePeriodSeconds", grace_seconds);
  if (grace.get<int64_t>() < grace_seconds) grace = grace_seconds;

  if (plan.set_unprivileged_port_sysctl) {
    // A "safe" sysctl (Kubernetes 1.22+, allowed by the baseline Pod Security Standard) scoped to
    // the pod's network namespace: it lets lameduck bind the low port without a capability.
    Json& security_context = Member(pod_spec, "securityContext", Json::object());
    Json& sysctls = Member(security_context, "sysctls", Json::array());
    std::string value = std::to_string(plan.port);
    bool found = false;
    for (Json& sysctl : sysctls) {
      if (!sysctl.is_object() || NameOf(sysctl) != kUnprivilegedPortSysctl) continue;
      found = true;
      auto current = sysctl.find("value");
      std::optional<int> start;
      if (current != sysctl.end() && current->is_string()) {
        start = ParseSmallNumber(current->get_ref<const std::string&>());
      }
      if (!start || *start > plan.port) sysctl["value"] = value;  // a lower one is kept
    }
    if (!found) sysctls.push_back({{"name", kUnprivilegedPortSysctl}, {"value", value}});
  }
}

// Wires one object of a kind we know. `label` ("Deployment web") prefixes refusals.
Result<void> InjectObject(Json& object, const InjectOptions& options, const std::string& label) {
  auto refuse = [&](const std::string& why) { return Error{label + ": " + why}; };
  std::string kind = object.value("kind", std::string());
  auto location = LocatePod(kind);
  if (!location) return refuse(location.error());

  Json* pod = &object;  // holds "metadata" and "spec" of the pod
  Json* claim_templates = nullptr;
  if (location->is_template) {
    auto spec = OptionalObject(object, "spec", "spec");
    if (!spec) return refuse(spec.error());
    if (*spec == nullptr) return refuse("it has no spec");
    auto templ = OptionalObject(**spec, "template", "spec.template");
    if (!templ) return refuse(templ.error());
    if (*templ == nullptr) return refuse("it has no spec.template");
    if (auto claims = (*spec)->find("volumeClaimTemplates"); claims != (*spec)->end()) {
      claim_templates = &*claims;
    }
    pod = *templ;
  }
  std::string metadata_path = location->is_template ? "spec.template.metadata" : "metadata";
  auto pod_spec = OptionalObject(*pod, "spec", location->spec_path);
  if (!pod_spec) return refuse(pod_spec.error());
  if (*pod_spec == nullptr) return refuse("it has no " + location->spec_path);
  auto metadata = OptionalObject(*pod, "metadata", metadata_path);
  if (!metadata) return refuse(metadata.error());
  if (*metadata != nullptr) {
    auto annotations = OptionalObject(**metadata, "annotations", metadata_path + ".annotations");
    if (!annotations) return refuse(annotations.error());
  }

  auto plan = MakePlan(**pod_spec, location->spec_path, claim_templates, options);
  if (!plan) return refuse(plan.error());
  if (!*plan) return {};  // already wired: unchanged, so a second run gives the same bytes
  Wire(**pod_spec, **plan, options);
  // Last: inserting "metadata" into the pod (template) may move its "spec".
  Json& annotations =
      Member(Member(*pod, "metadata", Json::object()), "annotations", Json::object());
  annotations[std::string(kInjectedAnnotation)] = LAMEDUCK_VERSION;
  return {};
}

std::string Label(const Json& object) {
  std::string kind = object.value("kind", std::string("object"));
  std::string name;
  if (auto metadata = object.find("metadata"); metadata != object.end() && metadata->is_object()) {
    name = NameOf(*metadata);
  }
  return name.empty() ? kind : kind + " " + name;
}

Result<void> InjectDocument(Json& document, const InjectOptions& options) {
  if (!document.is_object()) {
    return Error{"stdin holds JSON but not an object: pipe in kubectl get ... -o json"};
  }
  if (document.value("kind", std::string()) != "List") {
    return InjectObject(document, options, Label(document));
  }
  // `kubectl get deploy,sts -o json` gives a List. All items are wired, or none.
  auto items = OptionalArray(document, "items", "List.items");
  if (!items) return Error{items.error()};
  for (size_t i = 0; *items != nullptr && i < (*items)->size(); ++i) {
    Json& item = (**items)[i];
    std::string label = "items[" + std::to_string(i) + "]";
    if (!item.is_object()) return Error{label + " is not an object"};
    auto wired = InjectObject(item, options, label + " (" + Label(item) + ")");
    if (!wired) return wired;
  }
  return {};
}

void PrintLine(std::ostream& err, std::string_view command, std::string_view message) {
  err << "lameduck " << command << ": " << message << '\n' << std::flush;
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

std::string_view InjectUsageText() {
  static const std::string kUsage = BuildUsage();
  return kUsage;
}

int RunInject(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
              std::ostream& err) {
  auto parsed = ReadArgs(args);
  if (!parsed) {
    PrintLine(err, "inject", parsed.error() + " (see lameduck inject --help)");
    return kExitUsage;
  }
  if (parsed->help) {
    out << InjectUsageText() << std::flush;
    return kExitOk;
  }
  std::string text(std::istreambuf_iterator<char>(in), {});
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
    PrintLine(err, "inject", "stdin is empty: pipe in kubectl get deploy NAME -o json");
    return kExitRefused;
  }
  Json document;
  try {
    document = Json::parse(text);
  } catch (const Json::parse_error& error) {
    PrintLine(err, "inject",
              "stdin is not JSON (at byte " + std::to_string(error.byte) +
                  "; YAML is not read): pipe in kubectl get ... -o json");
    return kExitRefused;
  } catch (const Json::exception& error) {  // a number out of range (fuzz_inject)
    PrintLine(err, "inject", std::string("stdin is not usable JSON: ") + error.what());
    return kExitRefused;
  }
  try {
    auto wired = InjectDocument(document, parsed->options);
    if (!wired) {
      PrintLine(err, "inject", wired.error());
      return kExitRefused;
    }
    out << document.dump(4) << '\n' << std::flush;
  } catch (const Json::exception& error) {
    // The checks above look at every member before it is used; this is the backstop for a shape
    // they missed, so it is a refusal, never a crash or half a document.
    PrintLine(err, "inject", std::string("cannot wire this input: ") + error.what());
    return kExitRefused;
  }
  return kExitOk;
}

int RunInstall(const std::vector<std::string>& args, std::ostream& err) {
  if (args.size() != 1 || args[0].empty() || args[0].starts_with("-")) {
    PrintLine(err, "install", "usage: lameduck install PATH (copies this binary to PATH)");
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
    PrintLine(err, "install", copied.error());
    return kExitRefused;
  }
  return kExitOk;
}

}  // namespace lameduck::coordinator
