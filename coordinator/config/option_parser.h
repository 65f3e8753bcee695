// The one option parser of every subcommand (the server, `drain`, `inject`): `--name value` and
// `--name=value`, flags that take no value, `--help`, and "--" ending the options, looked up in
// the caller's table of known names. Errors are one line naming the option, in one form:
//   unknown option --dran-delay (did you mean --drain-delay?)
//   --drain-delay: missing value
//   --wait: takes no value
//   unexpected argument "x" (HINT)
// It only splits and checks names; what a value means is the caller's (config.h for the server).
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/result.h"

namespace lameduck::coordinator {

enum class OptionKind {
  kValue,  // --name VALUE or --name=VALUE
  kFlag,   // --name alone
  kHelp,   // --name alone, or its short form; ends parsing: the rest is not read
};

struct OptionSpec {
  std::string_view name;  // without "--"
  OptionKind kind = OptionKind::kValue;
  std::string_view short_form = "";  // "-h", for kHelp
};

// What "--" means to the subcommand.
enum class DoubleDash {
  kEndsOptions,  // what follows is the caller's (the server's APP and its arguments)
  kUnexpected,   // a stray argument like any other
};

struct OptionSyntax {
  std::span<const OptionSpec> options;
  DoubleDash double_dash = DoubleDash::kUnexpected;
  std::string_view stray_hint = "";    // "unexpected argument \"x\" (STRAY_HINT)"
  std::string_view unknown_hint = "";  // "unknown option --x (UNKNOWN_HINT)" when none is close;
                                       // "": the caller adds its own
};

struct ParsedOption {
  size_t index;           // into OptionSyntax::options
  std::string_view name;  // the spec's name
  std::string label;      // "--name": how an error about the value starts
  std::string value;      // empty for a flag
};

struct CommandLine {
  std::vector<ParsedOption> options;  // in the order given, repeats included
  bool help = false;                  // a kHelp option was given; parsing stopped there
  std::optional<std::vector<std::string>> after_double_dash;  // when "--" was given
};

Result<CommandLine> ParseCommandLine(std::span<const std::string> args, const OptionSyntax& syntax);

// The known name a misspelling most likely meant ("dran-delay", "drain_delay", "Drain-Delay"),
// if one is at most two edits away.
std::optional<std::string_view> ClosestOptionName(std::string_view name,
                                                  std::span<const OptionSpec> options);

}  // namespace lameduck::coordinator
