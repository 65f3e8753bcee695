// The small texts the coordinator reads from people and writes back to them: durations, sizes
// and signals both ways, quoting for one-line messages, tokens, URLs with their credentials
// hidden, and small files read whole. One copy of each, shared by the configuration, the
// supervisor and the command-line tools, so that they cannot drift apart (issue 9: two signal
// namers once printed "40" and "signal 40" for the same signal).
//
// Pure functions but ReadFile; no option knows about another here (config.h does that).
#pragma once

#include <cctype>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "proxy/result.h"

namespace lameduck::coordinator {

// "250ms", "5s", "2m", "1h", "0s", "1.5s", "1m30s". Units are required: a bare "5" is an error,
// since seconds and milliseconds are both plausible readings of it.
Result<std::chrono::milliseconds> ParseDuration(std::string_view text);
// The largest unit that keeps the number whole, as people write durations ("250ms", "5s", "1h");
// minutes only from 10 up, so that "60s" and "120s" read as DESIGN.md writes them. ParseDuration
// reads every output back to the same value.
std::string FormatDuration(std::chrono::milliseconds duration);

// "65536", "64KiB", "1MiB", "1GiB", "0". k, K, KB, m, MB, g, GB (any case) are 1024-based too.
Result<size_t> ParseSize(std::string_view text);
// "64KiB" when whole, else the bytes: "1000".
std::string FormatSize(size_t bytes);

// "SIGTERM", "term", "15": a name with or without SIG, in any case, or a number.
Result<int> ParseSignal(std::string_view text);
// "SIGTERM" for SIGTERM; "signal 40" for a number without a name.
std::string SignalName(int signal);

// Digits only, in range: no sign, no spaces, no suffix.
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

// "invalid duration "5" (missing unit: ...)": what, the value quoted, why.
Error InvalidValue(std::string_view what, std::string_view text, std::string_view why);

// For one-line messages: quoted, with quotes, backslashes and control characters escaped, so a
// value holding a newline cannot break the line.
std::string Quote(std::string_view text);
// Without surrounding whitespace (a file written by `echo` ends in a newline).
std::string_view Trim(std::string_view text);
std::string ToLower(std::string_view text);  // ASCII only
std::string ToUpper(std::string_view text);  // ASCII only
// A space, a control character or DEL anywhere: unusable in a header, a path or a token.
bool HasSpaceOrControl(std::string_view text);

// A bearer token as given (RFC 6750 section 2.1: no whitespace inside; CR or LF would inject
// header lines). The error never echoes the value: messages end up in logs more people read.
Result<std::string> CheckToken(std::string_view text);

// http://user:password@host/path as http://***@host/path, for logs and /status; other text as it
// is.
std::string HideUrlCredentials(std::string_view url);

// A whole small file (a token, a config, a pidfile, a /proc entry); an error over max_bytes.
Result<std::string> ReadFile(const std::string& path, size_t max_bytes);

}  // namespace lameduck::coordinator
