// Durations, sizes and signals both ways, quoting, tokens, hidden credentials, small files.
#include "coordinator/config/text.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>

namespace lameduck::coordinator {
namespace {

using std::chrono::milliseconds;

constexpr std::string_view kDurationHint = "use a number with ms, s, m or h, e.g. 250ms, 5s";
constexpr std::string_view kSizeHint = "use bytes or a number with KiB, MiB or GiB, e.g. 64KiB";

struct NamedSignal {
  std::string_view name;  // without "SIG"
  int number;
};
constexpr NamedSignal kSignals[] = {
    {"HUP", SIGHUP},       {"INT", SIGINT},       {"QUIT", SIGQUIT}, {"ILL", SIGILL},
    {"TRAP", SIGTRAP},     {"ABRT", SIGABRT},     {"IOT", SIGIOT},   {"BUS", SIGBUS},
    {"FPE", SIGFPE},       {"KILL", SIGKILL},     {"USR1", SIGUSR1}, {"SEGV", SIGSEGV},
    {"USR2", SIGUSR2},     {"PIPE", SIGPIPE},     {"ALRM", SIGALRM}, {"TERM", SIGTERM},
    {"CHLD", SIGCHLD},     {"CONT", SIGCONT},     {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},
    {"TTIN", SIGTTIN},     {"TTOU", SIGTTOU},     {"URG", SIGURG},   {"XCPU", SIGXCPU},
    {"XFSZ", SIGXFSZ},     {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH},
    {"IO", SIGIO},         {"POLL", SIGPOLL},     {"PWR", SIGPWR},   {"SYS", SIGSYS},
    {"STKFLT", SIGSTKFLT},
};

}  // namespace

Result<milliseconds> ParseDuration(std::string_view text) {
  if (text.starts_with('-')) return InvalidValue("duration", text, "must not be negative");
  if (!text.empty() && text.find_first_not_of("0123456789.") == std::string_view::npos) {
    return InvalidValue("duration", text, "missing unit: use ms, s, m or h, e.g. 5s");
  }
  struct Unit {
    std::string_view suffix;
    int64_t ms;
  };
  // "ms" before "m", so that "250ms" is not 250 minutes followed by garbage.
  constexpr Unit kUnits[] = {{"ms", 1}, {"s", 1'000}, {"m", 60'000}, {"h", 3'600'000}};
  constexpr std::string_view kDigits = "0123456789";
  constexpr size_t kMaxFractionDigits = 9;
  if (text.empty()) return InvalidValue("duration", text, kDurationHint);
  int64_t total_ms = 0;
  std::string_view rest = text;
  // A sequence of NUMBER[.FRACTION]UNIT, as in Go's time.ParseDuration ("1m30s").
  while (!rest.empty()) {
    size_t whole_digits = std::min(rest.find_first_not_of(kDigits), rest.size());
    if (whole_digits == 0) return InvalidValue("duration", text, kDurationHint);
    std::string_view whole = rest.substr(0, whole_digits);
    rest.remove_prefix(whole_digits);
    std::string_view fraction;
    if (rest.starts_with('.')) {
      rest.remove_prefix(1);
      size_t fraction_digits = std::min(rest.find_first_not_of(kDigits), rest.size());
      if (fraction_digits == 0) return InvalidValue("duration", text, kDurationHint);
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
    if (unit == nullptr) return InvalidValue("duration", text, kDurationHint);
    rest.remove_prefix(unit->suffix.size());

    auto whole_value = ParseDigits<int64_t>(whole);  // all digits: nullopt means overflow
    int64_t whole_ms = 0;
    if (!whole_value || __builtin_mul_overflow(*whole_value, unit->ms, &whole_ms) ||
        __builtin_add_overflow(total_ms, whole_ms, &total_ms)) {
      return InvalidValue("duration", text, "too large");
    }
    if (!fraction.empty()) {
      if (fraction.size() > kMaxFractionDigits) {
        return InvalidValue("duration", text, "finer than a millisecond");
      }
      int64_t scale = 1;
      for (size_t i = 0; i < fraction.size(); ++i) scale *= 10;
      int64_t scaled = *ParseDigits<int64_t>(fraction) * unit->ms;  // < 1e9 * 3.6e6: no overflow
      if (scaled % scale != 0) return InvalidValue("duration", text, "finer than a millisecond");
      if (__builtin_add_overflow(total_ms, scaled / scale, &total_ms)) {
        return InvalidValue("duration", text, "too large");
      }
    }
  }
  return milliseconds(total_ms);
}

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

Result<size_t> ParseSize(std::string_view text) {
  if (text.starts_with('-')) return InvalidValue("size", text, "must not be negative");
  size_t digits = std::min(text.find_first_not_of("0123456789"), text.size());
  if (digits == 0) return InvalidValue("size", text, kSizeHint);
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
  std::string suffix = ToLower(text.substr(digits));
  const Suffix* unit = nullptr;
  for (const Suffix& candidate : kSuffixes) {
    if (candidate.name == suffix) unit = &candidate;
  }
  if (unit == nullptr) return InvalidValue("size", text, kSizeHint);
  auto number = ParseDigits<size_t>(text.substr(0, digits));  // all digits: nullopt is overflow
  size_t bytes = 0;
  if (!number || __builtin_mul_overflow(*number, unit->bytes, &bytes)) {
    return InvalidValue("size", text, "too large");
  }
  return bytes;
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

Result<int> ParseSignal(std::string_view text) {
  constexpr std::string_view kHint = "use a name such as SIGTERM, SIGINT or SIGQUIT, or a number";
  if (auto number = ParseDigits<int>(text)) {
    // SIGRTMAX is a function call in glibc, not a constant.
    if (*number < 1 || *number > SIGRTMAX) {
      return InvalidValue("signal", text, "numbers go from 1 to " + std::to_string(SIGRTMAX));
    }
    return *number;
  }
  std::string name = ToUpper(text);
  if (name.starts_with("SIG")) name.erase(0, 3);
  for (const NamedSignal& signal : kSignals) {
    if (signal.name == name) return signal.number;
  }
  return InvalidValue("signal", text, kHint);
}

std::string SignalName(int signal) {
  for (const NamedSignal& named : kSignals) {
    if (named.number == signal) return "SIG" + std::string(named.name);
  }
  return "signal " + std::to_string(signal);
}

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

Error InvalidValue(std::string_view what, std::string_view text, std::string_view why) {
  return Error{"invalid " + std::string(what) + " " + Quote(text) + " (" + std::string(why) + ")"};
}

std::string_view Trim(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n\f\v";
  size_t begin = text.find_first_not_of(kSpace);
  if (begin == std::string_view::npos) return {};
  return text.substr(begin, text.find_last_not_of(kSpace) - begin + 1);
}

std::string ToLower(std::string_view text) {
  std::string lower(text);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower;
}

std::string ToUpper(std::string_view text) {
  std::string upper(text);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return upper;
}

bool HasSpaceOrControl(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](unsigned char c) { return c <= 0x20 || c == 0x7f; });
}

Result<std::string> CheckToken(std::string_view text) {
  // Whitespace could never match: RFC 9110 section 5.5 strips it around a field value, and the
  // bearer syntax (RFC 6750 section 2.1) has none inside.
  if (text.empty() || HasSpaceOrControl(text)) {
    return Error{"invalid token (empty, or has whitespace or control characters; value not shown)"};
  }
  return std::string(text);
}

std::string HideUrlCredentials(std::string_view url) {
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return std::string(url);
  size_t authority = scheme_end + 3;
  // The user info ends at the authority's last '@' (a password may hold one; RFC 3986
  // section 3.2): an '@' in the path, query or fragment is none of it.
  size_t authority_end = std::min(url.find_first_of("/?#", authority), url.size());
  size_t at = url.substr(0, authority_end).rfind('@');
  if (at == std::string_view::npos || at < authority) return std::string(url);
  return std::string(url.substr(0, authority)) + "***" + std::string(url.substr(at));
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

}  // namespace lameduck::coordinator
