// Splitting the command line into known options and their values.
#include "coordinator/config/option_parser.h"

#include <algorithm>

#include "coordinator/config/text.h"

namespace lameduck::coordinator {
namespace {

constexpr size_t kNotFound = static_cast<size_t>(-1);
constexpr size_t kMaxSuggestionEdits = 2;  // more is a different word

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

size_t FindOption(std::span<const OptionSpec> options, std::string_view name) {
  for (size_t i = 0; i < options.size(); ++i) {
    if (options[i].name == name) return i;
  }
  return kNotFound;
}

size_t FindShortForm(std::span<const OptionSpec> options, std::string_view arg) {
  for (size_t i = 0; i < options.size(); ++i) {
    if (!options[i].short_form.empty() && options[i].short_form == arg) return i;
  }
  return kNotFound;
}

Error Unknown(std::string_view given, std::string_view name, const OptionSyntax& syntax) {
  std::string message = "unknown option " + std::string(given);
  if (auto closest = ClosestOptionName(name, syntax.options)) {
    return Error{message + " (did you mean --" + std::string(*closest) + "?)"};
  }
  if (!syntax.unknown_hint.empty()) message += " (" + std::string(syntax.unknown_hint) + ")";
  return Error{message};
}

}  // namespace

Result<CommandLine> ParseCommandLine(std::span<const std::string> args,
                                     const OptionSyntax& syntax) {
  CommandLine line;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (arg == "--" && syntax.double_dash == DoubleDash::kEndsOptions) {
      line.after_double_dash.emplace(args.begin() + static_cast<ptrdiff_t>(i) + 1, args.end());
      return line;
    }
    if (size_t index = FindShortForm(syntax.options, arg); index != kNotFound) {
      line.options.push_back({index, syntax.options[index].name, std::string(arg), ""});
      line.help = syntax.options[index].kind == OptionKind::kHelp;
      if (line.help) return line;
      continue;
    }
    if (!arg.starts_with("--") || arg == "--") {
      if (arg.starts_with('-') && arg.size() > 1 && arg != "--") {
        return Unknown(arg, arg.substr(1), syntax);
      }
      return Error{"unexpected argument " + Quote(arg) + " (" + std::string(syntax.stray_hint) +
                   ")"};
    }
    std::string_view name = arg.substr(2);
    std::optional<std::string> value;
    if (size_t equals = name.find('='); equals != std::string_view::npos) {
      value = std::string(name.substr(equals + 1));
      name = name.substr(0, equals);
    }
    size_t index = FindOption(syntax.options, name);
    if (index == kNotFound) return Unknown("--" + std::string(name), name, syntax);
    const OptionSpec& spec = syntax.options[index];
    std::string label = "--" + std::string(name);
    if (spec.kind != OptionKind::kValue) {
      if (value) return Error{label + ": takes no value"};
      line.options.push_back({index, spec.name, std::move(label), ""});
      if (spec.kind == OptionKind::kHelp) {
        line.help = true;
        return line;
      }
      continue;
    }
    if (!value) {
      // "--drain-delay --listen x" is a forgotten value, not a delay called "--listen".
      if (i + 1 == args.size() || args[i + 1].starts_with("--")) {
        return Error{label + ": missing value"};
      }
      value = args[++i];
    }
    line.options.push_back({index, spec.name, std::move(label), std::move(*value)});
  }
  return line;
}

std::optional<std::string_view> ClosestOptionName(std::string_view name,
                                                  std::span<const OptionSpec> options) {
  std::string dashed = ToLower(name);
  std::replace(dashed.begin(), dashed.end(), '_', '-');
  std::optional<std::string_view> best;
  size_t best_distance = kMaxSuggestionEdits + 1;
  for (const OptionSpec& option : options) {
    size_t distance = EditDistance(dashed, option.name);
    if (distance < best_distance) {
      best = option.name;
      best_distance = distance;
    }
  }
  return best;
}

}  // namespace lameduck::coordinator
