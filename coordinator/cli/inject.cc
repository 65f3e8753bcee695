// `lameduck inject` and `uninject`: options (flags, then each workload's annotations), finding
// the pod in each kind, choosing the app's port, the wiring, the Services and the summary.
//
// The wiring, for a pod whose app container `web` declares {name: http, containerPort: 8080}:
//   volumes          + lameduck (emptyDir), the shared volume that carries the binary to the app
//   initContainers   + lameduck-install: `/lameduck install /run/lameduck/lameduck`
//                    + lameduck (native mode: restartPolicy Always, a sidecar that starts first
//                      and stops last), or appended to containers (classic mode), listening on
//                      9900 {name: http} and forwarding to 127.0.0.1:8080; admin on 9901
//   web              ~ its port entry is renamed app-http (Kubernetes finds a named port in the
//                      regular containers first, so it must not keep the Service's name), and
//                      its probes that name the port follow the rename
//                    + the volume at /lameduck; preStop `/lameduck/lameduck drain --wait`, with
//                      the container's own preStop chained after it (--then -- CMD)
//   other containers + the volume and the same preStop (theirs chained)
//   the pod          terminationGracePeriodSeconds covering the whole drain; two annotations
//   Services         targetPort 8080 (or none) becomes "http"; by name they follow by themselves
//
// Mount paths: the image's binary is /lameduck (its ENTRYPOINT), so the shared volume must not be
// mounted at /lameduck in a container running that image: it would hide (or, being a directory
// over a file, fail to mount over) the very binary the container runs. lameduck-install and
// lameduck mount it at /run/lameduck; the app, whose image has no /lameduck, at /lameduck.
//
// The edits are in place on ordered_json trees through an Editor (undo_record.h), which records
// for each edit the operation that undoes it: fields are never dropped or reordered, and uninject
// is the record applied. Inserting a key into an ordered_json object may move its other members,
// so edits address members by JSON pointer, never by a reference kept across an insertion.
#include "coordinator/cli/inject.h"

#include <algorithm>
#include <chrono>
#include <iterator>
#include <map>
#include <optional>
#include <set>

#include "coordinator/cli/manifest.h"
#include "coordinator/cli/port_kind.h"
#include "coordinator/cli/undo_record.h"
#include "coordinator/config/defaults.h"
#include "coordinator/config/option_parser.h"
#include "coordinator/config/text.h"
#include "proxy/result.h"

namespace lameduck::coordinator {
namespace {

using manifest::Json;
using Pointer = Json::json_pointer;
using std::chrono::milliseconds;

constexpr int kExitOk = 0;
constexpr int kExitRefused = 1;
constexpr int kExitUsage = 2;

constexpr std::string_view kDefaultImage = "ghcr.io/lameduck/lameduck:" LAMEDUCK_VERSION;
constexpr std::string_view kAnnotationPrefix = "lameduck.dev/";
constexpr std::string_view kInjectedAnnotation = "lameduck.dev/injected";
constexpr std::string_view kRecordAnnotation = "lameduck.dev/original";  // the undo record
constexpr std::string_view kSidecarName = "lameduck";
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
constexpr std::string_view kAdminPortName = "lameduck-admin";
// lameduck's own ports in the pod: these, or the next ones no container declares. 9901 is the
// server's --admin default; 9900 sits beside it and is no common app's port.
constexpr int kFirstPort = 9900;
constexpr int kFirstAdminPort = kDefaults.admin_port;
// Kubernetes' default terminationGracePeriodSeconds, when the pod sets none.
constexpr int64_t kKubernetesDefaultGrace = 30;
// Kubernetes kills the pod at terminationGracePeriodSeconds whatever is still running; this much
// beyond the drain's worst case leaves room for kubelet's own steps (DESIGN, "Kubernetes wiring").
constexpr int kGraceMarginSeconds = 5;
constexpr milliseconds kGraceMargin{kGraceMarginSeconds * 1000};
// lameduck runs as a non-root user without capabilities: it cannot bind below this.
constexpr int kFirstUnprivilegedPort = 1024;
constexpr int kUserId = 65532;  // distroless's "nonroot"
constexpr size_t kMaxPortNameLength = 15;

enum class SidecarMode { kNative, kClassic };

// What one workload is wired with: the flags, then its annotations over them.
struct InjectOptions {
  bool enabled = true;            // lameduck.dev/inject
  std::optional<int> port;        // lameduck's; none: 9900 or the next free
  std::optional<int> admin_port;  // none: 9901 or the next free
  std::optional<int> app_port;    // none: the port the Services target, or the app's HTTP port
  std::optional<std::string> container;
  std::string image{kDefaultImage};
  milliseconds drain_delay = kDefaults.drain_delay;
  milliseconds drain_timeout = kDefaults.drain_timeout;
  milliseconds app_exit_timeout = kDefaults.app_exit_timeout;
  SidecarMode mode = SidecarMode::kNative;
};

std::string BuildUsage() {
  return "Usage: kubectl get deploy,svc -o yaml | lameduck inject [OPTIONS] | kubectl apply -f -\n"
         "       helm install NAME CHART --post-renderer lameduck --post-renderer-args inject\n"
         "       kustomize build DIR | lameduck inject | kubectl apply -f -\n"
         "\n"
         "Wires lameduck into every Deployment, StatefulSet, DaemonSet, ReplicaSet, Pod and Argo\n"
         "Rollout read from stdin (JSON, or YAML with any number of documents) and writes them to\n"
         "stdout; everything else passes through as it came. The app is not moved: lameduck\n"
         "listens on a port of its own and forwards to the app's port on 127.0.0.1, and the\n"
         "Services that reach the app are retargeted to lameduck's port by name. What is not\n"
         "plain HTTP (gRPC, HTTP/2, TLS, databases) is left alone. A summary goes to stderr.\n"
         "\n"
         "  --port N              lameduck's port (default " +
         std::to_string(kFirstPort) +
         ", or the next no container declares)\n"
         "  --admin-port N        its admin API and probes (default " +
         std::to_string(kFirstAdminPort) +
         ", or the next free)\n"
         "  --app-port N          the app's port, when it declares none or several\n"
         "  --container NAME      the app container, when several could be\n"
         "  --image IMAGE         lameduck's image (default " +
         std::string(kDefaultImage) +
         ")\n"
         "  --drain-delay DUR     lameduck's accept grace (default " +
         FormatDuration(kDefaults.drain_delay) +
         ")\n"
         "  --drain-timeout DUR   the drain's deadline, from its start (default " +
         FormatDuration(kDefaults.drain_timeout) +
         ")\n"
         "  --app-exit-timeout DUR\n"
         "                        how long the app takes to exit on SIGTERM (default " +
         FormatDuration(kDefaults.app_exit_timeout) +
         "); with the\n"
         "                        two above it sets terminationGracePeriodSeconds\n"
         "  --mode native|classic native: lameduck is a sidecar init container (the default;\n"
         "                        Services find its port by name from Kubernetes 1.33);\n"
         "                        classic: a second regular container (any version)\n"
         "\n"
         "Each workload may override these with annotations on its pod template or itself:\n"
         "lameduck.dev/port, lameduck.dev/drain-delay, ... (the option names), and\n"
         "lameduck.dev/inject: \"false\" to leave it alone (or take lameduck out).\n"
         "Injecting again rewires from the original; `lameduck uninject` restores it.\n"
         "Options are --name VALUE or --name=VALUE; durations 250ms, 5s, 2m.\n"
         "Exit status: 0 when written, 1 when stdin is not JSON or YAML (nothing on stdout),\n"
         "2 for bad usage.\n";
}

std::string_view UninjectUsage() {
  return "Usage: lameduck uninject < wired.yaml > manifests.yaml\n"
         "\n"
         "Takes out what lameduck inject added: each workload and Service it changed gets back\n"
         "what it had (recorded in its lameduck.dev/original annotation); everything else is\n"
         "written as it came. A summary goes to stderr.\n";
}

// ---- Options, from flags and from annotations alike.

Result<int> ParsePort(std::string_view text, int lowest) {
  auto port = ParseDigits<int>(text);
  if (!port || *port < lowest || *port > 65535) {
    std::string range = std::to_string(lowest) + " to 65535";
    if (lowest == kFirstUnprivilegedPort) range += ": lameduck runs without privileges";
    return Error{"invalid port " + Quote(text) + " (use a number from " + range + ")"};
  }
  return *port;
}

// Sets one option by name ("drain-delay"); the error is the message without the option's name.
Result<void> SetOption(InjectOptions& options, std::string_view name, const std::string& text) {
  if (name == "port" || name == "admin-port" || name == "app-port") {
    auto port = ParsePort(text, name == "app-port" ? 1 : kFirstUnprivilegedPort);
    if (!port) return Error{port.error()};
    (name == "port"         ? options.port
     : name == "admin-port" ? options.admin_port
                            : options.app_port) = *port;
  } else if (name == "image" || name == "container") {
    if (text.empty()) return Error{"must not be empty"};
    if (name == "image") {
      options.image = text;
    } else {
      options.container = text;
    }
  } else if (name == "mode") {
    if (text != "native" && text != "classic") {
      return Error{"invalid mode " + Quote(text) + " (use native or classic)"};
    }
    options.mode = text == "native" ? SidecarMode::kNative : SidecarMode::kClassic;
  } else if (name == "inject") {
    if (text == "false" || text == "disabled") {
      options.enabled = false;
    } else if (text == "true" || text == "enabled") {
      options.enabled = true;
    } else {
      return Error{"invalid value " + Quote(text) + " (use true or false)"};
    }
  } else if (name == "drain-delay" || name == "drain-timeout" || name == "app-exit-timeout") {
    auto duration = ParseDuration(text);
    if (!duration) return Error{duration.error()};
    // lameduck itself refuses a zero --drain-timeout; an app may exit at once, a delay be 0.
    if (name == "drain-timeout" && duration->count() == 0) return Error{"must be more than 0"};
    (name == "drain-delay"     ? options.drain_delay
     : name == "drain-timeout" ? options.drain_timeout
                               : options.app_exit_timeout) = *duration;
  } else {
    return Error{"unknown"};
  }
  return {};
}

constexpr OptionSpec kOptions[] = {
    {"port"},          {"admin-port"},
    {"app-port"},      {"container"},
    {"image"},         {"drain-delay"},
    {"drain-timeout"}, {"app-exit-timeout"},
    {"mode"},          {"help", OptionKind::kHelp, "-h"},
};
// The annotation names: the options and `inject`.
constexpr std::string_view kAnnotationOptions[] = {
    "inject", "port",        "admin-port",    "app-port",         "container",
    "image",  "drain-delay", "drain-timeout", "app-exit-timeout", "mode"};

struct InjectArgs {
  InjectOptions options;
  bool help = false;
};

Result<InjectArgs> ReadArgs(const std::vector<std::string>& args) {
  InjectArgs parsed;
  auto line =
      ParseCommandLine(args, {.options = kOptions, .stray_hint = "manifests come on stdin"});
  if (!line) return Error{line.error()};
  parsed.help = line->help;
  if (parsed.help) return parsed;
  for (const ParsedOption& given : line->options) {
    if (auto set = SetOption(parsed.options, given.name, given.value); !set) {
      return Error{given.label + ": " + set.error()};
    }
  }
  const InjectOptions& options = parsed.options;
  if (options.port && options.admin_port && *options.port == *options.admin_port) {
    return Error{"--admin-port: " + std::to_string(*options.port) + " is also --port"};
  }
  return parsed;
}

// ---- Reading trees. Input is untrusted: every member is checked for its type before use.

const Json* Find(const Json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

std::string StringAt(const Json& object, std::string_view key) {
  const Json* value = Find(object, key);
  return value != nullptr && value->is_string() ? value->get<std::string>() : std::string();
}

const Json& EmptyArray() {
  static const Json kEmpty = Json::array();
  return kEmpty;
}

// object[key] when it is a list, else an empty one.
const Json& ListAt(const Json& object, std::string_view key) {
  const Json* value = Find(object, key);
  return value != nullptr && value->is_array() ? *value : EmptyArray();
}

std::string NameOf(const Json& entry) { return StringAt(entry, "name"); }

std::optional<int> IntAt(const Json& object, std::string_view key) {
  const Json* value = Find(object, key);
  if (value == nullptr || !value->is_number_integer()) return std::nullopt;
  int64_t number = value->get<int64_t>();
  if (number < 0 || number > 65535) return std::nullopt;
  return static_cast<int>(number);
}

// "Deployment shop/web".
std::string Label(const Json& object) {
  std::string kind = StringAt(object, "kind");
  const Json* metadata = Find(object, "metadata");
  std::string name = metadata != nullptr ? NameOf(*metadata) : std::string();
  std::string ns = metadata != nullptr ? StringAt(*metadata, "namespace") : std::string();
  if (kind.empty()) kind = "object";
  if (name.empty()) return kind;
  return kind + " " + (ns.empty() ? "" : ns + "/") + name;
}

std::string NamespaceOf(const Json& object) {
  const Json* metadata = Find(object, "metadata");
  return metadata != nullptr ? StringAt(*metadata, "namespace") : std::string();
}

// Where a kind keeps its pod (metadata and spec): a pod template, or the object itself.
std::optional<Pointer> PodOf(const Json& object) {
  std::string kind = StringAt(object, "kind");
  std::string api = StringAt(object, "apiVersion");
  std::string group = api.find('/') == std::string::npos ? "" : api.substr(0, api.find('/'));
  if (group == "apps" && (kind == "Deployment" || kind == "StatefulSet" || kind == "DaemonSet" ||
                          kind == "ReplicaSet")) {
    return Pointer("/spec/template");
  }
  if (group.empty() && kind == "ReplicationController") return Pointer("/spec/template");
  if (group == "argoproj.io" && kind == "Rollout") return Pointer("/spec/template");
  if (group.empty() && kind == "Pod") return Pointer("");
  return std::nullopt;
}

bool IsService(const Json& object) {
  return StringAt(object, "kind") == "Service" && StringAt(object, "apiVersion") == "v1";
}

const Json* At(const Json& root, const Pointer& pointer) {
  return root.contains(pointer) ? &root[pointer] : nullptr;
}

// ---- The ports of a pod.

// One declared port of a regular container.
struct PortEntry {
  size_t container = 0;
  size_t index = 0;  // in the container's ports
  int number = 0;
  std::string name;
  std::string protocol;  // "TCP" when not given
  bool host_port = false;
};

std::vector<PortEntry> PortsOf(const Json& spec) {
  std::vector<PortEntry> ports;
  const Json& containers = ListAt(spec, "containers");
  for (size_t c = 0; c < containers.size(); ++c) {
    const Json& entries = ListAt(containers[c], "ports");
    for (size_t i = 0; i < entries.size(); ++i) {
      auto number = IntAt(entries[i], "containerPort");
      if (!number) continue;
      std::string protocol = StringAt(entries[i], "protocol");
      ports.push_back({c, i, *number, NameOf(entries[i]), protocol.empty() ? "TCP" : protocol,
                       Find(entries[i], "hostPort") != nullptr});
    }
  }
  return ports;
}

// Every port number and name any container of the pod declares, init containers included.
struct DeclaredPorts {
  std::set<int> numbers;
  std::set<std::string> names;
};

DeclaredPorts Declared(const Json& spec) {
  DeclaredPorts declared;
  for (std::string_view list : {"initContainers", "containers"}) {
    for (const Json& container : ListAt(spec, list)) {
      for (const Json& entry : ListAt(container, "ports")) {
        if (auto number = IntAt(entry, "containerPort")) declared.numbers.insert(*number);
        if (std::string name = NameOf(entry); !name.empty()) declared.names.insert(name);
      }
    }
  }
  return declared;
}

// The ports the container's gRPC probes check: those speak gRPC.
std::set<int> GrpcProbePorts(const Json& container) {
  std::set<int> ports;
  for (std::string_view probe : {"readinessProbe", "livenessProbe", "startupProbe"}) {
    const Json* handler = Find(container, probe);
    const Json* grpc = handler != nullptr ? Find(*handler, "grpc") : nullptr;
    if (grpc == nullptr) continue;
    if (auto port = IntAt(*grpc, "port")) ports.insert(*port);
  }
  return ports;
}

// ---- Services.

// A Service port and the pod port it reaches.
struct ServiceTarget {
  Json* service = nullptr;
  std::string label;
  size_t port_index = 0;      // in spec.ports
  int service_port = 0;       // its `port`
  std::optional<int> number;  // targetPort by number, or implicit (`port`)
  std::string name;           // targetPort by name
  bool implicit = false;
  std::string app_protocol;
  std::string port_name;  // the Service port's own name: meshes read the protocol from it
  bool headless = false;  // clusterIP: None: clients reach the pods directly
};

bool Selects(const Json& service, const Json& workload, const Json& pod) {
  const Json* spec = Find(service, "spec");
  const Json* selector = spec != nullptr ? Find(*spec, "selector") : nullptr;
  if (selector == nullptr || !selector->is_object() || selector->empty()) return false;
  std::string service_ns = NamespaceOf(service);
  std::string workload_ns = NamespaceOf(workload);
  if (!service_ns.empty() && !workload_ns.empty() && service_ns != workload_ns) return false;
  const Json* metadata = Find(pod, "metadata");
  const Json* labels = metadata != nullptr ? Find(*metadata, "labels") : nullptr;
  if (labels == nullptr || !labels->is_object()) return false;
  for (const auto& [key, value] : selector->items()) {
    const Json* label = Find(*labels, key);
    if (label == nullptr || *label != value) return false;
  }
  return true;
}

std::vector<ServiceTarget> TargetsOf(Json& service) {
  std::vector<ServiceTarget> targets;
  const Json* spec = Find(service, "spec");
  if (spec == nullptr) return targets;
  const Json& ports = ListAt(*spec, "ports");
  for (size_t i = 0; i < ports.size(); ++i) {
    const Json& port = ports[i];
    std::string protocol = StringAt(port, "protocol");
    if (!protocol.empty() && protocol != "TCP") continue;
    auto number = IntAt(port, "port");
    if (!number) continue;
    ServiceTarget target;
    target.service = &service;
    target.label = Label(service);
    target.port_index = i;
    target.service_port = *number;
    target.app_protocol = StringAt(port, "appProtocol");
    target.port_name = NameOf(port);
    target.headless = StringAt(*spec, "clusterIP") == "None";
    const Json* target_port = Find(port, "targetPort");
    if (target_port == nullptr) {
      target.number = *number;
      target.implicit = true;
    } else if (target_port->is_number_integer()) {
      target.number = IntAt(port, "targetPort");
    } else if (target_port->is_string()) {
      std::string text = target_port->get<std::string>();
      if (auto digits = ParseDigits<int>(text)) {
        target.number = *digits;
      } else {
        target.name = text;
      }
    }
    if (target.number || !target.name.empty()) targets.push_back(std::move(target));
  }
  return targets;
}

bool Reaches(const ServiceTarget& target, const PortEntry& entry) {
  if (entry.protocol != "TCP") return false;
  return target.name.empty() ? target.number == entry.number : target.name == entry.name;
}

// ---- One workload.

struct Plan {
  InjectOptions options;
  size_t app = 0;  // in containers
  std::string app_name;
  int app_port = 0;
  std::optional<size_t> app_entry;  // the app's port entry, when declared
  std::string app_entry_name;       // its name as it was ("" for none)
  std::string port_name;            // the name lameduck's port carries: the Services' target
  std::string renamed_app_entry;    // the app entry's new name, when it had port_name
  int port = 0;
  int admin_port = 0;
  std::vector<size_t> waiting;     // regular containers, the app first, that wait for the drain
  std::set<size_t> chained;        // those of them whose own preStop runs after the drain
  int64_t hook_sleep_seconds = 0;  // the longest chained sleep hook, after the drain
  int64_t grace_before = 0;  // terminationGracePeriodSeconds as it was (Kubernetes' 30 if unset)
  int64_t grace_needed = 0;  // what the drain needs, worst case
  int64_t grace = 0;         // what it will be: the larger
  std::vector<ServiceTarget> targets;  // Service ports that reach the app's port
  std::string h2c;                     // "gRPC" or "HTTP/2" when the app's port speaks h2c, else ""
  std::vector<std::string> notes;
};

struct Workload {
  Json* object = nullptr;
  std::string label;
  Pointer pod;
  bool was_wired = false;   // the input had it wired (with a record)
  Json as_wired;            // then: the object as it came, kept when it cannot be wired again
  bool disabled = false;    // lameduck.dev/inject is false
  bool kept_wired = false;  // wired, could not be rewired: written as it came
  Json original_pod;        // its pod as the running pods have it: before this wiring
  std::optional<Plan> plan;
  std::string skipped;             // why not, when no plan
  std::vector<std::string> notes;  // said either way
};

// `value` of annotation lameduck.dev/NAME on the workload or (winning) its pod template.
Result<InjectOptions> OptionsFor(const Workload& workload, const InjectOptions& flags) {
  InjectOptions options = flags;
  std::vector<const Json*> sources;
  for (const Pointer& metadata : {Pointer("/metadata"), workload.pod / "metadata"}) {
    const Json* found = At(*workload.object, metadata);
    const Json* annotations = found != nullptr ? Find(*found, "annotations") : nullptr;
    if (annotations != nullptr && annotations->is_object()) sources.push_back(annotations);
  }
  for (const Json* annotations : sources) {
    for (std::string_view name : kAnnotationOptions) {
      std::string key = std::string(kAnnotationPrefix) + std::string(name);
      const Json* value = Find(*annotations, key);
      if (value == nullptr) continue;
      std::string text = value->is_string() ? value->get<std::string>() : value->dump();
      if (auto set = SetOption(options, name, text); !set) {
        return Error{"annotation " + key + ": " + set.error()};
      }
    }
  }
  if (options.port && options.admin_port && *options.port == *options.admin_port) {
    return Error{"lameduck's port and admin port are both " + std::to_string(*options.port)};
  }
  return options;
}

// A port name Kubernetes accepts (IANA_SVC_NAME): at most 15 lowercase letters, digits and
// single inner hyphens, with a letter.
bool ValidPortName(const std::string& name) {
  if (name.empty() || name.size() > kMaxPortNameLength) return false;
  if (name.front() == '-' || name.back() == '-' || name.find("--") != std::string::npos) {
    return false;
  }
  bool letter = false;
  for (char c : name) {
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '-')) {
      return false;
    }
    letter = letter || std::islower(static_cast<unsigned char>(c));
  }
  return letter;
}

std::string FreeName(const std::vector<std::string>& wishes, const std::set<std::string>& taken) {
  for (const std::string& wish : wishes) {
    if (ValidPortName(wish) && !taken.contains(wish)) return wish;
  }
  for (int i = 2;; ++i) {
    std::string name = wishes.back().substr(0, kMaxPortNameLength - 3) + "-" + std::to_string(i);
    if (ValidPortName(name) && !taken.contains(name)) return name;
  }
}

int FreePort(std::optional<int> wanted, int first, const std::set<int>& taken) {
  if (wanted) return *wanted;
  int port = first;
  while (taken.contains(port)) ++port;
  return port;
}

// The preStop handler of a container, as a chain after the drain: the args to append, or why it
// cannot be chained. `has` says whether there was one.
struct Chain {
  bool has = false;
  std::vector<std::string> args;
  int64_t sleep_seconds = 0;  // a sleep hook's, which the grace period must cover too
  std::string cannot;
};

Chain ChainOf(const Json& container) {
  Chain chain;
  const Json* lifecycle = Find(container, "lifecycle");
  const Json* pre_stop = lifecycle != nullptr ? Find(*lifecycle, "preStop") : nullptr;
  if (pre_stop == nullptr) return chain;
  chain.has = true;
  if (const Json* exec = Find(*pre_stop, "exec")) {
    const Json& command = ListAt(*exec, "command");
    bool strings = !command.empty() && std::all_of(command.begin(), command.end(),
                                                   [](const Json& arg) { return arg.is_string(); });
    if (!strings) {
      chain.cannot = "its preStop exec hook has no command";
      return chain;
    }
    chain.args = {"--then", "--"};
    for (const Json& arg : command) chain.args.push_back(arg.get<std::string>());
    return chain;
  }
  if (const Json* sleep = Find(*pre_stop, "sleep")) {
    const Json* seconds = Find(*sleep, "seconds");
    if (seconds == nullptr || !seconds->is_number_integer() || seconds->get<int64_t>() < 0) {
      chain.cannot = "its preStop sleep hook has no seconds";
      return chain;
    }
    chain.sleep_seconds = seconds->get<int64_t>();
    chain.args = {"--then-sleep", std::to_string(chain.sleep_seconds) + "s"};
    return chain;
  }
  chain.cannot =
      "its preStop hook is not exec or sleep, and cannot run after lameduck's drain without a "
      "shell: make it an exec hook, or remove it";
  return chain;
}

std::string PortText(int number, const std::string& name) {
  return std::to_string(number) + (name.empty() ? "" : " \"" + name + "\"");
}

// Decides whether and how the workload is wired; nothing changes here.
Result<Plan> MakePlan(const Workload& workload, const InjectOptions& options,
                      std::vector<Json*>& services, std::vector<std::string>& notes) {
  const Json& pod = (*workload.object)[workload.pod];
  const Json* spec = Find(pod, "spec");
  if (spec == nullptr || !spec->is_object()) return Error{"it has no pod spec"};
  for (std::string_view list : {"containers", "initContainers", "volumes"}) {
    const Json* value = Find(*spec, list);
    if (value == nullptr) continue;
    if (!value->is_array() ||
        !std::all_of(value->begin(), value->end(), [](const Json& e) { return e.is_object(); })) {
      return Error{"its " + std::string(list) + " is not a list of objects"};
    }
  }
  const Json& containers = ListAt(*spec, "containers");
  if (containers.empty()) return Error{"it has no containers"};
  // A Pod its ReplicaSet made, a ReplicaSet its Deployment made: the owner would undo the change
  // (and the API server refuses most of it on a Pod).
  if (const Json* metadata = Find(*workload.object, "metadata")) {
    const Json& owners = ListAt(*metadata, "ownerReferences");
    if (!owners.empty()) {
      return Error{"it belongs to " + StringAt(owners[0], "kind") + " " + NameOf(owners[0]) +
                   ", which would undo the change: wire that instead"};
    }
  }
  if (StringAt(*workload.object, "kind") == "ReplicaSet") {
    notes.push_back(
        "a ReplicaSet does not replace the pods it runs when its template changes: the pods it "
        "makes from now on have lameduck");
  }
  if (const Json* host = Find(*spec, "hostNetwork"); host != nullptr && *host == true) {
    return Error{
        "a hostNetwork pod: its ports are the node's, so lameduck's own port could clash on "
        "every node; left to the app"};
  }
  for (std::string_view list : {"initContainers", "containers"}) {
    for (const Json& container : ListAt(*spec, list)) {
      std::string name = NameOf(container);
      if (name == kSidecarName || name == kInstallName) {
        return Error{"it already has a container named " + name +
                     " (wired by hand, or by an older lameduck inject, without the record "
                     "uninject needs): left as it is"};
      }
      for (const Json& mount : ListAt(container, "volumeMounts")) {
        std::string path = StringAt(mount, "mountPath");
        if (path == kAppMountPath || path.starts_with(std::string(kAppMountPath) + "/")) {
          return Error{"container " + name + " already mounts a volume at " + path +
                       ": lameduck needs " + std::string(kAppMountPath)};
        }
      }
    }
  }
  for (const Json& volume : ListAt(*spec, "volumes")) {
    if (NameOf(volume) == kVolumeName) return Error{"it already has a volume named lameduck"};
  }
  // A StatefulSet's volumeClaimTemplates name volumes too.
  const Json* object_spec = Find(*workload.object, "spec");
  for (const Json& claim :
       object_spec != nullptr ? ListAt(*object_spec, "volumeClaimTemplates") : EmptyArray()) {
    const Json* metadata = Find(claim, "metadata");
    if (metadata != nullptr && NameOf(*metadata) == kVolumeName) {
      return Error{"it already has a volume claim named lameduck"};
    }
  }
  if (const Json* grace = Find(*spec, "terminationGracePeriodSeconds");
      grace != nullptr && !grace->is_number_integer()) {
    return Error{"its terminationGracePeriodSeconds is not a whole number of seconds"};
  }
  DeclaredPorts declared = Declared(*spec);
  if (declared.names.contains(std::string(kAdminPortName))) {
    return Error{"a container already declares a port named " + std::string(kAdminPortName)};
  }

  // Which Service ports reach this pod, and through which of its ports.
  std::vector<PortEntry> ports = PortsOf(*spec);
  std::vector<ServiceTarget> targets;
  for (Json* service : services) {
    if (!Selects(*service, *workload.object, pod)) continue;
    for (ServiceTarget& target : TargetsOf(*service)) targets.push_back(std::move(target));
  }

  // gRPC or h2c ("gRPC", "HTTP/2"; "" for HTTP/1.1): fronted with --upstream-protocol h2c.
  auto h2c = [&](const PortEntry& entry) -> std::string {
    if (std::string_view protocol = H2cByName(entry.name); !protocol.empty()) {
      return std::string(protocol);
    }
    if (GrpcProbePorts(containers[entry.container]).contains(entry.number)) return "gRPC";
    for (const ServiceTarget& target : targets) {
      if (!Reaches(target, entry)) continue;
      if (std::string_view protocol = H2cByAppProtocol(target.app_protocol); !protocol.empty()) {
        return std::string(protocol);
      }
      if (std::string_view protocol = H2cByProtocolPrefix(target.port_name); !protocol.empty()) {
        return std::string(protocol);
      }
    }
    if (!LooksHttp(entry.name)) return std::string(H2cByNumber(entry.number));
    return "";
  };
  // Why each declared port is not the app's plain HTTP ("" when it may be).
  auto not_http = [&](const PortEntry& entry) -> std::string {
    if (entry.protocol != "TCP") return entry.protocol;
    if (std::string why = NonHttpByName(entry.name); !why.empty()) return why;
    if (!h2c(entry).empty()) return "";  // gRPC or h2c: fronted over h2c
    for (const ServiceTarget& target : targets) {
      if (!Reaches(target, entry)) continue;
      std::string protocol = target.app_protocol;
      if (!protocol.empty() && protocol != "http" && protocol != "HTTP" &&
          protocol != "kubernetes.io/ws" && H2cByAppProtocol(protocol).empty()) {
        return "appProtocol " + protocol + " in " + target.label;
      }
      if (std::string why = NonHttpByProtocolPrefix(target.port_name); !why.empty()) {
        return why + ", by the name of its port in " + target.label;
      }
    }
    if (!LooksHttp(entry.name) && !NonHttpByNumber(entry.number).empty()) {
      return std::string(NonHttpByNumber(entry.number));
    }
    return "";
  };
  auto side_port = [](const PortEntry& entry) { return IsSidePort(entry.name); };
  auto in_container = [&](const PortEntry& entry) {
    return !options.container || NameOf(containers[entry.container]) == *options.container;
  };
  if (options.container) {
    bool found = std::any_of(containers.begin(), containers.end(), [&](const Json& container) {
      return NameOf(container) == *options.container;
    });
    if (!found) return Error{"it has no container named " + *options.container};
  }

  Plan plan;
  plan.options = options;
  std::optional<PortEntry> chosen;
  std::optional<size_t> chosen_container;
  if (options.app_port) {
    for (const PortEntry& entry : ports) {
      if (entry.number == *options.app_port && entry.protocol == "TCP" && in_container(entry)) {
        chosen = entry;
        break;
      }
    }
    if (!chosen) {  // an undeclared port: the container must be clear
      if (options.container) {
        for (size_t i = 0; i < containers.size(); ++i) {
          if (NameOf(containers[i]) == *options.container) chosen_container = i;
        }
      } else if (containers.size() == 1) {
        chosen_container = 0;
      } else {
        return Error{"several containers, and none declares port " +
                     std::to_string(*options.app_port) +
                     ": say which with --container or lameduck.dev/container"};
      }
    }
  } else {
    std::vector<PortEntry> targeted;  // HTTP ports the Services reach, in the Services' order
    for (const ServiceTarget& target : targets) {
      for (const PortEntry& entry : ports) {
        if (!Reaches(target, entry) || !in_container(entry)) continue;
        if (!not_http(entry).empty() || side_port(entry)) continue;
        bool seen = std::any_of(targeted.begin(), targeted.end(), [&](const PortEntry& e) {
          return e.container == entry.container && e.index == entry.index;
        });
        if (!seen) targeted.push_back(entry);
      }
    }
    std::vector<PortEntry> candidates = targeted;
    if (candidates.empty()) {
      for (const PortEntry& entry : ports) {
        if (in_container(entry) && not_http(entry).empty() && !side_port(entry)) {
          candidates.push_back(entry);
        }
      }
    }
    std::set<size_t> owners;
    for (const PortEntry& entry : candidates) owners.insert(entry.container);
    if (owners.size() > 1) {
      std::string list;
      for (size_t owner : owners) {
        std::string ports_text;
        for (const PortEntry& entry : candidates) {
          if (entry.container == owner) {
            ports_text += (ports_text.empty() ? "" : ", ") + std::to_string(entry.number);
          }
        }
        list += (list.empty() ? "" : "; ") + NameOf(containers[owner]) + ": " + ports_text;
      }
      return Error{"several containers could be the app (" + list + ")" +
                   (targeted.empty() ? " and no Service in the input decides" : "") +
                   ": say which with --container or lameduck.dev/container"};
    }
    if (candidates.empty()) {
      std::string why;
      for (const PortEntry& entry : ports) {
        if (!in_container(entry)) continue;
        std::string reason = not_http(entry);
        if (reason.empty() && side_port(entry)) reason = "not the app's traffic";
        why += (why.empty() ? "" : "; ") + PortText(entry.number, entry.name) + ": " + reason;
      }
      if (why.empty()) {
        return Error{
            "it declares no port: say which is the app's HTTP port with --app-port or "
            "lameduck.dev/app-port"};
      }
      return Error{"no port is plain HTTP/1.1 (" + why +
                   "); --app-port or lameduck.dev/app-port wires one anyway"};
    }
    chosen = candidates.front();
    if (targeted.empty()) {  // no Service decides: the one that says HTTP, or the first
      for (const PortEntry& entry : candidates) {
        if (LooksHttp(entry.name)) {
          chosen = entry;
          break;
        }
      }
    }
    for (const PortEntry& entry : targeted) {
      if (entry.number != chosen->number) {
        notes.push_back("port " + PortText(entry.number, entry.name) +
                        " is also reached by a Service; it stays direct (lameduck fronts one "
                        "port: " +
                        std::to_string(chosen->number) + ")");
      }
    }
  }
  if (chosen) {
    plan.app = chosen->container;
    plan.app_port = chosen->number;
    plan.h2c = h2c(*chosen);
    plan.app_entry = chosen->index;
    plan.app_entry_name = chosen->name;
    if (chosen->host_port) {
      notes.push_back("port " + std::to_string(chosen->number) +
                      " has a hostPort: what comes in through the node's port still reaches the "
                      "app directly");
    }
  } else {
    plan.app = *chosen_container;
    plan.app_port = *options.app_port;
  }
  plan.app_name = NameOf(containers[plan.app]);
  for (const PortEntry& entry : ports) {
    std::string reason = not_http(entry);
    if (!reason.empty()) {
      notes.push_back("port " + PortText(entry.number, entry.name) + " of " +
                      NameOf(containers[entry.container]) + " left alone: " + reason);
    }
  }

  // lameduck's ports, and the name the Services will use.
  std::set<int> taken = declared.numbers;
  taken.insert(plan.app_port);
  if (options.port && taken.contains(*options.port)) {
    return Error{"port " + std::to_string(*options.port) +
                 " (lameduck's) is already declared in the pod: choose another with --port or "
                 "lameduck.dev/port"};
  }
  if (options.admin_port && taken.contains(*options.admin_port)) {
    return Error{"port " + std::to_string(*options.admin_port) +
                 " (lameduck's admin) is already declared in the pod: choose another with "
                 "--admin-port or lameduck.dev/admin-port"};
  }
  // The listener keeps clear of the admin port's default, so that the two stay side by side.
  std::set<int> listener_taken = taken;
  listener_taken.insert(options.admin_port.value_or(kFirstAdminPort));
  plan.port = FreePort(options.port, kFirstPort, listener_taken);
  taken.insert(plan.port);
  plan.admin_port = FreePort(options.admin_port, kFirstAdminPort, taken);
  bool name_shared = false;  // another regular container declares the app port's name too
  for (const PortEntry& entry : ports) {
    name_shared = name_shared || (entry.container != plan.app && !plan.app_entry_name.empty() &&
                                  entry.name == plan.app_entry_name);
  }
  if (name_shared) {
    notes.push_back("the name \"" + plan.app_entry_name +
                    "\" of the app's port is declared by another container too: the app keeps "
                    "it, and lameduck's port gets a name of its own");
    plan.port_name = FreeName({"lameduck-http", "lameduck-web"}, declared.names);
  } else if (!plan.app_entry_name.empty()) {
    plan.port_name = plan.app_entry_name;
    plan.renamed_app_entry =
        FreeName({"app-" + plan.port_name, "app-" + std::to_string(plan.app_port)}, declared.names);
  } else {
    plan.port_name = FreeName({"http", "lameduck-http"}, declared.names);
  }

  // Who waits for the drain: the app, and every other regular container that can.
  Chain app_chain = ChainOf(containers[plan.app]);
  if (!app_chain.cannot.empty())
    return Error{"container " + plan.app_name + ": " + app_chain.cannot};
  plan.waiting.push_back(plan.app);
  if (app_chain.has) plan.chained.insert(plan.app);
  plan.hook_sleep_seconds = app_chain.sleep_seconds;
  for (size_t i = 0; i < containers.size(); ++i) {
    if (i == plan.app) continue;
    Chain chain = ChainOf(containers[i]);
    if (!chain.cannot.empty()) {
      notes.push_back("container " + NameOf(containers[i]) +
                      " keeps its own shutdown: " + chain.cannot);
      continue;
    }
    plan.waiting.push_back(i);
    if (chain.has) plan.chained.insert(i);
    plan.hook_sleep_seconds = std::max(plan.hook_sleep_seconds, chain.sleep_seconds);
  }

  // The pod is killed at the grace period, drained or not: it must cover the accept grace, the
  // drain and the app's exit. (--drain-timeout already counts from the drain's start, so this
  // over-counts the delay; cheap insurance, and what DESIGN asks.) A longer one is kept.
  milliseconds worst = options.drain_delay + options.drain_timeout + options.app_exit_timeout;
  plan.grace_needed = (worst.count() + 999) / 1000 + plan.hook_sleep_seconds + kGraceMarginSeconds;
  const Json* grace = Find(*spec, "terminationGracePeriodSeconds");
  plan.grace_before = grace != nullptr ? grace->get<int64_t>() : kKubernetesDefaultGrace;
  plan.grace = std::max(plan.grace_before, plan.grace_needed);

  for (const ServiceTarget& target : targets) {
    // By number or implicitly the app's port; by name the app entry's, or lameduck's own (a
    // Service patched to it by hand, as the summary advised).
    bool reaches_app = target.name.empty()
                           ? target.number == plan.app_port
                           : target.name == plan.port_name || (!plan.app_entry_name.empty() &&
                                                               target.name == plan.app_entry_name);
    if (reaches_app) plan.targets.push_back(target);
  }
  return plan;
}

// ---- Writing.

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

Json HttpGetProbe(std::string_view path, int port) {
  return Json{{"httpGet", {{"path", path}, {"port", port}}}};
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

Json SidecarContainer(const Plan& plan) {
  const InjectOptions& options = plan.options;
  Json container = {{"name", kSidecarName}, {"image", options.image}};
  // Native: an init container that restarts is a sidecar, started before the app and stopped
  // after it (KEP-753).
  if (options.mode == SidecarMode::kNative) container["restartPolicy"] = "Always";
  container["args"] = Json::array({
      "--listen=0.0.0.0:" + std::to_string(plan.port),
      "--upstream=127.0.0.1:" + std::to_string(plan.app_port),
      "--admin=0.0.0.0:" + std::to_string(plan.admin_port),
      "--admin-socket=" + std::string(kAdminSocket),
      "--drain-delay=" + FormatDuration(options.drain_delay),
      "--drain-timeout=" + FormatDuration(options.drain_timeout),
      // What lameduck checks its drain against at start-up, and never lets the drain's deadline
      // pass: the app's exit time and the pod's grace period (which it cannot read from inside).
      "--app-exit-timeout=" + FormatDuration(options.app_exit_timeout),
      "--termination-grace=" + std::to_string(plan.grace) + "s",
  });
  if (!plan.h2c.empty()) {
    // A gRPC (h2c) app: lameduck speaks h2c to it, whatever the client spoke.
    container["args"].insert(container["args"].begin() + 2, "--upstream-protocol=h2c");
  }
  container["ports"] =
      Json::array({{{"name", plan.port_name}, {"containerPort", plan.port}},
                   {{"name", kAdminPortName}, {"containerPort", plan.admin_port}}});
  // Readiness turns 503 the moment a drain starts; one failed probe takes the pod out of the
  // endpoints within about a second, well inside the accept grace.
  Json readiness = HttpGetProbe("/ready", plan.admin_port);
  readiness["periodSeconds"] = 1;
  readiness["failureThreshold"] = 1;
  readiness["timeoutSeconds"] = 1;
  container["readinessProbe"] = std::move(readiness);
  // In native mode the app container starts only once this probe passes.
  Json startup = HttpGetProbe("/live", plan.admin_port);
  startup["periodSeconds"] = 1;
  startup["failureThreshold"] = 30;
  container["startupProbe"] = std::move(startup);
  Json liveness = HttpGetProbe("/live", plan.admin_port);  // 200 while draining too
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

// The shared volume and a preStop that waits for the drain, then runs the container's own
// hook. When it returns, kubelet sends the container SIGTERM: by then nothing is in flight.
void WaitForDrainBeforeStop(Editor& editor, const Pointer& container, const Plan& plan) {
  Chain chain = ChainOf(editor.root()[container]);
  Json mount = Mount(kAppMountPath);
  mount["readOnly"] = true;  // it only runs the binary
  editor.Append(editor.Ensure(container, "volumeMounts", Json::array()), std::move(mount));
  Json command = Json::array({kAppBinary, "drain", "--wait", "--admin",
                              "127.0.0.1:" + std::to_string(plan.admin_port), "--timeout",
                              DrainWaitTimeout(plan.options)});
  for (const std::string& arg : chain.args) command.push_back(arg);
  Pointer lifecycle = editor.Ensure(container, "lifecycle", Json::object());
  editor.Set(lifecycle, "preStop", {{"exec", {{"command", std::move(command)}}}});
}

void Wire(Json& object, const Pointer& pod, const Plan& plan) {
  Editor editor(object);
  Pointer spec = pod / "spec";
  Pointer containers = spec / "containers";
  if (plan.app_entry && !plan.renamed_app_entry.empty()) {
    Pointer app = containers / plan.app;
    editor.Set(app / "ports" / *plan.app_entry, "name", plan.renamed_app_entry);
    // A probe or hook that names the port looks it up in its own container: it follows the
    // rename, and still reaches the same port of the app.
    for (const Pointer& handler : {app / "readinessProbe", app / "livenessProbe",
                                   app / "startupProbe", app / "lifecycle" / "postStart"}) {
      for (std::string_view action : {"httpGet", "tcpSocket", "grpc"}) {
        Pointer at = handler / std::string(action);
        const Json* found = At(object, at);
        if (found == nullptr || !found->is_object()) continue;
        const Json* port = Find(*found, "port");
        if (port != nullptr && *port == plan.app_entry_name) {
          editor.Set(at, "port", plan.renamed_app_entry);
        }
      }
    }
  }
  for (size_t index : plan.waiting) WaitForDrainBeforeStop(editor, containers / index, plan);
  editor.Append(editor.Ensure(spec, "volumes", Json::array()),
                {{"name", kVolumeName}, {"emptyDir", {{"sizeLimit", kVolumeSizeLimit}}}});
  Pointer init_containers = editor.Ensure(spec, "initContainers", Json::array());
  editor.Append(init_containers, InstallContainer(plan.options));
  editor.Append(plan.options.mode == SidecarMode::kNative ? init_containers : containers,
                SidecarContainer(plan));
  if (plan.grace != plan.grace_before)
    editor.Set(spec, "terminationGracePeriodSeconds", plan.grace);
  Pointer metadata = editor.Ensure(pod, "metadata", Json::object());
  Pointer annotations = editor.Ensure(metadata, "annotations", Json::object());
  editor.Set(annotations, std::string(kInjectedAnnotation), LAMEDUCK_VERSION);
  editor.Record(metadata, kRecordAnnotation);
}

// ---- The run.

struct Collected {
  std::vector<Workload> workloads;
  std::vector<Json*> services;
  std::vector<std::string> passed;  // labels of everything else
  std::vector<std::string> jobs;    // Jobs and CronJobs
};

// Every object of the stream: documents, and the items of Lists and ResourceLists.
std::vector<Json*> ObjectsOf(manifest::Stream& stream) {
  std::vector<Json*> objects;
  for (manifest::Document& document : stream.documents) {
    Json& value = document.value;
    if (value.is_array()) {
      for (Json& item : value) objects.push_back(&item);
      continue;
    }
    if (!value.is_object()) continue;  // null: an empty document (Read refuses the rest)
    std::string kind = StringAt(value, "kind");
    if (kind == "List" || kind == "ResourceList") {
      auto items = value.find("items");
      if (items != value.end() && items->is_array()) {
        for (Json& item : *items) objects.push_back(&item);
      }
      continue;
    }
    objects.push_back(&value);
  }
  return objects;
}

void Say(std::ostream& err, std::string_view command, std::string_view line) {
  err << "lameduck " << command << ": " << line << '\n';
}

// Takes out what a previous injection added to each object, before anything else looks at it.
// A Service inject retargeted before, as it came.
struct WiredService {
  Json* object;
  Json as_wired;
};

void UndoAll(std::vector<Json*>& objects, std::ostream& err, std::string_view command,
             std::vector<Workload>* workloads, std::vector<WiredService>* services) {
  for (Json* object : objects) {
    if (!object->is_object()) continue;
    std::optional<Pointer> pod = PodOf(*object);
    std::string label = Label(*object);
    if (pod && At(*object, *pod) != nullptr) {
      Workload workload;
      workload.object = object;
      workload.label = label;
      workload.pod = *pod;
      workload.as_wired = *object;
      auto undone = Undo(*object, *pod / "metadata", kRecordAnnotation);
      if (!undone) {
        workload.skipped = undone.error();
      } else {
        workload.was_wired = *undone;
        if (!*undone) workload.as_wired = nullptr;
        workload.original_pod = (*object)[*pod];
        if (command == "uninject") {
          Say(err, command, label + ": " + (*undone ? "restored" : "not wired; as it came"));
        }
      }
      if (workloads != nullptr) workloads->push_back(std::move(workload));
      continue;
    }
    if (IsService(*object)) {
      Json as_wired = *object;
      auto undone = Undo(*object, Pointer("/metadata"), kRecordAnnotation);
      if (!undone) {
        Say(err, command, label + ": " + undone.error());
      } else if (*undone && command == "uninject") {
        Say(err, command, label + ": targetPort restored");
      } else if (*undone && services != nullptr) {
        services->push_back({object, std::move(as_wired)});
      }
    }
  }
}

// Where a Service's named targetPort lands in `pod`, as Kubernetes looks it up (FindPort): the
// regular containers first, then the native sidecars; the first TCP port with the name.
struct Resolved {
  std::string container;
  int number = 0;
};

std::optional<Resolved> Resolve(const Json& pod, const std::string& name) {
  const Json* spec = Find(pod, "spec");
  if (spec == nullptr) return std::nullopt;
  for (std::string_view list : {"containers", "initContainers"}) {
    for (const Json& container : ListAt(*spec, list)) {
      if (list == "initContainers" && StringAt(container, "restartPolicy") != "Always") continue;
      for (const Json& entry : ListAt(container, "ports")) {
        std::string protocol = StringAt(entry, "protocol");
        if (NameOf(entry) != name || (!protocol.empty() && protocol != "TCP")) continue;
        if (auto number = IntAt(entry, "containerPort"))
          return Resolved{NameOf(container), *number};
      }
    }
  }
  return std::nullopt;
}

// The first workload in the input that the Service selects and whose pods would not take its
// traffic by the name: a running pod must resolve it to the port the Service targets now, a
// new pod to lameduck (or, not wired, at all). "" when there is none.
std::string WhoLacks(const ServiceTarget& target, const std::string& name,
                     const std::vector<Workload>& all) {
  for (const Workload& other : all) {
    if (!other.original_pod.is_object()) continue;
    if (!Selects(*target.service, *other.object, other.original_pod)) continue;
    auto before = Resolve(other.original_pod, name);
    auto after = Resolve((*other.object)[other.pod], name);
    if (!before || before->number != target.number) return other.label;
    if (!after || (other.plan && after->container != kSidecarName)) return other.label;
  }
  return "";
}

// The command that points port `port` of Service `service` (in `ns`, "" for the current one) at
// the port name `name`; NAME and PORT stand in for what is not known.
std::string PatchCommand(const std::string& service, const std::string& ns, const std::string& port,
                         const std::string& name) {
  return "kubectl patch service " + service + (ns.empty() ? "" : " -n " + ns) +
         " -p '{\"spec\":{\"ports\":[{\"port\":" + port + ",\"targetPort\":\"" + name + "\"}]}}'";
}

std::string PatchCommand(const ServiceTarget& target, const std::string& name) {
  return PatchCommand(NameOf((*target.service)["metadata"]), NamespaceOf(*target.service),
                      std::to_string(target.service_port), name);
}

// Retargets each Service port that reaches the app's port to lameduck's port name, where that
// leaves no pod out during the rollout; says what to do about the others. `said`: the Service
// ports already spoken of (a Service may select several workloads).
void RetargetServices(const Workload& workload, const std::vector<Workload>& all, std::ostream& err,
                      std::map<Json*, std::unique_ptr<Editor>>& editors,
                      std::set<std::pair<const Json*, size_t>>& said) {
  const Plan& plan = *workload.plan;
  for (const ServiceTarget& target : plan.targets) {
    if (!said.insert({target.service, target.port_index}).second) continue;
    std::string port_text = target.label + ": port " + std::to_string(target.service_port);
    if (target.headless) {
      Say(err, "inject",
          port_text +
              " left as it is: a headless Service (clusterIP: None) gives clients the "
              "pods' addresses, and they connect to the ports they choose, not through "
              "lameduck");
      continue;
    }
    if (!target.name.empty()) {
      if (target.name == plan.port_name) {
        Say(err, "inject",
            port_text + " targets \"" + target.name +
                "\": it follows by name (lameduck where a pod has it, the app where not yet)");
      } else {
        Say(err, "inject",
            port_text + " targets \"" + target.name + "\", which stays the app's (another " +
                "container declares the name too): it does not reach lameduck; lameduck's port "
                "is \"" +
                plan.port_name + "\"");
      }
      continue;
    }
    std::string number = std::to_string(*target.number);
    std::string lacking = WhoLacks(target, plan.port_name, all);
    if (lacking == workload.label && plan.app_entry_name.empty()) {
      // A number becomes a name only where the running pods already declare it.
      Say(err, "inject",
          port_text + " left on " + number + " for now: the running pods' port " +
              std::to_string(plan.app_port) +
              " has no name, and a named targetPort would drop them from the Service until new "
              "pods are ready. Name the app's port in your source (name: " +
              plan.port_name + ") and it follows in one step; or, once the rollout is done: " +
              PatchCommand(target, plan.port_name));
      continue;
    }
    if (!lacking.empty()) {
      Say(err, "inject",
          port_text + " left on " + number + ": " + lacking +
              ", which it selects, would not take its traffic by the name \"" + plan.port_name +
              "\" (a running pod without it, or the name another container's)");
      continue;
    }
    auto& editor = editors[target.service];
    if (!editor) editor = std::make_unique<Editor>(*target.service);
    editor->Set(Pointer("/spec/ports") / target.port_index, "targetPort", plan.port_name);
    Say(err, "inject",
        port_text + " targetPort " + (target.implicit ? "(none: " + number + ")" : number) +
            " -> \"" + plan.port_name +
            "\" (old pods resolve it to the app, new pods to lameduck)");
  }
}

void SayWired(std::ostream& err, const Workload& workload) {
  const Plan& plan = *workload.plan;
  const InjectOptions& options = plan.options;
  std::string app_port = std::to_string(plan.app_port);
  std::string entry = plan.app_entry_name.empty() ? "" : " \"" + plan.app_entry_name + "\"";
  std::string renamed = plan.renamed_app_entry.empty()
                            ? ""
                            : " (its entry renamed \"" + plan.renamed_app_entry +
                                  "\": the name \"" + plan.port_name + "\" is lameduck's now)";
  Say(err, "inject",
      workload.label + ": wired: container " + plan.app_name + ", port " + app_port + entry +
          renamed + "; lameduck listens on " + std::to_string(plan.port) + " \"" + plan.port_name +
          "\" and forwards to 127.0.0.1:" + app_port +
          (plan.h2c.empty() ? "" : " over h2c (" + plan.h2c + ": --upstream-protocol=h2c)") +
          "; admin " + std::to_string(plan.admin_port) + "; " +
          (options.mode == SidecarMode::kNative ? "native sidecar" : "classic sidecar"));
  std::string chained;
  for (size_t index : plan.waiting) {
    const Json& container = (*workload.object)[workload.pod / "spec" / "containers" / index];
    chained += (chained.empty() ? "" : ", ") + NameOf(container) +
               (plan.chained.contains(index) ? " (then its own preStop)" : "");
  }
  Say(err, "inject", workload.label + ": preStop waits for the drain in: " + chained);
  auto seconds = [](milliseconds duration) { return FormatDuration(duration); };
  std::string arithmetic =
      "drain delay " + seconds(options.drain_delay) + " + drain timeout " +
      seconds(options.drain_timeout) +
      (plan.hook_sleep_seconds > 0
           ? " + the preStop's sleep " + std::to_string(plan.hook_sleep_seconds) + "s"
           : "") +
      " + app exit " + seconds(options.app_exit_timeout) + " + " +
      std::to_string(kGraceMarginSeconds) + "s margin = " + std::to_string(plan.grace_needed) +
      "s" + (plan.chained.empty() ? "" : ", and what the chained preStop takes");
  Say(err, "inject",
      workload.label + ": terminationGracePeriodSeconds " +
          (plan.grace == plan.grace_before
               ? std::to_string(plan.grace) + " kept (" + arithmetic + ")"
               : std::to_string(plan.grace_before) + " -> " + std::to_string(plan.grace) + " (" +
                     arithmetic + ")"));
  for (const std::string& note : workload.notes) Say(err, "inject", workload.label + ": " + note);
  if (plan.targets.empty()) {
    std::string patch = PatchCommand("NAME", "", "PORT", plan.port_name);
    Say(err, "inject",
        workload.label + ": no Service in the input reaches port " + app_port +
            (plan.renamed_app_entry.empty()
                 ? "; a Service reaches lameduck when it targets \"" + plan.port_name +
                       "\", once every running pod declares it (after this rollout): " + patch
                 : "; Services that target \"" + plan.port_name +
                       "\" by name follow by themselves; one that targets " + app_port +
                       " by number needs: " + patch));
  }
}

Result<manifest::Stream> ReadInput(std::istream& in) {
  std::string text(std::istreambuf_iterator<char>(in), {});
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
    return Error{
        "stdin is empty: pipe in manifests (kubectl get deploy,svc -o yaml, helm, "
        "kustomize build)"};
  }
  return manifest::Read(text);
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
    Say(err, "inject", parsed.error() + " (see lameduck inject --help)");
    return kExitUsage;
  }
  if (parsed->help) {
    out << InjectUsageText() << std::flush;
    return kExitOk;
  }
  auto read = ReadInput(in);
  if (!read) {
    Say(err, "inject", read.error());
    return kExitRefused;
  }
  manifest::Stream stream = std::move(read).value();
  try {
    std::vector<Json*> objects = ObjectsOf(stream);
    std::vector<Workload> workloads;
    std::vector<WiredService> wired_services;
    UndoAll(objects, err, "inject", &workloads, &wired_services);
    std::vector<Json*> services;
    std::vector<std::string> passed;
    for (Json* object : objects) {
      if (!object->is_object()) continue;
      if (IsService(*object)) {
        services.push_back(object);
      } else if (auto pod = PodOf(*object); !pod || At(*object, *pod) == nullptr) {
        std::string kind = StringAt(*object, "kind");
        if (StringAt(*object, "apiVersion").starts_with("batch/") &&
            (kind == "Job" || kind == "CronJob")) {
          Say(err, "inject",
              Label(*object) +
                  ": passed through: a Job's pods run to completion and are not "
                  "rolled, so there is nothing to drain");
        } else {
          passed.push_back(Label(*object));
        }
      }
    }

    std::map<Json*, std::unique_ptr<Editor>> service_editors;
    bool native_wired = false;
    // A workload that was wired and cannot be wired now (a bad annotation, say) is written as it
    // came, still wired: inject never takes lameduck out unless asked to.
    auto skip = [&](Workload& workload, const std::string& why) {
      if (workload.was_wired) {
        *workload.object = workload.as_wired;
        workload.kept_wired = true;
        Say(err, "inject", workload.label + ": kept as it came, wired: cannot rewire it: " + why);
      } else {
        Say(err, "inject", workload.label + ": skipped: " + why);
      }
      for (const std::string& note : workload.notes) {
        Say(err, "inject", workload.label + ": " + note);
      }
    };
    for (Workload& workload : workloads) {
      if (!workload.skipped.empty()) {
        Say(err, "inject", workload.label + ": skipped: " + workload.skipped);
        continue;
      }
      auto options = OptionsFor(workload, parsed->options);
      if (!options) {
        skip(workload, options.error());
        continue;
      }
      if (!options->enabled) {
        workload.disabled = true;
        Say(err, "inject",
            workload.label + ": skipped: lameduck.dev/inject is false" +
                (workload.was_wired ? " (lameduck taken out)" : ""));
        continue;
      }
      auto plan = MakePlan(workload, *options, services, workload.notes);
      if (!plan) {
        skip(workload, plan.error());
        continue;
      }
      workload.plan = std::move(*plan);
      Wire(*workload.object, workload.pod, *workload.plan);
      native_wired = native_wired || workload.plan->options.mode == SidecarMode::kNative;
      SayWired(err, workload);
    }
    std::set<std::pair<const Json*, size_t>> said;
    for (const Workload& workload : workloads) {
      if (workload.plan) RetargetServices(workload, workloads, err, service_editors, said);
    }
    for (auto& [service, editor] : service_editors) {
      editor->Record(Pointer("/metadata"), kRecordAnnotation);
    }
    // A Service retargeted before keeps that unless a workload it selects was taken out (or
    // rewired without it): one whose workloads are not in the input, or were kept wired as they
    // came, is written as it came too.
    for (WiredService& wired : wired_services) {
      if (service_editors.contains(wired.object)) continue;
      const Workload* kept = nullptr;
      bool decided = false;
      for (const Workload& w : workloads) {
        if (!w.original_pod.is_object() || !Selects(*wired.object, *w.object, w.original_pod)) {
          continue;
        }
        if (w.kept_wired) kept = &w;
        decided = decided || w.plan || w.disabled;
      }
      if (kept != nullptr || !decided) {
        *wired.object = std::move(wired.as_wired);
        Say(err, "inject",
            Label(*wired.object) + ": kept as it came: " +
                (kept != nullptr ? "as " + kept->label + " is"
                                 : std::string("no workload it selects is in the input")));
      }
    }
    if (native_wired) {
      Say(err, "inject",
          "native sidecars: Services find lameduck's port by name from Kubernetes 1.33 "
          "(EndpointSlices, kubernetes/kubernetes#128850); on an older cluster use --mode "
          "classic");
    }
    if (!passed.empty()) {
      std::string list;
      for (const std::string& label : passed) list += (list.empty() ? "" : ", ") + label;
      Say(err, "inject", "passed through unchanged: " + list);
    }
    out << manifest::Write(stream) << std::flush;
  } catch (const Json::exception& error) {
    // The checks look at every member before it is used; this is the backstop for a shape they
    // missed, so it is a refusal, never a crash or half a document.
    Say(err, "inject", std::string("cannot wire this input: ") + error.what());
    return kExitRefused;
  }
  err << std::flush;
  return kExitOk;
}

int RunUninject(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
                std::ostream& err) {
  if (args.size() == 1 && (args[0] == "--help" || args[0] == "-h")) {
    out << UninjectUsage() << std::flush;
    return kExitOk;
  }
  if (!args.empty()) {
    Say(err, "uninject", "takes no arguments (manifests come on stdin; see --help)");
    return kExitUsage;
  }
  auto read = ReadInput(in);
  if (!read) {
    Say(err, "uninject", read.error());
    return kExitRefused;
  }
  manifest::Stream stream = std::move(read).value();
  try {
    std::vector<Json*> objects = ObjectsOf(stream);
    std::vector<Workload> workloads;
    UndoAll(objects, err, "uninject", &workloads, nullptr);
    for (const Workload& workload : workloads) {
      if (!workload.skipped.empty()) Say(err, "uninject", workload.label + ": " + workload.skipped);
    }
    // A Service that targets a name the restored pods no longer declare (lameduck's, patched in
    // by hand as inject advised) would lose every pod: say so.
    for (Json* object : objects) {
      if (!object->is_object() || !IsService(*object)) continue;
      for (const Workload& workload : workloads) {
        if (!workload.was_wired || !Selects(*object, *workload.object, workload.original_pod)) {
          continue;
        }
        for (const ServiceTarget& target : TargetsOf(*object)) {
          if (target.name.empty() || Resolve(workload.original_pod, target.name)) continue;
          Say(err, "uninject",
              target.label + ": port " + std::to_string(target.service_port) + " targets \"" +
                  target.name + "\", which " + workload.label +
                  " no longer declares: point it back at the app's port number, or its pods "
                  "drop out of it");
        }
      }
    }
    out << manifest::Write(stream) << std::flush;
  } catch (const Json::exception& error) {
    Say(err, "uninject", std::string("cannot read this input: ") + error.what());
    return kExitRefused;
  }
  return kExitOk;
}

}  // namespace lameduck::coordinator
