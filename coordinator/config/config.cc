// Option parsing. One table, Options(), describes every option once: its name, how its text
// becomes a Config field, how that field is shown in --help and /status. The command line, the
// environment and the --config file are each read into the same form (the texts given per
// option, and where they came from), merged by precedence, then applied through the table. Adding
// an option is one row in the table plus its field in Config.
#include "coordinator/config/config.h"

#include <fcntl.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <functional>
#include <span>
#include <system_error>
#include <type_traits>
#include <utility>

namespace lameduck::coordinator {
namespace {

using std::chrono::milliseconds;
using Json = nlohmann::json;
using Values = std::vector<std::string>;

constexpr std::string_view kDurationHint = "use a number with ms, s, m or h, e.g. 250ms, 5s";
constexpr std::string_view kSizeHint = "use bytes or a number with KiB, MiB or GiB, e.g. 64KiB";
constexpr std::string_view kEnvPrefix = "LAMEDUCK_";
constexpr size_t kMaxConfigFileBytes = 1 << 20;
constexpr size_t kMaxTokenFileBytes = 64 << 10;
constexpr size_t kUsageWidth = 100;

Error Invalid(std::string_view what, std::string_view text, std::string_view why) {
  return Error{"invalid " + std::string(what) + " " + Quote(text) + " (" + std::string(why) + ")"};
}

std::string Upper(std::string_view text) {
  std::string upper(text);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return upper;
}

std::string Lower(std::string_view text) {
  std::string lower(text);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower;
}

bool HasSpaceOrControl(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](unsigned char c) { return c <= 0x20 || c == 0x7f; });
}

std::string_view Trim(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n\f\v";
  size_t begin = text.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  return text.substr(begin, text.find_last_not_of(kSpace) - begin + 1);
}

// Digits only: no sign, no spaces, no suffix.
template <typename T>
std::optional<T> ParseDigits(std::string_view text) {
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0])) || ec != std::errc() ||
      end != text.data() + text.size()) {
    return std::nullopt;
  }
  return value;
}

// The largest unit that keeps the number whole, as people write durations; minutes only from
// 10 up, so that the defaults read as DESIGN.md writes them ("60s").
std::string FormatDuration(milliseconds duration) {
  struct Unit {
    int64_t ms;
    std::string_view suffix;
  };
  constexpr Unit kUnits[] = {{3'600'000, "h"}, {60'000, "m"}, {1'000, "s"}};
  const int64_t ms = duration.count();
  if (ms == 0) return "0s";
  for (const Unit& unit : kUnits) {
    if (ms % unit.ms == 0 && (unit.suffix != "m" || ms >= 10 * unit.ms)) {
      return std::to_string(ms / unit.ms) + std::string(unit.suffix);
    }
  }
  return std::to_string(ms) + "ms";
}

std::string FormatSize(size_t bytes) {
  struct Unit {
    size_t bytes;
    std::string_view suffix;
  };
  constexpr Unit kUnits[] = {{size_t{1} << 30, "GiB"}, {size_t{1} << 20, "MiB"}, {1024, "KiB"}};
  for (const Unit& unit : kUnits) {
    if (bytes != 0 && bytes % unit.bytes == 0) {
      return std::to_string(bytes / unit.bytes) + std::string(unit.suffix);
    }
  }
  return std::to_string(bytes);
}

struct SignalName {
  std::string_view name;  // without "SIG"
  int number;
};
constexpr SignalName kSignals[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},       {"QUIT", SIGQUIT}, {"ILL", SIGILL},
    {"TRAP", SIGTRAP}, {"ABRT", SIGABRT},     {"IOT", SIGIOT},   {"BUS", SIGBUS},
    {"FPE", SIGFPE},   {"KILL", SIGKILL},     {"USR1", SIGUSR1}, {"SEGV", SIGSEGV},
    {"USR2", SIGUSR2}, {"PIPE", SIGPIPE},     {"ALRM", SIGALRM}, {"TERM", SIGTERM},
    {"CHLD", SIGCHLD}, {"CONT", SIGCONT},     {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},
    {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},     {"URG", SIGURG},   {"XCPU", SIGXCPU},
    {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH},
    {"IO", SIGIO},     {"POLL", SIGPOLL},     {"PWR", SIGPWR},   {"SYS", SIGSYS},
};

std::string SignalToString(int number) {
  for (const SignalName& signal : kSignals) {
    if (signal.number == number) return "SIG" + std::string(signal.name);
  }
  return std::to_string(number);
}

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
  if (path.empty()) return Invalid("socket path", text, "empty");
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return Invalid("socket path", text,
                   "longer than " + std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes");
  }
  return std::string(path);
}

Result<std::string> CheckHttpPath(std::string_view text) {
  // It goes verbatim into a request line (RFC 9112 section 3), where a space would split it.
  if (!text.starts_with('/') || HasSpaceOrControl(text)) {
    return Invalid("path", text, "must start with / and have no spaces, e.g. /healthz");
  }
  return std::string(text);
}

Result<std::string> CheckNonEmpty(std::string_view text) {
  if (text.empty()) return Invalid("value", text, "must not be empty");
  return std::string(text);
}

Result<std::string> CheckHttpUrl(std::string_view text) {
  std::string lower = Lower(text);
  if (lower.starts_with("https://")) {
    return Invalid("URL", text, "https is not supported: lameduck speaks plain HTTP to the app");
  }
  constexpr std::string_view kScheme = "http://";
  if (!lower.starts_with(kScheme) || text.size() == kScheme.size() || text[kScheme.size()] == '/' ||
      HasSpaceOrControl(text)) {
    return Invalid("URL", text, "must be http://HOST[:PORT]/PATH, e.g. http://127.0.0.1:3000/quit");
  }
  return std::string(text);
}

// The token is never echoed: an error message ends up in logs that more people read.
Result<std::string> CheckToken(std::string_view text) {
  // Whitespace could never match: RFC 9110 section 5.5 strips it around a field value, and the
  // bearer syntax (RFC 6750 section 2.1) has none inside.
  if (text.empty() || HasSpaceOrControl(text)) {
    return Error{"invalid token (empty, or has whitespace or control characters; value not shown)"};
  }
  return std::string(text);
}

Result<std::string> CheckConfigPath(std::string_view text) {
  if (text.empty()) return Invalid("file name", text, "must not be empty");
  return std::string(text);
}

// How one option's text becomes part of a Config, and how that part is shown.
struct Binding {
  // Parses values (one, or several for a repeatable option) into the config. The error does not
  // name the option: the caller prefixes where the value came from.
  std::function<std::optional<Error>(Config&, const Values&)> apply;
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
      .apply = [member, parse](Config& config, const Values& values) -> std::optional<Error> {
        auto parsed = parse(values.back());
        if (!parsed) return Error{parsed.error()};
        FieldOf(config, member) = std::move(parsed).value();
        return std::nullopt;
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
      return Invalid("duration", text, "must be more than 0");
    }
    return duration;
  };
  return Single(
      member, parse, FormatDuration, [](milliseconds d) { return Json(d.count()); }, "_ms");
}

// A byte count with bounds, such as "64KiB".
template <typename Owner>
Binding Size(size_t Owner::*member, size_t min, size_t max) {
  auto parse = [min, max](std::string_view text) -> Result<size_t> {
    auto size = ParseSize(text);
    if (size && (*size < min || *size > max)) {
      return Invalid("size", text,
                     "must be between " + FormatSize(min) + " and " + FormatSize(max));
    }
    return size;
  };
  return Single(member, parse, FormatSize, [](size_t bytes) { return Json(bytes); });
}

// A plain number of things, at least min. No suffixes: "10k connections" is not 10240.
template <typename Owner>
Binding Count(size_t Owner::*member, size_t min) {
  auto parse = [min](std::string_view text) -> Result<size_t> {
    auto count = ParseDigits<size_t>(text);
    if (!count) return Invalid("number", text, "use digits, e.g. 10000");
    if (*count < min) return Invalid("number", text, "must be at least " + std::to_string(min));
    return *count;
  };
  return Single(
      member, parse, [](size_t n) { return std::to_string(n); }, [](size_t n) { return Json(n); });
}

Binding Pid(std::optional<int> Config::*member) {
  auto parse = [](std::string_view text) -> Result<int> {
    auto pid = ParseDigits<int>(text);
    if (!pid || *pid <= 0) return Invalid("pid", text, "must be a positive integer");
    return *pid;
  };
  return Single(
      member, parse, [](const std::optional<int>& pid) { return pid ? std::to_string(*pid) : ""; },
      [](const std::optional<int>& pid) { return pid ? Json(*pid) : Json(); });
}

Binding Signal(int Config::*member) {
  return Single(member, ParseSignal, SignalToString,
                [](int number) { return Json(SignalToString(number)); });
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
      .apply = [member](Config& config, const Values& values) -> std::optional<Error> {
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
        return std::nullopt;
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
  if (visibility == Visibility::kUrl) {
    size_t authority = value.find("://");
    size_t at = value.find('@');
    if (authority != std::string::npos && at != std::string::npos &&
        at < value.find('/', authority + 3)) {
      return value.substr(0, authority + 3) + "***" + value.substr(at);
    }
  }
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
      .apply = [member](Config& config, const Values& values) -> std::optional<Error> {
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
        return std::nullopt;
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

template <typename T, size_t N>
Binding Choice(T Config::*member, std::string_view what, const Named<T> (&choices)[N]) {
  std::span<const Named<T>> all(choices);
  auto parse = [what, all](std::string_view text) -> Result<T> {
    std::string lower = Lower(text);
    for (const Named<T>& choice : all) {
      if (choice.name == lower) return choice.value;
    }
    return Invalid(what, text, "use " + JoinNames(all));
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
  constexpr size_t kMaxHeaderBytes = 1 << 20;
  static const std::vector<Option> kOptions = {
      {"listen", "ADDR", AddressList(&P::listen),
       "where clients connect; repeat or comma-separate for several", Repeat::kAccumulate},
      {"upstream", "ADDR", AddressField(&P::upstream, Port::kNotZero), "the app"},
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

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// The option a misspelling most likely meant ("dran-delay", "drain_delay"), if any is close.
std::optional<std::string_view> ClosestOption(std::string_view name) {
  std::string dashed(name);
  std::replace(dashed.begin(), dashed.end(), '_', '-');
  dashed = Lower(dashed);
  std::optional<std::string_view> best;
  size_t best_distance = 3;  // more than 2 edits away is a different word
  for (const Option& option : Options()) {
    size_t distance = EditDistance(dashed, option.name);
    if (distance < best_distance) {
      best = option.name;
      best_distance = distance;
    }
  }
  return best;
}

std::string EnvName(std::string_view option) {
  std::string name = std::string(kEnvPrefix) + Upper(option);
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
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (arg == "--") {
      app_command.assign(args.begin() + static_cast<ptrdiff_t>(i) + 1, args.end());
      if (app_command.empty()) throw ConfigError("missing APP after \"--\"");
      return;
    }
    if (!arg.starts_with("--")) {
      if (arg.starts_with('-') && arg.size() > 1) {
        throw ConfigError("unknown option " + std::string(arg) + " (see lameduck --help)");
      }
      throw ConfigError("unexpected argument " + Quote(arg) +
                        " (options start with --; an APP to launch goes after \"--\")");
    }
    std::string_view name = arg.substr(2);
    std::optional<std::string> value;
    if (size_t equals = name.find('='); equals != std::string_view::npos) {
      value = std::string(name.substr(equals + 1));
      name = name.substr(0, equals);
    }
    size_t index = FindOption(name);
    if (index == kNotFound) {
      std::string message = "unknown option --" + std::string(name);
      auto closest = ClosestOption(name);
      throw ConfigError(message + (closest ? " (did you mean --" + std::string(*closest) + "?)"
                                           : " (see lameduck --help)"));
    }
    std::string label = "--" + std::string(name);
    if (!value) {
      // "--drain-delay --listen x" is a forgotten value, not a delay called "--listen".
      if (i + 1 == args.size() || args[i + 1].starts_with("--")) {
        throw ConfigError(label + ": missing value");
      }
      value = args[++i];
    }
    gathered.Offer(index, Given{Source::kCommandLine, {std::move(*value)}, label, label});
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
      auto closest = ClosestOption(key);
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
      out += "\n" + std::string(indent, ' ');
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
      "  lameduck inject [--mode native|classic] [--port N] [--app-port N] ... < in.json > "
      "out.json\n"
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

}  // namespace

// Quoted for a message, escaped so that a value holding a newline cannot break the one-line
// promise of ConfigError.
std::string Quote(std::string_view text) {
  std::string quoted = "\"";
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      quoted += '\\';
      quoted += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      constexpr char kHex[] = "0123456789abcdef";
      quoted += "\\x";
      quoted += kHex[c >> 4];
      quoted += kHex[c & 0xf];
    } else {
      quoted += static_cast<char>(c);
    }
  }
  return quoted + "\"";
}

OptionArg SplitOption(std::string_view arg) {
  OptionArg split;
  split.name = std::string(arg.substr(2));
  if (size_t eq = split.name.find('='); eq != std::string::npos) {
    split.value = split.name.substr(eq + 1);
    split.name.resize(eq);
  }
  return split;
}

Result<std::string> ReadFile(const std::string& path, size_t max_bytes) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error{std::generic_category().message(errno)};
  std::string text;
  char chunk[4096];
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int error = errno;
      close(fd);
      return Error{std::generic_category().message(error)};
    }
    if (n == 0) break;
    text.append(chunk, static_cast<size_t>(n));
    if (text.size() > max_bytes) {
      close(fd);
      return Error{"larger than " + FormatSize(max_bytes)};
    }
  }
  close(fd);
  return text;
}

std::string_view ToString(LogFormat format) {
  switch (format) {
    case LogFormat::kJson:
      return "json";
    case LogFormat::kText:
      return "text";
  }
  return "unknown";
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

Result<milliseconds> ParseDuration(std::string_view text) {
  if (text.starts_with('-')) return Invalid("duration", text, "must not be negative");
  if (!text.empty() && text.find_first_not_of("0123456789.") == std::string_view::npos) {
    return Invalid("duration", text, "missing unit: use ms, s, m or h, e.g. 5s");
  }
  struct Unit {
    std::string_view suffix;
    int64_t ms;
  };
  // "ms" before "m", so that "250ms" is not 250 minutes followed by garbage.
  constexpr Unit kUnits[] = {{"ms", 1}, {"s", 1'000}, {"m", 60'000}, {"h", 3'600'000}};
  constexpr std::string_view kDigits = "0123456789";
  constexpr size_t kMaxFractionDigits = 9;
  if (text.empty()) return Invalid("duration", text, kDurationHint);
  int64_t total_ms = 0;
  std::string_view rest = text;
  // A sequence of NUMBER[.FRACTION]UNIT, as in Go's time.ParseDuration ("1m30s").
  while (!rest.empty()) {
    size_t whole_digits = std::min(rest.find_first_not_of(kDigits), rest.size());
    if (whole_digits == 0) return Invalid("duration", text, kDurationHint);
    std::string_view whole = rest.substr(0, whole_digits);
    rest.remove_prefix(whole_digits);
    std::string_view fraction;
    if (rest.starts_with('.')) {
      rest.remove_prefix(1);
      size_t fraction_digits = std::min(rest.find_first_not_of(kDigits), rest.size());
      if (fraction_digits == 0) return Invalid("duration", text, kDurationHint);
      fraction = rest.substr(0, fraction_digits);
      rest.remove_prefix(fraction_digits);
    }
    const Unit* unit = nullptr;
    for (const Unit& candidate : kUnits) {
      if (rest.starts_with(candidate.suffix)) {
        unit = &candidate;
        break;
      }
    }
    if (unit == nullptr) return Invalid("duration", text, kDurationHint);
    rest.remove_prefix(unit->suffix.size());

    auto whole_value = ParseDigits<int64_t>(whole);  // all digits: nullopt means overflow
    int64_t whole_ms = 0;
    if (!whole_value || __builtin_mul_overflow(*whole_value, unit->ms, &whole_ms) ||
        __builtin_add_overflow(total_ms, whole_ms, &total_ms)) {
      return Invalid("duration", text, "too large");
    }
    if (!fraction.empty()) {
      if (fraction.size() > kMaxFractionDigits) {
        return Invalid("duration", text, "finer than a millisecond");
      }
      int64_t scale = 1;
      for (size_t i = 0; i < fraction.size(); ++i) scale *= 10;
      int64_t scaled = *ParseDigits<int64_t>(fraction) * unit->ms;  // < 1e9 * 3.6e6: no overflow
      if (scaled % scale != 0) return Invalid("duration", text, "finer than a millisecond");
      if (__builtin_add_overflow(total_ms, scaled / scale, &total_ms)) {
        return Invalid("duration", text, "too large");
      }
    }
  }
  return milliseconds(total_ms);
}

Result<size_t> ParseSize(std::string_view text) {
  if (text.starts_with('-')) return Invalid("size", text, "must not be negative");
  size_t digits = std::min(text.find_first_not_of("0123456789"), text.size());
  if (digits == 0) return Invalid("size", text, kSizeHint);
  struct Suffix {
    std::string_view name;  // lower case
    size_t bytes;
  };
  // The decimal-looking k, KB, MB, GB mean 1024-based units here, as in nginx
  // (large_client_header_buffers 4 8k): nobody sizes a buffer in powers of ten.
  constexpr Suffix kSuffixes[] = {
      {"", 1},          {"b", 1},        {"k", 1 << 10},   {"kb", 1 << 10},
      {"kib", 1 << 10}, {"m", 1 << 20},  {"mb", 1 << 20},  {"mib", 1 << 20},
      {"g", 1 << 30},   {"gb", 1 << 30}, {"gib", 1 << 30},
  };
  std::string suffix = Lower(text.substr(digits));
  const Suffix* unit = nullptr;
  for (const Suffix& candidate : kSuffixes) {
    if (candidate.name == suffix) unit = &candidate;
  }
  if (unit == nullptr) return Invalid("size", text, kSizeHint);
  auto number = ParseDigits<size_t>(text.substr(0, digits));  // all digits: nullopt is overflow
  size_t bytes = 0;
  if (!number || __builtin_mul_overflow(*number, unit->bytes, &bytes)) {
    return Invalid("size", text, "too large");
  }
  return bytes;
}

Result<int> ParseSignal(std::string_view text) {
  constexpr std::string_view kHint = "use a name such as SIGTERM, SIGINT or SIGQUIT, or a number";
  if (auto number = ParseDigits<int>(text)) {
    // SIGRTMAX is a function call in glibc, not a constant.
    if (*number < 1 || *number > SIGRTMAX) {
      return Invalid("signal", text, "numbers go from 1 to " + std::to_string(SIGRTMAX));
    }
    return *number;
  }
  std::string name = Upper(text);
  if (name.starts_with("SIG")) name.erase(0, 3);
  for (const SignalName& signal : kSignals) {
    if (signal.name == name) return signal.number;
  }
  return Invalid("signal", text, kHint);
}

proxy::ProxyOptions DefaultProxyOptions() {
  proxy::ProxyOptions options;
  options.listen = {proxy::ParseAddress("0.0.0.0:8080").value()};
  options.upstream = proxy::ParseAddress("127.0.0.1:3000").value();
  return options;
}

proxy::Address DefaultAdminAddress() { return proxy::ParseAddress("0.0.0.0:9901").value(); }

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
    if (auto error = options[i].binding.apply(config, given->values)) {
      throw ConfigError(given->label + ": " + error->message);
    }
  }
  return config;
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
