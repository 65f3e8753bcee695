// Option parsing. One table, Options(), describes every option once: its name, how its text
// becomes a Config field, how that field is shown in --help and /status. The command line, the
// environment and the --config file are each read into the same form (the texts given per
// option, and where they came from), merged by precedence, then applied through the table. Adding
// an option is one row in the table plus its field in Config.
#include "coordinator/config/config.h"

#include <sys/un.h>

#include <algorithm>
#include <functional>
#include <span>
#include <type_traits>
#include <utility>

#include "coordinator/config/option_parser.h"
#include "coordinator/config/text.h"

namespace lameduck::coordinator {
namespace {

using std::chrono::milliseconds;
using Json = nlohmann::json;
using Values = std::vector<std::string>;

constexpr std::string_view kEnvPrefix = "LAMEDUCK_";
constexpr size_t kMaxConfigFileBytes = 1 << 20;
constexpr size_t kMaxTokenFileBytes = 64 << 10;
constexpr size_t kUsageWidth = 100;

template <typename T>
struct Named {
  std::string_view name;
  T value;
};
constexpr Named<LogFormat> kLogFormats[] = {{"json", LogFormat::kJson}, {"text", LogFormat::kText}};
constexpr Named<LogLevel> kLogLevels[] = {{"debug", LogLevel::kDebug},
                                          {"info", LogLevel::kInfo},
                                          {"warn", LogLevel::kWarn},
                                          {"error", LogLevel::kError}};
constexpr Named<proxy::UpstreamProtocol> kUpstreamProtocols[] = {
    {"auto", proxy::UpstreamProtocol::kAuto},
    {"http1", proxy::UpstreamProtocol::kHttp1},
    {"h2c", proxy::UpstreamProtocol::kH2c}};
constexpr Named<proxy::LongLivedDrain> kLongLivedDrains[] = {
    {"close", proxy::LongLivedDrain::kClose}, {"wait", proxy::LongLivedDrain::kWait}};

// "a, b or c".
template <typename T>
std::string JoinNames(std::span<const Named<T>> choices) {
  std::string joined;
  for (size_t i = 0; i < choices.size(); ++i) {
    if (i > 0) joined += i + 1 == choices.size() ? " or " : ", ";
    joined += choices[i].name;
  }
  return joined;
}

// Value checks for the string options. Each returns the value to store.

Result<std::string> CheckSocketPath(std::string_view text) {
  std::string_view path = text.starts_with("unix:") ? text.substr(5) : text;
  if (path.empty()) return InvalidValue("socket path", text, "empty");
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return InvalidValue(
        "socket path", text,
        "longer than " + std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes");
  }
  return std::string(path);
}

Result<std::string> CheckHttpPath(std::string_view text) {
  // It goes verbatim into a request line (RFC 9112 section 3), where a space would split it.
  if (!text.starts_with('/') || HasSpaceOrControl(text)) {
    return InvalidValue("path", text, "must start with / and have no spaces, e.g. /healthz");
  }
  return std::string(text);
}

Result<std::string> CheckNonEmpty(std::string_view text) {
  if (text.empty()) return InvalidValue("value", text, "must not be empty");
  return std::string(text);
}

Result<std::string> CheckHttpUrl(std::string_view text) {
  std::string lower = ToLower(text);
  if (lower.starts_with("https://")) {
    return InvalidValue("URL", text,
                        "https is not supported: lameduck speaks plain HTTP to the app");
  }
  constexpr std::string_view kScheme = "http://";
  if (!lower.starts_with(kScheme) || text.size() == kScheme.size() || text[kScheme.size()] == '/' ||
      HasSpaceOrControl(text)) {
    return InvalidValue("URL", text,
                        "must be http://HOST[:PORT]/PATH, e.g. http://127.0.0.1:3000/quit");
  }
  return std::string(text);
}

Result<std::string> CheckConfigPath(std::string_view text) {
  if (text.empty()) return InvalidValue("file name", text, "must not be empty");
  return std::string(text);
}

// How one option's text becomes part of a Config, and how that part is shown.
struct Binding {
  // Parses values (one, or several for a repeatable option) into the config. The error does not
  // name the option: the caller prefixes where the value came from.
  std::function<Result<void>(Config&, const Values&)> apply;
  std::function<std::string(const Config&)> describe;  // for --help; empty when unset
  std::function<Json(const Config&)> to_json;          // for /status; null when unset or hidden
  std::string_view json_suffix;                        // the unit, for the /status key
};

// Config fields live in Config itself or in its ProxyOptions.
template <typename Owner, typename T, typename C>
auto& FieldOf(C& config, T Owner::*member) {
  if constexpr (std::is_same_v<Owner, proxy::ProxyOptions>) {
    return config.proxy.*member;
  } else {
    static_assert(std::is_same_v<Owner, Config>);
    return config.*member;
  }
}

// One value: parse(text) -> Result<V>, stored into member (V assignable to T).
template <typename Owner, typename T, typename Parse, typename Describe, typename Show>
Binding Single(T Owner::*member, Parse parse, Describe describe, Show show,
               std::string_view json_suffix = "") {
  return Binding{
      .apply = [member, parse](Config& config, const Values& values) -> Result<void> {
        auto parsed = parse(values.back());
        if (!parsed) return Error{parsed.error()};
        FieldOf(config, member) = std::move(parsed).value();
        return {};
      },
      .describe = [member,
                   describe](const Config& config) { return describe(FieldOf(config, member)); },
      .to_json = [member, show](const Config& config) { return show(FieldOf(config, member)); },
      .json_suffix = json_suffix,
  };
}

enum class Zero { kAllowed, kRejected };

template <typename Owner>
Binding Duration(milliseconds Owner::*member, Zero zero) {
  auto parse = [zero](std::string_view text) -> Result<milliseconds> {
    auto duration = ParseDuration(text);
    if (duration && zero == Zero::kRejected && duration->count() == 0) {
      return InvalidValue("duration", text, "must be more than 0");
    }
    return duration;
  };
  return Single(
      member, parse, FormatDuration, [](milliseconds d) { return Json(d.count()); }, "_ms");
}

Binding OptionalDuration(std::optional<milliseconds> Config::*member) {
  auto parse = [](std::string_view text) -> Result<std::optional<milliseconds>> {
    auto duration = ParseDuration(text);
    if (!duration) return Error{duration.error()};
    if (duration->count() == 0) return InvalidValue("duration", text, "must be more than 0");
    return std::optional<milliseconds>(*duration);
  };
  return Single(
      member, parse,
      [](const std::optional<milliseconds>& d) { return d ? FormatDuration(*d) : ""; },
      [](const std::optional<milliseconds>& d) { return d ? Json(d->count()) : Json(); }, "_ms");
}

std::string FormatFraction(double value) {
  char text[32];
  auto [end, ec] = std::to_chars(text, text + sizeof(text), value);
  return ec == std::errc() ? std::string(text, end) : std::to_string(value);
}

// A number strictly between 0 and 1, as "0.05" or "5e-2".
Binding Fraction(double Config::*member) {
  auto parse = [](std::string_view text) -> Result<double> {
    double value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
      return InvalidValue("number", text, "use a decimal number, e.g. 0.05");
    }
    if (!(value > 0 && value < 1)) {
      return InvalidValue("number", text, "must be between 0 and 1, e.g. 0.05");
    }
    return value;
  };
  return Single(member, parse, FormatFraction, [](double value) { return Json(value); });
}

// A byte count with bounds, such as "64KiB".
template <typename Owner>
Binding Size(size_t Owner::*member, size_t min, size_t max) {
  auto parse = [min, max](std::string_view text) -> Result<size_t> {
    auto size = ParseSize(text);
    if (size && (*size < min || *size > max)) {
      return InvalidValue("size", text,
                          "must be between " + FormatSize(min) + " and " + FormatSize(max));
    }
    return size;
  };
  return Single(member, parse, FormatSize, [](size_t bytes) { return Json(bytes); });
}

// A plain number of things, from min to max. No suffixes: "10k connections" is not 10240.
template <typename Owner>
Binding Count(size_t Owner::*member, size_t min, size_t max = SIZE_MAX) {
  auto parse = [min, max](std::string_view text) -> Result<size_t> {
    auto count = ParseDigits<size_t>(text);
    if (!count) return InvalidValue("number", text, "use digits, e.g. 10000");
    if (*count < min)
      return InvalidValue("number", text, "must be at least " + std::to_string(min));
    if (*count > max) return InvalidValue("number", text, "must be at most " + std::to_string(max));
    return *count;
  };
  return Single(
      member, parse, [](size_t n) { return std::to_string(n); }, [](size_t n) { return Json(n); });
}

Binding Pid(std::optional<int> Config::*member) {
  auto parse = [](std::string_view text) -> Result<int> {
    auto pid = ParseDigits<int>(text);
    if (!pid || *pid <= 0) return InvalidValue("pid", text, "must be a positive integer");
    return *pid;
  };
  return Single(
      member, parse, [](const std::optional<int>& pid) { return pid ? std::to_string(*pid) : ""; },
      [](const std::optional<int>& pid) { return pid ? Json(*pid) : Json(); });
}

Binding Signal(int Config::*member) {
  return Single(member, ParseSignal, SignalName,
                [](int number) { return Json(SignalName(number)); });
}

enum class Port { kAnyPort, kNotZero };

template <typename Owner>
Binding AddressField(proxy::Address Owner::*member, Port port) {
  auto parse = [port](std::string_view text) -> Result<proxy::Address> {
    auto address = proxy::ParseAddress(text);
    if (address && port == Port::kNotZero && address->kind == proxy::Address::Kind::kTcp &&
        address->port() == 0) {
      return Error{"port 0 in " + Quote(text) + " cannot be connected to"};
    }
    return address;
  };
  auto text = [](const proxy::Address& address) { return address.text; };
  return Single(member, parse, text, [text](const proxy::Address& a) { return Json(text(a)); });
}

// One or more addresses: the option repeated, comma-separated, or a JSON array.
template <typename Owner>
Binding AddressList(std::vector<proxy::Address> Owner::*member) {
  return Binding{
      .apply = [member](Config& config, const Values& values) -> Result<void> {
        std::vector<proxy::Address> addresses;
        for (const std::string& value : values) {
          std::string_view rest = value;
          for (;;) {
            size_t comma = rest.find(',');
            std::string_view item = rest.substr(0, comma);
            if (item.empty()) return Error{"empty address in " + Quote(value)};
            auto address = proxy::ParseAddress(item);
            if (!address) return Error{address.error()};
            addresses.push_back(std::move(address).value());
            if (comma == std::string_view::npos) break;
            rest.remove_prefix(comma + 1);
          }
        }
        FieldOf(config, member) = std::move(addresses);
        return {};
      },
      .describe =
          [member](const Config& config) {
            std::string joined;
            for (const proxy::Address& address : FieldOf(config, member)) {
              joined += (joined.empty() ? "" : ",") + address.text;
            }
            return joined;
          },
      .to_json =
          [member](const Config& config) {
            Json list = Json::array();
            for (const proxy::Address& address : FieldOf(config, member)) {
              list.push_back(address.text);
            }
            return list;
          },
      .json_suffix = "",
  };
}

// kSecret shows only "set"; kUrl hides the user:password of http://user:password@host/.
enum class Visibility { kShown, kSecret, kUrl };

std::string Shown(const std::string& value, Visibility visibility) {
  if (visibility == Visibility::kSecret) return "set";
  if (visibility == Visibility::kUrl) return HideUrlCredentials(value);
  return value;
}

Binding Text(std::optional<std::string> Config::*member,
             Result<std::string> (*check)(std::string_view),
             Visibility visibility = Visibility::kShown) {
  auto show = [visibility](const std::optional<std::string>& value) {
    return value ? Json(Shown(*value, visibility)) : Json();
  };
  // Only defaults are described, and no default is a secret: an unset value describes as "".
  auto describe = [visibility](const std::optional<std::string>& value) {
    return value && visibility == Visibility::kShown ? *value : "";
  };
  return Single(member, check, describe, show);
}

// The file's contents, surrounding whitespace trimmed (a secret mounted from Kubernetes or
// written by `echo` ends in a newline). Shown neither in --help nor in /status: the token field
// it fills is, as "set".
Binding TokenFile(std::optional<std::string> Config::*member) {
  return Binding{
      .apply = [member](Config& config, const Values& values) -> Result<void> {
        const std::string& path = values.back();
        auto contents = ReadFile(path, kMaxTokenFileBytes);
        if (!contents) return Error{"cannot read " + Quote(path) + " (" + contents.error() + ")"};
        std::string_view token = Trim(*contents);
        if (token.empty()) return Error{Quote(path) + " is empty"};
        if (HasSpaceOrControl(token)) {
          return Error{"the token in " + Quote(path) +
                       " has whitespace or control characters inside (value not shown)"};
        }
        config.*member = std::string(token);
        return {};
      },
      .describe = [](const Config&) { return std::string(); },
      .to_json = [](const Config&) { return Json(); },
      .json_suffix = "",
  };
}

Binding ConfigPath(std::string Config::*member) {
  return Single(
      member, CheckConfigPath, [](const std::string& path) { return path; },
      [](const std::string& path) { return path.empty() ? Json() : Json(path); });
}

template <typename Owner, typename T, size_t N>
Binding Choice(T Owner::*member, std::string_view what, const Named<T> (&choices)[N]) {
  std::span<const Named<T>> all(choices);
  auto parse = [what, all](std::string_view text) -> Result<T> {
    std::string lower = ToLower(text);
    for (const Named<T>& choice : all) {
      if (choice.name == lower) return choice.value;
    }
    return InvalidValue(what, text, "use " + JoinNames(all));
  };
  auto name = [](T value) { return std::string(ToString(value)); };
  return Single(member, parse, name, [name](T value) { return Json(name(value)); });
}

enum class Repeat { kLastWins, kAccumulate };

struct Option {
  std::string_view name;  // without "--"; the JSON key; the environment variable's stem
  std::string_view metavar;
  Binding binding;
  std::string_view help;
  Repeat repeat = Repeat::kLastWins;
};

// Every option, in --help order.
const std::vector<Option>& Options() {
  using P = proxy::ProxyOptions;
  using C = Config;
  // llhttp has no limit on a request head of its own (Node counts header bytes in its own
  // callbacks), so the proxy must set one. 1MiB bounds the memory one connection can pin;
  // below 1KiB ordinary browser requests (cookies, user agent) would already get 431.
  constexpr size_t kMinHeaderBytes = 1 << 10;
  constexpr size_t kMaxWorkers = 64;
  constexpr size_t kMaxHeaderBytes = 1 << 20;
  static const std::vector<Option> kOptions = {
      {"listen", "ADDR", AddressList(&P::listen),
       "where clients connect; repeat or comma-separate for several", Repeat::kAccumulate},
      {"upstream", "ADDR", AddressField(&P::upstream, Port::kNotZero), "the app"},
      {"upstream-protocol", "PROTO",
       Choice(&P::upstream_protocol, "upstream protocol", kUpstreamProtocols),
       "how to speak to the app: auto (as the client spoke: HTTP/2 clients over h2c), http1 "
       "(everything over HTTP/1.1) or h2c (everything over h2c)"},
      {"admin", "ADDR", AddressField(&C::admin, Port::kAnyPort),
       "admin API over TCP: /ready, /live, /status, /metrics, /drain"},
      {"admin-socket", "PATH", Text(&C::admin_socket, CheckSocketPath),
       "the admin API also on this unix socket (mode 0600)"},
      {"admin-token", "TOKEN", Text(&C::admin_token, CheckToken, Visibility::kSecret),
       "lets the drain forms be used from beyond loopback, with Authorization: Bearer TOKEN "
       "(prefer --admin-token-file: arguments are visible to ps)"},
      {"admin-token-file", "PATH", TokenFile(&C::admin_token),
       "read the admin token from this file (surrounding whitespace trimmed)"},
      {"upstream-ready", "PATH", Text(&C::upstream_ready, CheckHttpPath),
       "a path on the app; /ready then also needs it to answer 2xx"},
      {"drain-delay", "DUR", Duration(&C::drain_delay, Zero::kAllowed),
       "after a drain starts, keep accepting and serving (with Connection: close) while "
       "endpoint removal propagates; may be 0"},
      {"drain-timeout", "DUR", Duration(&C::drain_timeout, Zero::kRejected),
       "from drain start to force-closing whatever is still open"},
      {"drain-delay-max", "DUR", OptionalDuration(&C::drain_delay_max),
       "end the accept grace on evidence instead of at --drain-delay: once no new connection has "
       "come for long enough that a router with --drain-min-share of the traffic would have sent "
       "one (but never before --drain-delay nor after this); a quiet pod waits all of it"},
      {"drain-quiet-risk", "P", Fraction(&C::drain_quiet_risk),
       "with --drain-delay-max: the accepted chance that such a router was silent by luck"},
      {"drain-min-share", "S", Fraction(&C::drain_min_share),
       "with --drain-delay-max: the smallest share of the pre-drain arrival rate that one router "
       "may carry and still be waited for (0.05: a twentieth)"},
      {"termination-grace", "DUR", OptionalDuration(&C::termination_grace),
       "the pod's terminationGracePeriodSeconds: start-up refuses settings that do not fit in it "
       "with 2s to spare, and the drain's deadline never passes what it leaves"},
      {"drain-spread", "DUR", Duration(&C::drain_spread, Zero::kAllowed),
       "when the accept grace ends, close idle connections and end long-lived ones evenly over "
       "this, so that their clients do not all reconnect at once; 0 closes them all at once"},
      {"drain-websocket", "MODE", Choice(&P::drain_websocket, "WebSocket drain", kLongLivedDrains),
       "close: a drain sends each WebSocket client Close 1001 (Going Away) after the message in "
       "flight; wait: leave them to the app (cut at --drain-timeout)"},
      {"drain-sse", "MODE", Choice(&P::drain_sse, "SSE drain", kLongLivedDrains),
       "close: a drain ends each Server-Sent Events response after a whole event (the client "
       "reconnects with Last-Event-ID); wait: leave them to the app"},
      {"drain-grpc", "MODE", Choice(&P::drain_grpc, "gRPC drain", kLongLivedDrains),
       "close: a drain ends each gRPC stream (a response of two messages or more) after a whole "
       "message with UNAVAILABLE, which clients retry; wait: leave them to the app"},
      {"app-pid", "PID", Pid(&C::app_pid), "once drained, signal this process"},
      {"app-pidfile", "PATH", Text(&C::app_pidfile, CheckNonEmpty),
       "once drained, signal the process whose pid is in this file"},
      {"app-process", "NAME", Text(&C::app_process, CheckNonEmpty),
       "once drained, signal the processes with this name (shared PID namespace)"},
      {"app-exit-url", "URL", Text(&C::app_exit_url, CheckHttpUrl, Visibility::kUrl),
       "once drained, POST to this http:// URL"},
      {"app-signal", "SIGNAL", Signal(&C::app_signal),
       "the signal for --app-pid, --app-pidfile and --app-process"},
      {"app-exit-timeout", "DUR", Duration(&C::app_exit_timeout, Zero::kRejected),
       "how long to wait for the app to exit; a launched APP then gets SIGKILL"},
      {"header-timeout", "DUR", Duration(&P::header_timeout, Zero::kRejected),
       "a request head must arrive within this, else 408"},
      {"idle-timeout", "DUR", Duration(&P::idle_timeout, Zero::kRejected),
       "closes an idle keep-alive client connection or a stalled transfer"},
      {"connect-timeout", "DUR", Duration(&P::connect_timeout, Zero::kRejected),
       "connecting to the upstream, else 502"},
      {"upstream-timeout", "DUR", Duration(&P::upstream_timeout, Zero::kRejected),
       "the upstream's response head must arrive within this, else 504"},
      {"max-header-bytes", "SIZE", Size(&P::max_header_bytes, kMinHeaderBytes, kMaxHeaderBytes),
       "request head limit, 1KiB to 1MiB, else 431"},
      {"max-connections", "N", Count(&P::max_connections, 1),
       "client connections at once; more wait in the listen backlog"},
      {"termination-log", "PATH", Text(&C::termination_log, CheckNonEmpty),
       "at exit, write how the last drain went (one paragraph) here, for kubectl describe pod "
       "(default: /dev/termination-log when it exists and is writable, as in a pod)"},
      {"workers", "N", Count(&C::workers, 1, kMaxWorkers),
       "event loops (threads) serving the listeners, 1 to 64; one per core the pod may use"},
      {"log-format", "FORMAT", Choice(&C::log_format, "log format", kLogFormats),
       "json (one object a line) or text (for people)"},
      {"log-level", "LEVEL", Choice(&C::log_level, "log level", kLogLevels),
       "debug, info, warn or error"},
      {"config", "FILE", ConfigPath(&C::config_file),
       "read options from a JSON object of option names, e.g. {\"drain-delay\": \"5s\"}"},
  };
  return kOptions;
}

// At most one option of each group may be given, whatever the sources: a token in the
// environment and a token file on the command line are more likely a mistake than an override.
constexpr std::string_view kTokenOptions[] = {"admin-token", "admin-token-file"};
constexpr std::string_view kAppExitOptions[] = {"app-pid", "app-pidfile", "app-process",
                                                "app-exit-url"};
struct ExclusiveGroup {
  std::span<const std::string_view> names;
  std::string_view why;
};
constexpr ExclusiveGroup kExclusiveGroups[] = {
    {kTokenOptions, "give the admin token one way"},
    {kAppExitOptions, "choose one way to tell the app to exit"},
};

constexpr size_t kNotFound = static_cast<size_t>(-1);

size_t FindOption(std::string_view name) {
  const auto& options = Options();
  for (size_t i = 0; i < options.size(); ++i) {
    if (options[i].name == name) return i;
  }
  return kNotFound;
}

// The command line's view of Options(): every option takes a value.
std::span<const OptionSpec> OptionSpecs() {
  static const std::vector<OptionSpec> kSpecs = [] {
    std::vector<OptionSpec> specs;
    for (const Option& option : Options()) specs.push_back({option.name});
    return specs;
  }();
  return kSpecs;
}

std::string EnvName(std::string_view option) {
  std::string name = std::string(kEnvPrefix) + ToUpper(option);
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

// Lowest precedence first.
enum class Source { kFile, kEnvironment, kCommandLine };

// The text given for one option by the winning source.
struct Given {
  Source source;
  Values values;
  std::string label;    // prefixes an error about the value: "--listen", "LAMEDUCK_LISTEN", ...
  std::string mention;  // names it within a sentence
};

class Gathered {
 public:
  Gathered() : given_(Options().size()) {}

  // Keeps the value of the highest-precedence source. Within one source a repeatable option
  // accumulates, any other the last value wins (as with most command-line tools).
  void Offer(size_t index, Given given) {
    std::optional<Given>& slot = given_[index];
    if (!slot || slot->source < given.source) {
      slot = std::move(given);
    } else if (slot->source == given.source) {
      if (Options()[index].repeat == Repeat::kAccumulate) {
        slot->values.insert(slot->values.end(), given.values.begin(), given.values.end());
      } else {
        slot->values = std::move(given.values);
      }
    }
  }

  const std::optional<Given>& operator[](size_t index) const { return given_[index]; }
  const std::optional<Given>& ByName(std::string_view name) const {
    return given_[FindOption(name)];
  }

 private:
  std::vector<std::optional<Given>> given_;
};

void ReadCommandLine(const std::vector<std::string>& args, Gathered& gathered,
                     std::vector<std::string>& app_command) {
  auto line = ParseCommandLine(
      args, {.options = OptionSpecs(),
             .double_dash = DoubleDash::kEndsOptions,
             .stray_hint = "options start with --; an APP to launch goes after \"--\"",
             .unknown_hint = "see lameduck --help"});
  if (!line) throw ConfigError(line.error());
  CommandLine parsed = std::move(line).value();
  for (ParsedOption& option : parsed.options) {
    gathered.Offer(
        option.index,
        Given{Source::kCommandLine, {std::move(option.value)}, option.label, option.label});
  }
  if (parsed.after_double_dash) {
    if (parsed.after_double_dash->empty()) throw ConfigError("missing APP after \"--\"");
    app_command = std::move(*parsed.after_double_dash);
  }
}

// Only the variables of known options are read. Other LAMEDUCK_* variables are ignored on
// purpose: Kubernetes itself sets some for a Service named "lameduck" (LAMEDUCK_PORT,
// LAMEDUCK_SERVICE_HOST: service links, on by default), and a pod must not fail over those.
// An empty variable counts as unset, as a pod spec or a Helm template writes "not set".
void ReadEnvironment(const std::map<std::string, std::string>& env, Gathered& gathered) {
  const auto& options = Options();
  for (size_t i = 0; i < options.size(); ++i) {
    std::string name = EnvName(options[i].name);
    auto it = env.find(name);
    if (it == env.end() || it->second.empty()) continue;
    gathered.Offer(i, Given{Source::kEnvironment, {it->second}, name, name});
  }
}

// nlohmann reports a byte offset; people's editors count lines and columns.
std::string DescribePosition(std::string_view text, size_t byte) {
  size_t offset = std::min(byte == 0 ? 0 : byte - 1, text.size());
  size_t line_start = text.rfind('\n', offset == 0 ? std::string_view::npos : offset - 1);
  line_start = line_start == std::string_view::npos ? 0 : line_start + 1;
  size_t line = 1 + static_cast<size_t>(std::count(text.begin(), text.begin() + offset, '\n'));
  return "byte " + std::to_string(byte) + " (line " + std::to_string(line) + ", column " +
         std::to_string(offset - line_start + 1) + ")";
}

// A JSON value as option text: strings as they are, numbers as written, and for a repeatable
// option an array of strings.
Result<Values> JsonToValues(const Json& value, Repeat repeat) {
  if (value.is_string()) return Values{value.get<std::string>()};
  if (value.is_number()) return Values{value.dump()};
  if (value.is_array() && repeat == Repeat::kAccumulate) {
    if (value.empty()) return Error{"empty list"};
    Values values;
    for (const Json& item : value) {
      if (!item.is_string()) return Error{"expected strings in the list, got " + item.dump()};
      values.push_back(item.get<std::string>());
    }
    return values;
  }
  return Error{std::string(repeat == Repeat::kAccumulate ? "expected a string or a list of strings"
                                                         : "expected a string or a number") +
               ", got " + value.dump()};
}

void ReadConfigFile(const Given& config_option, Gathered& gathered) {
  const std::string& path = config_option.values.back();
  if (path.empty()) throw ConfigError(config_option.label + ": missing value");
  std::string origin = config_option.label + " " + path;
  auto text = ReadFile(path, kMaxConfigFileBytes);
  if (!text) throw ConfigError(origin + ": cannot read file (" + text.error() + ")");
  Json document;
  try {
    document = Json::parse(*text);
  } catch (const Json::parse_error& error) {
    throw ConfigError(origin + ": invalid JSON at " + DescribePosition(*text, error.byte));
  } catch (const Json::exception& error) {  // {"max-connections": 1e400} (fuzz_config)
    throw ConfigError(origin + ": unusable JSON (" + error.what() + ")");
  }
  if (!document.is_object()) {
    throw ConfigError(origin +
                      ": expected a JSON object of options, e.g. {\"drain-delay\": \"5s\"}");
  }
  const auto& options = Options();
  for (const auto& [key, value] : document.items()) {
    size_t index = FindOption(key);
    if (index == kNotFound) {
      auto closest = ClosestOptionName(key, OptionSpecs());
      throw ConfigError(origin + ": unknown key " + Quote(key) +
                        (closest ? " (did you mean " + Quote(*closest) + "?)" : ""));
    }
    if (key == "config") throw ConfigError(origin + ": a config file cannot name another one");
    std::string label = origin + ": key " + Quote(key);
    auto values = JsonToValues(value, options[index].repeat);
    if (!values) throw ConfigError(label + ": " + values.error());
    gathered.Offer(index, Given{Source::kFile, std::move(values).value(), label,
                                Quote(key) + " in " + origin});
  }
}

void CheckExclusive(const Gathered& gathered, const std::vector<std::string>& app_command) {
  for (const ExclusiveGroup& group : kExclusiveGroups) {
    const Given* first = nullptr;
    for (std::string_view name : group.names) {
      const auto& given = gathered.ByName(name);
      if (!given) continue;
      if (first != nullptr) {
        throw ConfigError(first->mention + " and " + given->mention + " cannot be used together (" +
                          std::string(group.why) + ")");
      }
      first = &*given;
    }
  }
  if (app_command.empty()) return;
  for (std::string_view name : kAppExitOptions) {
    if (const auto& given = gathered.ByName(name)) {
      throw ConfigError(given->mention +
                        " cannot be used with an APP after \"--\" (lameduck signals the APP it "
                        "launched itself)");
    }
  }
}

// Appends `text` wrapped at kUsageWidth, continuation lines indented by `indent`, then `tail`,
// which is never split (a default such as "(default: 0.0.0.0:8080)" reads as one piece).
void AppendWrapped(std::string& out, std::string_view text, size_t column, size_t indent,
                   std::string_view tail = "") {
  std::vector<std::string_view> words;
  for (size_t start = 0; start < text.size();) {
    size_t space = std::min(text.find(' ', start), text.size());
    words.push_back(text.substr(start, space - start));
    start = space + 1;
  }
  if (!tail.empty()) words.push_back(tail);
  for (std::string_view word : words) {
    if (column > indent && column + 1 + word.size() > kUsageWidth) {
      out += '\n';
      out.append(indent, ' ');
      column = indent;
    } else if (column > indent) {
      out += ' ';
      ++column;
    }
    out += word;
    column += word.size();
  }
  out += '\n';
}

std::string BuildUsage() {
  std::string usage =
      "Usage:\n"
      "  lameduck [OPTIONS] [-- APP [ARGS...]]   run the proxy; with APP, launch and supervise "
      "it\n"
      "  lameduck drain [--admin ADDR | --admin-socket PATH] [--token T] [--wait] [--timeout "
      "DUR]\n"
      "                 [--then-sleep DUR | --then -- CMD [ARGS...]]\n"
      "  lameduck inject [--mode native|classic] [--port N] [--app-port N] ... < in.yaml > "
      "out.yaml\n"
      "  lameduck uninject < wired.yaml > in.yaml\n"
      "  lameduck report [FILE|-] [--svg OUT]    a drain's timeline from the event log\n"
      "  lameduck install PATH\n"
      "  lameduck version\n\n";
  AppendWrapped(usage,
                "Options are --name VALUE or --name=VALUE. Each can also come from the "
                "environment (LAMEDUCK_DRAIN_DELAY for --drain-delay) or from --config FILE.json "
                "({\"drain-delay\": \"5s\"}); the command line wins over the environment, the "
                "environment over the file. Addresses are HOST:PORT, [V6]:PORT or unix:/path; "
                "durations 250ms, 5s, 2m, 1h; sizes 65536, 64KiB, 1MiB.",
                0, 0);
  usage += '\n';
  const Config defaults{};
  size_t width = 0;
  for (const Option& option : Options()) {
    width = std::max(width, option.name.size() + option.metavar.size() + 3);
  }
  const size_t indent = 2 + width + 2;
  for (const Option& option : Options()) {
    std::string head = "  --" + std::string(option.name) + " " + std::string(option.metavar);
    usage += head + std::string(indent - head.size(), ' ');
    std::string value = option.binding.describe(defaults);
    AppendWrapped(usage, option.help, indent, indent,
                  "(default: " + (value.empty() ? "none" : value) + ")");
  }
  usage += '\n';
  AppendWrapped(usage,
                "At most one of --app-pid, --app-pidfile, --app-process and --app-exit-url, and "
                "none of them with an APP: a launched APP gets SIGTERM once drained.",
                0, 0);
  return usage;
}

// Settings that are fine one by one but not together.
void CheckTogether(const Config& config, const Gathered& gathered) {
  if (config.drain_delay_max && *config.drain_delay_max < config.drain_delay) {
    throw ConfigError(gathered.ByName("drain-delay-max")->label + ": " +
                      FormatDuration(*config.drain_delay_max) + " is shorter than --drain-delay " +
                      FormatDuration(config.drain_delay) + ", the accept grace's minimum");
  }
  // The deadline counts from the drain's start: a grace that reaches it leaves what it accepted
  // last no time to finish.
  if (config.drain_delay_max && *config.drain_delay_max >= config.drain_timeout) {
    throw ConfigError(gathered.ByName("drain-delay-max")->label + ": " +
                      FormatDuration(*config.drain_delay_max) + " is not shorter than " +
                      "--drain-timeout " + FormatDuration(config.drain_timeout) +
                      ", which counts from the drain's start");
  }
  if (!config.termination_grace) return;
  milliseconds grace = MaxAcceptGrace(config);
  milliseconds needed =
      grace + config.drain_timeout + config.app_exit_timeout + kDefaults.budget_spare;
  if (needed <= *config.termination_grace) return;
  throw ConfigError(
      gathered.ByName("termination-grace")->label + ": " +
      FormatDuration(*config.termination_grace) + " is too short: accept grace up to " +
      FormatDuration(grace) + " + drain timeout " + FormatDuration(config.drain_timeout) +
      " + app exit timeout " + FormatDuration(config.app_exit_timeout) + " + " +
      FormatDuration(kDefaults.budget_spare) + " to spare = " + FormatDuration(needed) +
      "; raise terminationGracePeriodSeconds to " + std::to_string((needed.count() + 999) / 1000) +
      " or shorten these");
}

}  // namespace

std::string_view ToString(LogFormat format) {
  switch (format) {
    case LogFormat::kJson:
      return "json";
    case LogFormat::kText:
      return "text";
  }
  return "unknown";
}

std::string_view ToString(proxy::LongLivedDrain drain) {
  return drain == proxy::LongLivedDrain::kClose ? "close" : "wait";
}

std::string_view ToString(proxy::UpstreamProtocol protocol) {
  switch (protocol) {
    case proxy::UpstreamProtocol::kAuto:
      return "auto";
    case proxy::UpstreamProtocol::kHttp1:
      return "http1";
    case proxy::UpstreamProtocol::kH2c:
      return "h2c";
  }
  return "auto";
}

std::string_view ToString(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "unknown";
}

proxy::ProxyOptions DefaultProxyOptions() {
  proxy::ProxyOptions options;
  options.listen = {
      proxy::ParseAddress("0.0.0.0:" + std::to_string(kDefaults.listen_port)).value()};
  options.upstream =
      proxy::ParseAddress("127.0.0.1:" + std::to_string(kDefaults.upstream_port)).value();
  return options;
}

proxy::Address DefaultAdminAddress() {
  return proxy::ParseAddress("0.0.0.0:" + std::to_string(kDefaults.admin_port)).value();
}

Config ParseConfig(const std::vector<std::string>& args,
                   const std::map<std::string, std::string>& env) {
  Config config;
  Gathered gathered;
  ReadCommandLine(args, gathered, config.app_command);
  ReadEnvironment(env, gathered);
  // The file is read only once the command line and the environment said which one it is.
  if (const auto& config_option = gathered.ByName("config")) {
    ReadConfigFile(*config_option, gathered);
  }
  CheckExclusive(gathered, config.app_command);
  const auto& options = Options();
  for (size_t i = 0; i < options.size(); ++i) {
    const auto& given = gathered[i];
    if (!given) continue;
    if (auto applied = options[i].binding.apply(config, given->values); !applied) {
      throw ConfigError(given->label + ": " + applied.error());
    }
  }
  CheckTogether(config, gathered);
  return config;
}

milliseconds MaxAcceptGrace(const Config& config) {
  return config.drain_delay_max.value_or(config.drain_delay);
}

std::string_view UsageText() {
  static const std::string kUsage = BuildUsage();
  return kUsage;
}

Json ToJson(const Config& config) {
  Json out = Json::object();
  for (const Option& option : Options()) {
    Json value = option.binding.to_json(config);
    if (value.is_null()) continue;
    std::string key(option.name);
    std::replace(key.begin(), key.end(), '-', '_');
    out[key + std::string(option.binding.json_suffix)] = std::move(value);
  }
  // The program only: its arguments may carry secrets, and /status needs no token.
  if (!config.app_command.empty()) out["app_command"] = config.app_command.front();
  return out;
}

}  // namespace lameduck::coordinator
