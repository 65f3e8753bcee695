// The one option parser: both spellings of a value, flags, --help, "--", and its one error form.
#include "coordinator/config/option_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace lameduck::coordinator {
namespace {

using Args = std::vector<std::string>;

constexpr OptionSpec kSpecs[] = {
    {"drain-delay"},
    {"listen"},
    {"wait", OptionKind::kFlag},
    {"help", OptionKind::kHelp, "-h"},
};

Result<CommandLine> Parse(const Args& args, DoubleDash double_dash = DoubleDash::kUnexpected) {
  return ParseCommandLine(args, {.options = kSpecs,
                                 .double_dash = double_dash,
                                 .stray_hint = "options start with --",
                                 .unknown_hint = "see tool --help"});
}

std::string ErrorOf(const Args& args) {
  auto line = Parse(args);
  return line ? "" : line.error();
}

TEST(OptionParserTest, TakesTheValueFromTheNextArgument) {
  auto line = Parse({"--drain-delay", "5s"});
  ASSERT_TRUE(line.ok()) << line.error();
  ASSERT_EQ(line->options.size(), 1u);
  EXPECT_EQ(line->options[0].index, 0u);
  EXPECT_EQ(line->options[0].name, "drain-delay");
  EXPECT_EQ(line->options[0].label, "--drain-delay");
  EXPECT_EQ(line->options[0].value, "5s");
}

TEST(OptionParserTest, TakesTheValueAfterEquals) {
  auto line = Parse({"--drain-delay=5s", "--listen=a=b", "--listen="});
  ASSERT_TRUE(line.ok()) << line.error();
  ASSERT_EQ(line->options.size(), 3u);
  EXPECT_EQ(line->options[0].value, "5s");
  EXPECT_EQ(line->options[1].value, "a=b");
  EXPECT_EQ(line->options[2].value, "");
}

TEST(OptionParserTest, KeepsRepeatsInOrder) {
  auto line = Parse({"--listen", "a", "--wait", "--listen", "b"});
  ASSERT_TRUE(line.ok()) << line.error();
  ASSERT_EQ(line->options.size(), 3u);
  EXPECT_EQ(line->options[0].value, "a");
  EXPECT_EQ(line->options[1].name, "wait");
  EXPECT_EQ(line->options[2].value, "b");
}

TEST(OptionParserTest, ReportsAnUnknownOptionWithASuggestion) {
  EXPECT_EQ(ErrorOf({"--dran-delay", "5s"}),
            "unknown option --dran-delay (did you mean --drain-delay?)");
  EXPECT_EQ(ErrorOf({"--drain_delay=5s"}),
            "unknown option --drain_delay (did you mean --drain-delay?)");
}

TEST(OptionParserTest, ReportsAnUnknownOptionWithTheHintWhenNoneIsClose) {
  EXPECT_EQ(ErrorOf({"--frobnicate"}), "unknown option --frobnicate (see tool --help)");
  EXPECT_EQ(ErrorOf({"-x"}), "unknown option -x (see tool --help)");
}

TEST(OptionParserTest, ReportsAMissingValueAtTheEnd) {
  EXPECT_EQ(ErrorOf({"--drain-delay"}), "--drain-delay: missing value");
}

TEST(OptionParserTest, ReportsAMissingValueBeforeTheNextOption) {
  EXPECT_EQ(ErrorOf({"--drain-delay", "--listen", "x"}), "--drain-delay: missing value");
}

TEST(OptionParserTest, RefusesAValueForAFlag) {
  EXPECT_EQ(ErrorOf({"--wait=yes"}), "--wait: takes no value");
}

TEST(OptionParserTest, ReportsAStrayArgumentWithTheHint) {
  EXPECT_EQ(ErrorOf({"app"}), "unexpected argument \"app\" (options start with --)");
  EXPECT_EQ(ErrorOf({"--"}), "unexpected argument \"--\" (options start with --)");
}

TEST(OptionParserTest, StopsAtHelpInEitherForm) {
  for (const char* help : {"--help", "-h"}) {
    auto line = Parse({"--wait", help, "--bogus"});
    ASSERT_TRUE(line.ok()) << line.error();
    EXPECT_TRUE(line->help);
  }
}

TEST(OptionParserTest, HandsOverWhatFollowsDoubleDash) {
  auto line = Parse({"--wait", "--", "app", "--listen"}, DoubleDash::kEndsOptions);
  ASSERT_TRUE(line.ok()) << line.error();
  EXPECT_EQ(line->options.size(), 1u);
  ASSERT_TRUE(line->after_double_dash.has_value());
  EXPECT_EQ(*line->after_double_dash, (Args{"app", "--listen"}));
  EXPECT_FALSE(Parse({"--wait"}, DoubleDash::kEndsOptions)->after_double_dash.has_value());
}

TEST(OptionParserTest, SuggestsOnlyCloseNames) {
  EXPECT_EQ(ClosestOptionName("Drain-Delay", kSpecs), "drain-delay");
  EXPECT_EQ(ClosestOptionName("lisen", kSpecs), "listen");
  EXPECT_FALSE(ClosestOptionName("upstream", kSpecs).has_value());
}

}  // namespace
}  // namespace lameduck::coordinator
