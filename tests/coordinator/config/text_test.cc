// The shared texts: durations, sizes and signals both ways, quoting, tokens, hidden URL
// credentials, small files.
#include "coordinator/config/text.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <string_view>

namespace lameduck::coordinator {
namespace {

using std::chrono::milliseconds;

// EXPECT_TRUE(Contains(text, part)), without needing gmock.
::testing::AssertionResult Contains(std::string_view text, std::string_view part) {
  if (text.find(part) != std::string_view::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

TEST(ParseDurationTest, AcceptsEachUnit) {
  EXPECT_EQ(ParseDuration("250ms").value(), milliseconds(250));
  EXPECT_EQ(ParseDuration("5s").value(), milliseconds(5'000));
  EXPECT_EQ(ParseDuration("2m").value(), milliseconds(120'000));
  EXPECT_EQ(ParseDuration("1h").value(), milliseconds(3'600'000));
}

TEST(ParseDurationTest, AcceptsZero) { EXPECT_EQ(ParseDuration("0s").value(), milliseconds(0)); }

TEST(ParseDurationTest, AcceptsFractions) {
  EXPECT_EQ(ParseDuration("1.5s").value(), milliseconds(1'500));
  EXPECT_EQ(ParseDuration("0.25m").value(), milliseconds(15'000));
}

TEST(ParseDurationTest, AcceptsUnitSequencesAsGoDoes) {
  EXPECT_EQ(ParseDuration("1m30s").value(), milliseconds(90'000));
  EXPECT_EQ(ParseDuration("1h2m3s4ms").value(), milliseconds(3'723'004));
}

TEST(ParseDurationTest, RejectsABareNumberAsMissingItsUnit) {
  auto result = ParseDuration("5");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error(), "invalid duration \"5\" (missing unit: use ms, s, m or h, e.g. 5s)");
  EXPECT_FALSE(ParseDuration("1.5").ok());
}

TEST(ParseDurationTest, RejectsNegativeDurations) {
  auto result = ParseDuration("-5s");
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(Contains(result.error(), "must not be negative"));
}

TEST(ParseDurationTest, RejectsUnknownUnitsWithAHint) {
  auto result = ParseDuration("5x");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error(),
            "invalid duration \"5x\" (use a number with ms, s, m or h, e.g. 250ms, 5s)");
}

TEST(ParseDurationTest, RejectsMalformedText) {
  for (const char* text :
       {"", "s", "ms", "5 s", " 5s", "5s ", "1.s", ".5s", "+5s", "5sec", "1m30", "5S", "1d"}) {
    EXPECT_FALSE(ParseDuration(text).ok()) << text;
  }
}

TEST(ParseDurationTest, RejectsDurationsFinerThanAMillisecond) {
  EXPECT_TRUE(Contains(ParseDuration("1.5ms").error(), "finer than a millisecond"));
  EXPECT_TRUE(Contains(ParseDuration("0.0001s").error(), "finer than a millisecond"));
}

TEST(ParseDurationTest, RejectsOverflowInsteadOfWrapping) {
  EXPECT_TRUE(Contains(ParseDuration("99999999999999999999h").error(), "too large"));
  EXPECT_TRUE(Contains(ParseDuration("9000000000000000h").error(), "too large"));
}

// ParseSize

TEST(ParseSizeTest, AcceptsPlainBytes) {
  EXPECT_EQ(ParseSize("65536").value(), 65'536u);
  EXPECT_EQ(ParseSize("0").value(), 0u);
}

TEST(ParseSizeTest, AcceptsBinarySuffixes) {
  EXPECT_EQ(ParseSize("64KiB").value(), 64u * 1024);
  EXPECT_EQ(ParseSize("1MiB").value(), 1024u * 1024);
  EXPECT_EQ(ParseSize("1GiB").value(), 1024u * 1024 * 1024);
}

TEST(ParseSizeTest, ReadsDecimalLookingSuffixesAs1024Based) {
  EXPECT_EQ(ParseSize("64k").value(), 64u * 1024);
  EXPECT_EQ(ParseSize("64K").value(), 64u * 1024);
  EXPECT_EQ(ParseSize("64KB").value(), 64u * 1024);
  EXPECT_EQ(ParseSize("2mb").value(), 2u * 1024 * 1024);
}

TEST(ParseSizeTest, RejectsUnknownSuffixesWithAHint) {
  auto result = ParseSize("64XB");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error(),
            "invalid size \"64XB\" (use bytes or a number with KiB, MiB or GiB, e.g. 64KiB)");
}

TEST(ParseSizeTest, RejectsMalformedText) {
  for (const char* text : {"", "KiB", "1.5KiB", " 1", "1 KiB", "0x10"}) {
    EXPECT_FALSE(ParseSize(text).ok()) << text;
  }
  EXPECT_TRUE(Contains(ParseSize("-1").error(), "must not be negative"));
}

TEST(ParseSizeTest, RejectsOverflowInsteadOfWrapping) {
  EXPECT_TRUE(Contains(ParseSize("99999999999999999999").error(), "too large"));
  EXPECT_TRUE(Contains(ParseSize("17179869184GiB").error(), "too large"));
}

// ParseSignal

TEST(ParseSignalTest, AcceptsNamesWithAndWithoutSig) {
  EXPECT_EQ(ParseSignal("SIGTERM").value(), SIGTERM);
  EXPECT_EQ(ParseSignal("TERM").value(), SIGTERM);
  EXPECT_EQ(ParseSignal("SIGINT").value(), SIGINT);
  EXPECT_EQ(ParseSignal("SIGQUIT").value(), SIGQUIT);
  EXPECT_EQ(ParseSignal("SIGHUP").value(), SIGHUP);
  EXPECT_EQ(ParseSignal("SIGUSR1").value(), SIGUSR1);
  EXPECT_EQ(ParseSignal("SIGUSR2").value(), SIGUSR2);
  EXPECT_EQ(ParseSignal("SIGKILL").value(), SIGKILL);
  EXPECT_EQ(ParseSignal("SIGWINCH").value(), SIGWINCH);
}

TEST(ParseSignalTest, IgnoresCaseInNames) {
  EXPECT_EQ(ParseSignal("sigterm").value(), SIGTERM);
  EXPECT_EQ(ParseSignal("Quit").value(), SIGQUIT);
}

TEST(ParseSignalTest, AcceptsNumbers) {
  EXPECT_EQ(ParseSignal("15").value(), 15);
  EXPECT_EQ(ParseSignal("9").value(), 9);
}

TEST(ParseSignalTest, RejectsUnknownNamesAndOutOfRangeNumbers) {
  EXPECT_TRUE(Contains(ParseSignal("SIGFOO").error(), "invalid signal \"SIGFOO\""));
  for (const char* text : {"", "SIG", "0", "-15", "999", "TERM ", "15x"}) {
    EXPECT_FALSE(ParseSignal(text).ok()) << text;
  }
}

// Defaults and syntax

TEST(FormatDurationTest, UsesTheLargestWholeUnit) {
  EXPECT_EQ(FormatDuration(milliseconds(0)), "0s");
  EXPECT_EQ(FormatDuration(milliseconds(250)), "250ms");
  EXPECT_EQ(FormatDuration(milliseconds(1'500)), "1500ms");
  EXPECT_EQ(FormatDuration(milliseconds(5'000)), "5s");
  EXPECT_EQ(FormatDuration(milliseconds(3'600'000)), "1h");
  EXPECT_EQ(FormatDuration(milliseconds(7'200'000)), "2h");
}

TEST(FormatDurationTest, WritesMinutesOnlyFromTenUp) {
  EXPECT_EQ(FormatDuration(milliseconds(60'000)), "60s");
  EXPECT_EQ(FormatDuration(milliseconds(120'000)), "120s");
  EXPECT_EQ(FormatDuration(milliseconds(600'000)), "10m");
  EXPECT_EQ(FormatDuration(milliseconds(630'000)), "630s");
}

TEST(FormatDurationTest, ReadsBackAsTheSameDuration) {
  for (int64_t ms : {0, 1, 999, 1'000, 61'000, 600'000, 5'400'000, 3'600'000, 3'600'001}) {
    SCOPED_TRACE(ms);
    EXPECT_EQ(ParseDuration(FormatDuration(milliseconds(ms))).value(), milliseconds(ms));
  }
}

TEST(FormatSizeTest, UsesTheLargestWholeBinaryUnit) {
  EXPECT_EQ(FormatSize(0), "0");
  EXPECT_EQ(FormatSize(1000), "1000");
  EXPECT_EQ(FormatSize(64 << 10), "64KiB");
  EXPECT_EQ(FormatSize(1 << 20), "1MiB");
  EXPECT_EQ(FormatSize(size_t{3} << 30), "3GiB");
}

TEST(SignalNameTest, NamesSignalsTheWayPeopleWriteThem) {
  EXPECT_EQ(SignalName(SIGTERM), "SIGTERM");
  EXPECT_EQ(SignalName(SIGKILL), "SIGKILL");
  EXPECT_EQ(SignalName(SIGUSR1), "SIGUSR1");
}

TEST(SignalNameTest, NamesAnUnnamedSignalByItsNumber) {
  EXPECT_EQ(SignalName(SIGRTMIN + 6), "signal " + std::to_string(SIGRTMIN + 6));
}

TEST(SignalNameTest, ReadsBackAsTheSameSignal) {
  for (int signal : {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH, SIGABRT}) {
    SCOPED_TRACE(signal);
    EXPECT_EQ(ParseSignal(SignalName(signal)).value(), signal);
  }
}

TEST(QuoteTest, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(Quote("plain"), "\"plain\"");
  EXPECT_EQ(Quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(Quote("line\nbreak\x7f"), "\"line\\x0abreak\\x7f\"");
}

TEST(TrimTest, DropsSurroundingWhitespaceOnly) {
  EXPECT_EQ(Trim("  token\n"), "token");
  EXPECT_EQ(Trim("a b"), "a b");
  EXPECT_EQ(Trim(" \t\r\n"), "");
}

TEST(CheckTokenTest, RefusesWhitespaceAndControlCharactersWithoutEchoingTheToken) {
  EXPECT_EQ(CheckToken("s3cret").value(), "s3cret");
  for (const char* bad : {"", "has space", "line\r\nX-Injected: 1", "tab\t"}) {
    auto token = CheckToken(bad);
    ASSERT_FALSE(token.ok()) << bad;
    EXPECT_TRUE(Contains(token.error(), "value not shown"));
    if (*bad != '\0') {
      EXPECT_FALSE(Contains(token.error(), bad));
    }
  }
}

TEST(HideUrlCredentialsTest, HidesTheUserInfo) {
  EXPECT_EQ(HideUrlCredentials("http://user:pw@127.0.0.1:3000/quit"),
            "http://***@127.0.0.1:3000/quit");
  EXPECT_EQ(HideUrlCredentials("http://user:pw@host"), "http://***@host");
}

TEST(HideUrlCredentialsTest, HidesAPasswordHoldingAnAt) {
  EXPECT_EQ(HideUrlCredentials("http://user:p@ss@host/quit"), "http://***@host/quit");
}

TEST(HideUrlCredentialsTest, LeavesAnAtOutsideTheAuthorityAlone) {
  EXPECT_EQ(HideUrlCredentials("http://127.0.0.1:3000/quit?a=b@c"),
            "http://127.0.0.1:3000/quit?a=b@c");
  EXPECT_EQ(HideUrlCredentials("http://host?to=a@b"), "http://host?to=a@b");
  EXPECT_EQ(HideUrlCredentials("http://u:p@host/quit?a=b@c"), "http://***@host/quit?a=b@c");
  EXPECT_EQ(HideUrlCredentials("not a url@all"), "not a url@all");
}

TEST(ReadFileTest, ReadsASmallFileWhole) {
  std::string path = ::testing::TempDir() + "text_test_read_file";
  std::ofstream(path) << "42\n";
  EXPECT_EQ(ReadFile(path, 16).value(), "42\n");
  EXPECT_TRUE(Contains(ReadFile(path, 2).error(), "larger than 2"));
  std::remove(path.c_str());
  EXPECT_FALSE(ReadFile(path, 16).ok());
}

}  // namespace
}  // namespace lameduck::coordinator
