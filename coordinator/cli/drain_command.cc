// `lameduck drain`: its options, one HTTP/1.1 exchange with the admin API over a blocking socket
// under one deadline, and the answer turned into output and an exit status.
//
// Not a general HTTP client: one request, `Connection: close`, the answer read to its end (by
// Content-Length, chunked, or the server closing) and parsed by ResponseParser, the same parser
// HttpClient uses on the loop.
//
// `--then -- CMD` replaces this process with CMD once the answer is in (execvp: no shell, so an
// image without one can still chain its own preStop); `--then-sleep` is the `sleep` action,
// chained. Neither is skipped when the drain failed: the app's own shutdown must still run.
#include "coordinator/cli/drain_command.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>
#include <variant>

#include "coordinator/cli/fd.h"
#include "coordinator/config/config.h"
#include "coordinator/config/defaults.h"
#include "coordinator/config/option_parser.h"
#include "coordinator/config/text.h"
#include "coordinator/control/response_parser.h"
#include "proxy/address.h"
#include "proxy/result.h"

namespace lameduck::coordinator {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitCannotRun = 127;  // what a shell exits with for a command it cannot run

constexpr milliseconds kDefaultTimeout{30'000};
// A drain takes --drain-delay plus up to --drain-timeout (5s + 25s by default) plus the app's
// exit, so waiting for it needs longer than just starting it.
constexpr milliseconds kDefaultWaitTimeout{120'000};
constexpr size_t kMaxErrorBodyChars = 300;
constexpr size_t kReadChunkBytes = 16 * 1024;

std::string BuildUsage() {
  return "Usage: lameduck drain [--admin ADDR | --admin-socket PATH] [--token T] [--wait] "
         "[--timeout DUR]\n"
         "                      [--then-sleep DUR | --then -- CMD [ARGS...]]\n"
         "\n"
         "Asks a running lameduck to drain (POST /drain) and prints its answer; then, if asked,\n"
         "sleeps or runs an existing preStop command.\n"
         "\n"
         "  --admin ADDR         its admin API over TCP: HOST:PORT or [V6]:PORT (default\n"
         "                       127.0.0.1:" +
         std::to_string(kDefaults.admin_port) +
         "; 0.0.0.0 and [::] mean this host's loopback)\n"
         "  --admin-socket PATH  its admin API on a unix socket; needs no token\n"
         "  --token T            sent as Authorization: Bearer T; needed over TCP from beyond\n"
         "                       loopback (prefer LAMEDUCK_ADMIN_TOKEN: arguments are visible to "
         "ps)\n"
         "  --wait               wait until the drain is complete; prints its summary as JSON\n"
         "  --timeout DUR        give up after DUR, e.g. 250ms, 5s, 2m (default 30s, 120s with\n"
         "                       --wait; 0 means no limit)\n"
         "  --then -- CMD [ARGS...]\n"
         "                       after the drain request, run CMD in place of this process\n"
         "                       (execvp, no shell needed), so CMD's exit status is the hook's.\n"
         "                       CMD runs even when the drain failed (its error is printed\n"
         "                       first): the app's own shutdown is never skipped. Must come\n"
         "                       last: everything after -- is CMD's, verbatim. With --wait, CMD\n"
         "                       runs once the drain is complete; without, once lameduck has\n"
         "                       accepted it (202)\n"
         "  --then-sleep DUR     after the drain request, sleep DUR (a preStop sleep action,\n"
         "                       chained), then exit with the drain's status; it sleeps even\n"
         "                       when the drain failed. Not with --then\n"
         "\n"
         "Options are --name VALUE or --name=VALUE. LAMEDUCK_ADMIN, LAMEDUCK_ADMIN_SOCKET and\n"
         "LAMEDUCK_ADMIN_TOKEN are the defaults of --admin, --admin-socket and --token.\n"
         "Exit status: 0 when lameduck accepted (2xx), 1 when it refused, could not be reached or\n"
         "did not answer in time, 2 for bad usage (nothing is run then, not even CMD).\n"
         "With --then, CMD's exit status; 127 if CMD cannot be run.\n";
}

enum class WaitMode { kStartOnly, kUntilDrained };

// What follows the drain request, whatever its outcome.
struct ExitWithDrainStatus {};
struct SleepThenExit {
  milliseconds duration;
};
struct ExecCommand {
  std::vector<std::string> argv;  // argv[0] is looked up in PATH, as execvp does
};
using Then = std::variant<ExitWithDrainStatus, SleepThenExit, ExecCommand>;

// The command line as given, before the environment and defaults fill it in.
struct Args {
  std::optional<std::string> admin;
  std::optional<std::string> admin_socket;
  std::optional<std::string> token;
  std::optional<std::string> timeout;
  std::optional<std::string> then_sleep;
  std::optional<std::vector<std::string>> then_command;  // CMD and its ARGS, after "--then --"
  WaitMode wait = WaitMode::kStartOnly;
  bool help = false;
};

struct DrainOptions {
  proxy::Address admin;  // kTcp or kUnix; text is how messages name it
  std::optional<std::string> token;
  WaitMode wait = WaitMode::kStartOnly;
  std::optional<milliseconds> timeout;  // none: no limit
  Then then;
};

struct Answer {
  int status = 0;
  std::string reason;  // the reason phrase as sent, possibly empty
  std::string body;
};

constexpr OptionSpec kOptions[] = {
    {"admin"},
    {"admin-socket"},
    {"token"},
    {"timeout"},
    {"wait", OptionKind::kFlag},
    {"then", OptionKind::kFlag},
    {"then-sleep"},
    {"help", OptionKind::kHelp, "-h"},
};

constexpr std::string_view kThenWithoutDoubleDash = "--then: must be followed by -- CMD [ARGS...]";

// "--" ends our options, so that what follows (CMD's arguments: "--wait", "--help") is never
// read as ours, and only "--then" may stand right before it.
Result<Args> ReadArgs(const std::vector<std::string>& args) {
  auto line = ParseCommandLine(args, {.options = kOptions,
                                      .double_dash = DoubleDash::kEndsOptions,
                                      .stray_hint = "options start with --"});
  if (!line) {
    // "--then /bin/hook" is a stray argument to the parser; name what is missing instead.
    for (size_t i = 0; i < args.size() && args[i] != "--"; ++i) {
      if (args[i] == "--then" && (i + 1 == args.size() || args[i + 1] != "--")) {
        return Error{std::string(kThenWithoutDoubleDash)};
      }
    }
    return Error{line.error()};
  }
  CommandLine command_line = std::move(line).value();
  Args parsed;
  parsed.help = command_line.help;
  if (parsed.help) return parsed;  // parsing stopped there: the rest is unread
  std::optional<std::vector<std::string>>& after_double_dash = command_line.after_double_dash;
  // A flag is one argument and parsing stops at "--": the last option read stood right before it.
  const bool then_before_double_dash = after_double_dash && !command_line.options.empty() &&
                                       command_line.options.back().name == "then";
  bool then = false;
  for (ParsedOption& option : command_line.options) {
    if (option.name == "wait") {
      parsed.wait = WaitMode::kUntilDrained;
    } else if (option.name == "then") {
      then = true;
    } else {
      (option.name == "admin"          ? parsed.admin
       : option.name == "admin-socket" ? parsed.admin_socket
       : option.name == "token"        ? parsed.token
       : option.name == "timeout"      ? parsed.timeout
                                       : parsed.then_sleep) = std::move(option.value);
    }
  }
  if (then && !then_before_double_dash) return Error{std::string(kThenWithoutDoubleDash)};
  if (!then && after_double_dash) {
    return Error{"\"--\" only comes after --then, as in --then -- CMD [ARGS...]"};
  }
  if (then) {
    if (after_double_dash->empty()) return Error{"--then: no command after --"};
    parsed.then_command = std::move(after_double_dash);
  }
  return parsed;
}

// `source` names where the text came from ("--admin", "LAMEDUCK_ADMIN"), for the error.
Result<proxy::Address> ParseAdmin(std::string_view source, std::string_view text) {
  auto address = proxy::ParseAddress(text);
  if (!address) return Error{std::string(source) + ": " + address.error()};
  proxy::Address admin = std::move(address).value();
  if (admin.kind == proxy::Address::Kind::kUnix) {
    admin.text = admin.path;
    return admin;
  }
  if (admin.port() == 0) return Error{std::string(source) + ": port 0 in " + Quote(text)};
  // The server's default, 0.0.0.0:PORT, is a bind address: it answers on loopback.
  auto* v4 = reinterpret_cast<sockaddr_in*>(&admin.sockaddr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&admin.sockaddr);
  if (v4->sin_family == AF_INET && v4->sin_addr.s_addr == htonl(INADDR_ANY)) {
    v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    admin.text = "127.0.0.1:" + std::to_string(admin.port());
  } else if (v6->sin6_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&v6->sin6_addr)) {
    v6->sin6_addr = in6addr_loopback;
    admin.text = "[::1]:" + std::to_string(admin.port());
  }
  return admin;
}

Result<proxy::Address> ParseAdminSocket(std::string_view source, std::string_view text) {
  std::string_view path = text.starts_with("unix:") ? text.substr(5) : text;
  return ParseAdmin(source, "unix:" + std::string(path));
}

const std::string* Lookup(const std::map<std::string, std::string>& env, const std::string& name) {
  auto it = env.find(name);
  return it == env.end() || it->second.empty() ? nullptr : &it->second;
}

// The command line wins over the environment. The server may have both a TCP and a unix admin
// address; given both in the environment, the socket is used, since it needs no token.
Result<DrainOptions> ResolveOptions(const Args& args,
                                    const std::map<std::string, std::string>& env) {
  if (args.admin && args.admin_socket) {
    return Error{"--admin and --admin-socket: give one of them, not both"};
  }
  if (args.then_command && args.then_sleep) {
    return Error{"--then and --then-sleep: give one of them, not both"};
  }
  const std::string* env_socket = Lookup(env, "LAMEDUCK_ADMIN_SOCKET");
  const std::string* env_admin = Lookup(env, "LAMEDUCK_ADMIN");
  Result<proxy::Address> admin = Error{};
  if (args.admin_socket) {
    admin = ParseAdminSocket("--admin-socket", *args.admin_socket);
  } else if (args.admin) {
    admin = ParseAdmin("--admin", *args.admin);
  } else if (env_socket != nullptr) {
    admin = ParseAdminSocket("LAMEDUCK_ADMIN_SOCKET", *env_socket);
  } else if (env_admin != nullptr) {
    admin = ParseAdmin("LAMEDUCK_ADMIN", *env_admin);
  } else {
    admin = ParseAdmin("--admin", "127.0.0.1:" + std::to_string(kDefaults.admin_port));
  }
  if (!admin) return Error{admin.error()};
  DrainOptions options;
  options.admin = std::move(admin).value();
  options.wait = args.wait;

  const std::string* env_token = Lookup(env, "LAMEDUCK_ADMIN_TOKEN");
  if (args.token || env_token) {
    auto token = CheckToken(args.token ? *args.token : *env_token);
    if (!token) return Error{(args.token ? "--token: " : "LAMEDUCK_ADMIN_TOKEN: ") + token.error()};
    options.token = std::move(token).value();
  }

  options.timeout = args.wait == WaitMode::kUntilDrained ? kDefaultWaitTimeout : kDefaultTimeout;
  if (args.timeout) {
    // ParseDuration wants a unit, but a bare "0" is unambiguous.
    auto timeout =
        *args.timeout == "0" ? Result<milliseconds>(milliseconds(0)) : ParseDuration(*args.timeout);
    if (!timeout) return Error{"--timeout: " + timeout.error()};
    options.timeout = *timeout;
    if (timeout->count() == 0) options.timeout.reset();
  }

  if (args.then_sleep) {
    auto sleep = ParseDuration(*args.then_sleep);
    if (!sleep) return Error{"--then-sleep: " + sleep.error()};
    options.then = SleepThenExit{*sleep};
  } else if (args.then_command) {
    options.then = ExecCommand{*args.then_command};
  }
  return options;
}

std::string BuildRequest(const DrainOptions& options) {
  std::string request = options.wait == WaitMode::kUntilDrained ? "POST /drain?wait=1 HTTP/1.1\r\n"
                                                                : "POST /drain HTTP/1.1\r\n";
  request += "Host: lameduck\r\nUser-Agent: lameduck-drain/" LAMEDUCK_VERSION
             "\r\nContent-Length: 0\r\nConnection: close\r\n";
  if (options.token) request += "Authorization: Bearer " + *options.token + "\r\n";
  request += "\r\n";
  return request;
}

class Deadline {
 public:
  explicit Deadline(std::optional<milliseconds> timeout) {
    if (timeout) at_ = Clock::now() + *timeout;
  }
  // poll()'s timeout: -1 without a limit, else what is left, rounded up (0 once passed).
  int PollTimeoutMs() const {
    if (!at_) return -1;
    auto left = std::chrono::ceil<milliseconds>(*at_ - Clock::now());
    return static_cast<int>(std::max<int64_t>(left.count(), 0));
  }

 private:
  std::optional<Clock::time_point> at_;
};

enum class Readiness { kReady, kTimedOut, kFailed };

// Waits for `events` on fd until the deadline; kFailed leaves errno set.
Readiness WaitFor(int fd, short events, const Deadline& deadline) {
  pollfd entry{fd, events, 0};
  while (true) {
    int rc = poll(&entry, 1, deadline.PollTimeoutMs());
    if (rc > 0) return Readiness::kReady;
    if (rc == 0) return Readiness::kTimedOut;
    if (errno != EINTR) return Readiness::kFailed;
  }
}

Result<void> Connect(const Fd& socket, const proxy::Address& admin, const Deadline& deadline,
                     std::string_view timeout_text) {
  sockaddr_un unix_address{};
  const sockaddr* address = admin.sa();
  socklen_t length =
      admin.sockaddr.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (admin.kind == proxy::Address::Kind::kUnix) {
    unix_address.sun_family = AF_UNIX;
    std::memcpy(unix_address.sun_path, admin.path.data(), admin.path.size());  // length checked
    address = reinterpret_cast<const sockaddr*>(&unix_address);
    length = sizeof(unix_address);
  }
  int error = 0;
  if (connect(socket.get(), address, length) != 0) {
    error = errno;
    if (error == EINPROGRESS) {
      Readiness ready = WaitFor(socket.get(), POLLOUT, deadline);
      if (ready == Readiness::kTimedOut) {
        return Error{"cannot connect to " + admin.text + " within " + std::string(timeout_text)};
      }
      socklen_t size = sizeof(error);
      if (ready == Readiness::kFailed) {
        error = errno;
      } else if (getsockopt(socket.get(), SOL_SOCKET, SO_ERROR, &error, &size) != 0) {
        error = errno;
      }
    }
  }
  if (error == 0) return {};
  std::string hint = admin.kind == proxy::Address::Kind::kUnix
                         ? "is lameduck running with --admin-socket " + admin.text + "?"
                         : "is lameduck running with --admin " + admin.text + "?";
  // The server makes its socket mode 0600.
  if (error == EACCES) hint = "run this as the user lameduck runs as";
  return Error{"cannot connect to " + admin.text + ": " + std::strerror(error) + " (" + hint + ")"};
}

Result<void> SendAll(const Fd& socket, std::string_view bytes, const Deadline& deadline,
                     std::string_view timeout_text) {
  while (!bytes.empty()) {
    ssize_t sent = send(socket.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (sent > 0) {
      bytes.remove_prefix(static_cast<size_t>(sent));
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return Error{std::string("sending the request: ") + std::strerror(errno)};
    }
    Readiness ready = WaitFor(socket.get(), POLLOUT, deadline);
    if (ready == Readiness::kTimedOut)
      return Error{"no answer within " + std::string(timeout_text)};
    if (ready == Readiness::kFailed) {
      return Error{std::string("sending the request: ") + std::strerror(errno)};
    }
  }
  return {};
}

// The answer parser's failure in the words `lameduck drain` prints after the address.
std::string ParseError(const ResponseParser& parser) {
  switch (parser.failure()) {
    case ResponseParser::Failure::kNothing:
      return "closed the connection without answering";
    case ResponseParser::Failure::kTruncated:
      return "closed the connection in the middle of the answer";
    case ResponseParser::Failure::kHeadTooLarge:
    case ResponseParser::Failure::kBodyTooLarge:
      return "sent an answer larger than lameduck drain reads";
    case ResponseParser::Failure::kMalformed:
    case ResponseParser::Failure::kNone:
      break;
  }
  return "sent a malformed answer (" + parser.detail() + ")";
}

// One request, one answer. Errors are worded for `lameduck drain: ` to precede them.
Result<Answer> Exchange(const DrainOptions& options) {
  const Deadline deadline(options.timeout);
  const std::string timeout_text = options.timeout ? FormatDuration(*options.timeout) : "";
  int family = options.admin.kind == proxy::Address::Kind::kUnix ? AF_UNIX
                                                                 : options.admin.sockaddr.ss_family;
  Fd socket(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (socket.get() < 0)
    return Error{std::string("cannot create a socket: ") + std::strerror(errno)};
  if (Result<void> connected = Connect(socket, options.admin, deadline, timeout_text);
      !connected.ok()) {
    return Error{connected.error()};
  }
  if (Result<void> sent = SendAll(socket, BuildRequest(options), deadline, timeout_text);
      !sent.ok()) {
    return Error{sent.error() + " (to " + options.admin.text + ")"};
  }
  ResponseParser parser(ResponseParser::Until::kMessage);
  std::string buffer(kReadChunkBytes, '\0');
  while (parser.state() == ResponseParser::State::kReading) {
    Readiness ready = WaitFor(socket.get(), POLLIN, deadline);
    if (ready == Readiness::kTimedOut) return Error{"no answer within " + timeout_text};
    ssize_t received =
        ready == Readiness::kReady ? recv(socket.get(), buffer.data(), buffer.size(), 0) : -1;
    if (received < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      return Error{"reading the answer from " + options.admin.text + ": " + std::strerror(errno)};
    }
    // After the server closed, Finish either completes the answer or says what is missing.
    auto state = received == 0
                     ? parser.Finish()
                     : parser.Feed(std::string_view(buffer.data(), static_cast<size_t>(received)));
    if (state == ResponseParser::State::kFailed) {
      return Error{options.admin.text + " " + ParseError(parser)};
    }
  }
  return Answer{parser.status(), std::string(parser.reason()), parser.TakeBody()};
}

// A body on one line for an error message: whitespace runs become one space, the rest is cut.
std::string OneLine(std::string_view body) {
  std::string line;
  for (char c : body) {
    bool space = static_cast<unsigned char>(c) < ' ' || c == ' ' || c == '\x7f';
    if (space) {
      if (!line.empty() && line.back() != ' ') line += ' ';
    } else {
      line += c;
    }
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  if (line.size() > kMaxErrorBodyChars) line = line.substr(0, kMaxErrorBodyChars) + "...";
  return line;
}

std::string RefusalLine(const Answer& answer, const DrainOptions& options) {
  std::string line = std::to_string(answer.status);
  if (!answer.reason.empty()) line.append(" ").append(OneLine(answer.reason));
  if (std::string body = OneLine(answer.body); !body.empty()) line.append(": ").append(body);
  if (answer.status == 401 || answer.status == 403) {
    line += options.token ? " (is the token the one lameduck was given with --admin-token?)"
                          : " (give lameduck's admin token with LAMEDUCK_ADMIN_TOKEN or --token, "
                            "or use --admin-socket)";
  }
  return line;
}

void PrintError(std::FILE* err, std::string_view message) {
  std::fprintf(err, "lameduck drain: %.*s\n", static_cast<int>(message.size()), message.data());
  std::fflush(err);
}

// The drain request itself: its answer on `out`, or one line on `err`. Returns 0 or 1.
int RequestDrain(const DrainOptions& options, std::FILE* out, std::FILE* err) {
  auto answer = Exchange(options);
  if (!answer) {
    PrintError(err, answer.error());
    return kExitFailed;
  }
  if (answer->status < 200 || answer->status > 299) {
    PrintError(err, RefusalLine(*answer, options));
    return kExitFailed;
  }
  const std::string& body = answer->body;
  std::fwrite(body.data(), 1, body.size(), out);
  if (!body.empty() && body.back() != '\n') std::fputc('\n', out);
  std::fflush(out);
  return kExitOk;
}

// Returns only if execvp failed.
int Exec(const std::vector<std::string>& command, std::FILE* err) {
  std::vector<char*> argv;
  for (const std::string& arg : command) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  std::fflush(nullptr);  // stdio buffers do not survive exec: what we printed must come first
  execvp(argv[0], argv.data());
  PrintError(err, "--then: cannot run " + Quote(command[0]) + ": " + std::strerror(errno));
  return kExitCannotRun;
}

}  // namespace

std::string_view DrainUsageText() {
  static const std::string kUsage = BuildUsage();
  return kUsage;
}

int RunDrainCommand(const std::vector<std::string>& args,
                    const std::map<std::string, std::string>& env, std::FILE* out, std::FILE* err) {
  auto parsed = ReadArgs(args);
  if (!parsed) {
    PrintError(err, parsed.error() + " (see lameduck drain --help)");
    return kExitUsage;
  }
  if (parsed->help) {
    std::string_view usage = DrainUsageText();
    std::fwrite(usage.data(), 1, usage.size(), out);
    std::fflush(out);
    return kExitOk;
  }
  auto options = ResolveOptions(*parsed, env);
  if (!options) {
    PrintError(err, options.error() + " (see lameduck drain --help)");
    return kExitUsage;
  }
  const int drain_status = RequestDrain(*options, out, err);
  if (const auto* sleep = std::get_if<SleepThenExit>(&options->then)) {
    std::this_thread::sleep_for(sleep->duration);  // libstdc++ resumes it after EINTR
  } else if (const auto* exec = std::get_if<ExecCommand>(&options->then)) {
    return Exec(exec->argv, err);
  }
  return drain_status;
}

}  // namespace lameduck::coordinator
