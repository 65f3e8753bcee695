// Option parsing: value syntaxes, defaults, the three sources and their precedence, and that
// every error is one line naming the option it is about.
#include "coordinator/config/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace lameduck::coordinator {
namespace {

using std::chrono::milliseconds;
using Env = std::map<std::string, std::string>;
using Args = std::vector<std::string>;

// EXPECT_TRUE(Contains(text, part)), without needing gmock.
::testing::AssertionResult Contains(std::string_view text, std::string_view part) {
  if (text.find(part) != std::string_view::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

// The message of the ConfigError that parsing throws, or "" when it does not throw.
std::string ErrorOf(const Args& args, const Env& env = {}) {
  try {
    ParseConfig(args, env);
  } catch (const ConfigError& error) {
    return error.what();
  }
  return "";
}

std::vector<std::string> Texts(const std::vector<proxy::Address>& addresses) {
  std::vector<std::string> texts;
  for (const auto& address : addresses) texts.push_back(address.text);
  return texts;
}

// Owns a temporary directory for config and token files.
class ConfigFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "config_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& contents) {
    std::string path = (dir_ / name).string();
    std::ofstream(path) << contents;
    return path;
  }

  std::filesystem::path dir_;
};

TEST(ParseConfigTest, UsesTheDocumentedDefaultsWhenNothingIsGiven) {
  Config config = ParseConfig({}, {});
  EXPECT_EQ(Texts(config.proxy.listen), Args{"0.0.0.0:8080"});
  EXPECT_EQ(config.proxy.upstream.text, "127.0.0.1:3000");
  EXPECT_EQ(config.admin.text, "0.0.0.0:9901");
  EXPECT_EQ(config.admin.port(), 9901);
  EXPECT_FALSE(config.admin_socket);
  EXPECT_FALSE(config.admin_token);
  EXPECT_FALSE(config.upstream_ready);
  EXPECT_EQ(config.drain_delay, milliseconds(5'000));
  EXPECT_EQ(config.drain_timeout, milliseconds(25'000));
  EXPECT_EQ(config.drain_spread, milliseconds(1'000));
  EXPECT_EQ(config.proxy.drain_websocket, proxy::LongLivedDrain::kClose);
  EXPECT_EQ(config.proxy.drain_sse, proxy::LongLivedDrain::kClose);
  EXPECT_EQ(config.proxy.drain_grpc, proxy::LongLivedDrain::kClose);
  EXPECT_FALSE(config.app_pid);
  EXPECT_FALSE(config.app_pidfile);
  EXPECT_FALSE(config.app_process);
  EXPECT_FALSE(config.app_exit_url);
  EXPECT_EQ(config.app_signal, SIGTERM);
  EXPECT_EQ(config.app_exit_timeout, milliseconds(10'000));
  EXPECT_EQ(config.proxy.header_timeout, milliseconds(10'000));
  EXPECT_EQ(config.proxy.idle_timeout, milliseconds(60'000));
  EXPECT_EQ(config.proxy.connect_timeout, milliseconds(5'000));
  EXPECT_EQ(config.proxy.upstream_timeout, milliseconds(60'000));
  EXPECT_EQ(config.proxy.max_header_bytes, 64u * 1024);
  EXPECT_EQ(config.proxy.max_connections, 10'000u);
  EXPECT_EQ(config.log_format, LogFormat::kJson);
  EXPECT_EQ(config.log_level, LogLevel::kInfo);
  EXPECT_TRUE(config.app_command.empty());
  EXPECT_TRUE(config.config_file.empty());
}

TEST(ParseConfigTest, AcceptsOptionAndValueAsTwoArguments) {
  Config config = ParseConfig({"--drain-delay", "250ms", "--upstream", "127.0.0.1:4000"}, {});
  EXPECT_EQ(config.drain_delay, milliseconds(250));
  EXPECT_EQ(config.proxy.upstream.port(), 4000);
}

TEST(ParseConfigTest, AcceptsOptionAndValueJoinedByEquals) {
  Config config = ParseConfig({"--drain-delay=250ms", "--app-exit-url=http://x:1/a=b"}, {});
  EXPECT_EQ(config.drain_delay, milliseconds(250));
  EXPECT_EQ(config.app_exit_url, "http://x:1/a=b");
}

TEST(ParseConfigTest, SetsEveryOption) {
  Config config =
      ParseConfig({"--listen=127.0.0.1:1",       "--upstream=127.0.0.1:2",
                   "--admin=127.0.0.1:3",        "--admin-socket=unix:/run/lameduck.sock",
                   "--admin-token=t0k",          "--upstream-ready=/healthz",
                   "--drain-delay=0s",           "--drain-timeout=1m",
                   "--app-pidfile=/run/app.pid", "--app-signal=QUIT",
                   "--app-exit-timeout=3s",      "--header-timeout=1s",
                   "--idle-timeout=2s",          "--connect-timeout=3s",
                   "--upstream-timeout=4s",      "--max-header-bytes=8k",
                   "--max-connections=7",        "--log-format=TEXT",
                   "--log-level=debug",          "--workers=2"},
                  {});
  EXPECT_EQ(Texts(config.proxy.listen), Args{"127.0.0.1:1"});
  EXPECT_EQ(config.proxy.upstream.port(), 2);
  EXPECT_EQ(config.admin.port(), 3);
  EXPECT_EQ(config.admin_socket, "/run/lameduck.sock");
  EXPECT_EQ(config.admin_token, "t0k");
  EXPECT_EQ(config.upstream_ready, "/healthz");
  EXPECT_EQ(config.drain_delay, milliseconds(0));
  EXPECT_EQ(config.drain_timeout, milliseconds(60'000));
  EXPECT_EQ(config.app_pidfile, "/run/app.pid");
  EXPECT_EQ(config.app_signal, SIGQUIT);
  EXPECT_EQ(config.app_exit_timeout, milliseconds(3'000));
  EXPECT_EQ(config.proxy.header_timeout, milliseconds(1'000));
  EXPECT_EQ(config.proxy.idle_timeout, milliseconds(2'000));
  EXPECT_EQ(config.proxy.connect_timeout, milliseconds(3'000));
  EXPECT_EQ(config.proxy.upstream_timeout, milliseconds(4'000));
  EXPECT_EQ(config.proxy.max_header_bytes, 8u * 1024);
  EXPECT_EQ(config.proxy.max_connections, 7u);
  EXPECT_EQ(config.workers, 2u);
  EXPECT_EQ(config.log_format, LogFormat::kText);
  EXPECT_EQ(config.log_level, LogLevel::kDebug);
}

TEST(ParseConfigTest, AcceptsAPlainPathForTheAdminSocket) {
  EXPECT_EQ(ParseConfig({"--admin-socket", "/tmp/a.sock"}, {}).admin_socket, "/tmp/a.sock");
}

TEST(ParseConfigTest, AccumulatesRepeatedListenOptions) {
  Config config = ParseConfig({"--listen", "0.0.0.0:80", "--listen=[::]:80"}, {});
  EXPECT_EQ(Texts(config.proxy.listen), (Args{"0.0.0.0:80", "[::]:80"}));
}

TEST(ParseConfigTest, SplitsCommaSeparatedListenAddresses) {
  Config config =
      ParseConfig({"--listen", "0.0.0.0:80,unix:/tmp/l.sock", "--listen", "[::1]:81"}, {});
  EXPECT_EQ(Texts(config.proxy.listen), (Args{"0.0.0.0:80", "unix:/tmp/l.sock", "[::1]:81"}));
}

TEST(ParseConfigTest, LetsTheLastValueOfARepeatedSingleOptionWin) {
  EXPECT_EQ(ParseConfig({"--drain-delay=1s", "--drain-delay=2s"}, {}).drain_delay,
            milliseconds(2'000));
}

TEST(ParseConfigTest, TakesEverythingAfterDoubleDashAsTheAppCommand) {
  Config config = ParseConfig({"--drain-delay=1s", "--", "/app", "--drain-delay", "x", "--"}, {});
  EXPECT_EQ(config.app_command, (Args{"/app", "--drain-delay", "x", "--"}));
  EXPECT_EQ(config.drain_delay, milliseconds(1'000));
}

TEST(ParseConfigTest, AllowsTheExitUrlToBeAnyCase) {
  EXPECT_TRUE(ParseConfig({"--app-exit-url", "HTTP://127.0.0.1/quit"}, {}).app_exit_url);
}

// Precedence

TEST(ParseConfigTest, ReadsOptionsFromTheEnvironment) {
  Config config = ParseConfig({}, {{"LAMEDUCK_DRAIN_DELAY", "1s"},
                                   {"LAMEDUCK_MAX_HEADER_BYTES", "16KiB"},
                                   {"LAMEDUCK_LISTEN", "127.0.0.1:1,127.0.0.1:2"}});
  EXPECT_EQ(config.drain_delay, milliseconds(1'000));
  EXPECT_EQ(config.proxy.max_header_bytes, 16u * 1024);
  EXPECT_EQ(Texts(config.proxy.listen), (Args{"127.0.0.1:1", "127.0.0.1:2"}));
}

TEST(ParseConfigTest, PrefersTheCommandLineOverTheEnvironment) {
  Config config = ParseConfig({"--drain-delay=2s", "--listen=127.0.0.1:9"},
                              {{"LAMEDUCK_DRAIN_DELAY", "1s"}, {"LAMEDUCK_LISTEN", "127.0.0.1:8"}});
  EXPECT_EQ(config.drain_delay, milliseconds(2'000));
  EXPECT_EQ(Texts(config.proxy.listen), Args{"127.0.0.1:9"});  // replaced, not merged
}

TEST(ParseConfigTest, IgnoresUnknownLameduckVariables) {
  Config config = ParseConfig(
      {}, {{"LAMEDUCK_PORT", "tcp://10.0.0.1:9901"}, {"LAMEDUCK_DRAN_DELAY", "x"}, {"PATH", "/"}});
  EXPECT_EQ(config.drain_delay, milliseconds(5'000));
}

TEST(ParseConfigTest, TreatsAnEmptyVariableAsUnset) {
  EXPECT_EQ(ParseConfig({}, {{"LAMEDUCK_DRAIN_DELAY", ""}}).drain_delay, milliseconds(5'000));
}

TEST(ParseConfigTest, ReadsTheAdminTokenFromTheEnvironment) {
  EXPECT_EQ(ParseConfig({}, {{"LAMEDUCK_ADMIN_TOKEN", "s3cret"}}).admin_token, "s3cret");
}

TEST_F(ConfigFileTest, ReadsOptionsFromTheConfigFile) {
  std::string path = Write("c.json", R"({"drain-delay": "1s", "listen": ["127.0.0.1:1", "[::1]:2"],
      "max-connections": 100, "max-header-bytes": 2048, "app-pid": 42, "app-signal": 10})");
  Config config = ParseConfig({"--config", path}, {});
  EXPECT_EQ(config.drain_delay, milliseconds(1'000));
  EXPECT_EQ(Texts(config.proxy.listen), (Args{"127.0.0.1:1", "[::1]:2"}));
  EXPECT_EQ(config.proxy.max_connections, 100u);
  EXPECT_EQ(config.proxy.max_header_bytes, 2048u);
  EXPECT_EQ(config.app_pid, 42);
  EXPECT_EQ(config.app_signal, 10);
  EXPECT_EQ(config.config_file, path);
}

TEST_F(ConfigFileTest, AcceptsNumbersAsStringsInTheConfigFile) {
  std::string path = Write("c.json", R"({"max-connections": "100", "listen": "127.0.0.1:1"})");
  Config config = ParseConfig({"--config=" + path}, {});
  EXPECT_EQ(config.proxy.max_connections, 100u);
  EXPECT_EQ(Texts(config.proxy.listen), Args{"127.0.0.1:1"});
}

TEST_F(ConfigFileTest, TakesTheConfigFileFromTheEnvironment) {
  std::string path = Write("c.json", R"({"drain-delay": "1s"})");
  Config config = ParseConfig({}, {{"LAMEDUCK_CONFIG", path}});
  EXPECT_EQ(config.drain_delay, milliseconds(1'000));
  EXPECT_EQ(config.config_file, path);
}

TEST_F(ConfigFileTest, PrefersTheCommandLineConfigFileOverTheEnvironmentOne) {
  std::string one = Write("one.json", R"({"drain-delay": "1s"})");
  std::string two = Write("two.json", R"({"drain-delay": "2s"})");
  EXPECT_EQ(ParseConfig({"--config", two}, {{"LAMEDUCK_CONFIG", one}}).drain_delay,
            milliseconds(2'000));
}

TEST_F(ConfigFileTest, PrefersTheEnvironmentOverTheConfigFile) {
  std::string path = Write("c.json", R"({"drain-delay": "1s", "drain-timeout": "7s"})");
  Config config = ParseConfig({"--config", path}, {{"LAMEDUCK_DRAIN_DELAY", "3s"}});
  EXPECT_EQ(config.drain_delay, milliseconds(3'000));
  EXPECT_EQ(config.drain_timeout, milliseconds(7'000));
}

TEST_F(ConfigFileTest, PrefersTheCommandLineOverEnvironmentAndFile) {
  std::string path = Write("c.json", R"({"drain-delay": "1s"})");
  Config config =
      ParseConfig({"--config", path, "--drain-delay", "4s"}, {{"LAMEDUCK_DRAIN_DELAY", "3s"}});
  EXPECT_EQ(config.drain_delay, milliseconds(4'000));
}

TEST_F(ConfigFileTest, DoesNotReportABadValueThatAHigherSourceOverrides) {
  std::string path = Write("c.json", R"({"drain-delay": "bogus"})");
  EXPECT_EQ(ParseConfig({"--config", path, "--drain-delay=1s"}, {}).drain_delay,
            milliseconds(1'000));
}

// Errors

TEST(ParseConfigErrorTest, NamesTheOptionAndValueOfABadDuration) {
  EXPECT_EQ(ErrorOf({"--drain-delay", "5x"}),
            "--drain-delay: invalid duration \"5x\" (use a number with ms, s, m or h, e.g. 250ms, "
            "5s)");
}

TEST(ParseConfigTest, SetsTheLongLivedDrainOptions) {
  Config config = ParseConfig(
      {"--drain-spread=0s", "--drain-websocket=wait", "--drain-sse=WAIT", "--drain-grpc=close"},
      {});
  EXPECT_EQ(config.drain_spread, milliseconds(0));
  EXPECT_EQ(config.proxy.drain_websocket, proxy::LongLivedDrain::kWait);
  EXPECT_EQ(config.proxy.drain_sse, proxy::LongLivedDrain::kWait);
  EXPECT_EQ(config.proxy.drain_grpc, proxy::LongLivedDrain::kClose);
  nlohmann::json shown = ToJson(config);
  EXPECT_EQ(shown["drain_spread_ms"], 0);
  EXPECT_EQ(shown["drain_websocket"], "wait");
}

TEST(ParseConfigTest, SetsTheEvidenceBasedGraceAndTheBudget) {
  Config config =
      ParseConfig({"--drain-delay=1s", "--drain-delay-max=20s", "--drain-quiet-risk=1e-4",
                   "--drain-min-share=0.1", "--termination-grace=60s"},
                  {});
  EXPECT_EQ(config.drain_delay_max, milliseconds(20'000));
  EXPECT_DOUBLE_EQ(config.drain_quiet_risk, 0.0001);
  EXPECT_DOUBLE_EQ(config.drain_min_share, 0.1);
  EXPECT_EQ(config.termination_grace, milliseconds(60'000));
  EXPECT_EQ(MaxAcceptGrace(config), milliseconds(20'000));
  nlohmann::json shown = ToJson(config);
  EXPECT_EQ(shown["drain_delay_max_ms"], 20'000);
  EXPECT_EQ(shown["drain_min_share"], 0.1);
  EXPECT_EQ(shown["termination_grace_ms"], 60'000);
  Config defaults = ParseConfig({}, {});
  EXPECT_FALSE(defaults.drain_delay_max);
  EXPECT_FALSE(defaults.termination_grace);
  EXPECT_DOUBLE_EQ(defaults.drain_quiet_risk, 0.001);
  EXPECT_DOUBLE_EQ(defaults.drain_min_share, 0.05);
  EXPECT_EQ(MaxAcceptGrace(defaults), milliseconds(5'000));
}

TEST(ParseConfigErrorTest, RejectsAShareOrRiskOutsideZeroToOne) {
  EXPECT_EQ(ErrorOf({"--drain-min-share", "5%"}),
            "--drain-min-share: invalid number \"5%\" (use a decimal number, e.g. 0.05)");
  EXPECT_TRUE(Contains(ErrorOf({"--drain-quiet-risk", "1"}), "must be between 0 and 1"));
  EXPECT_TRUE(Contains(ErrorOf({"--drain-quiet-risk", "0"}), "--drain-quiet-risk"));
  EXPECT_TRUE(Contains(ErrorOf({"--drain-min-share", "nan"}), "--drain-min-share"));
}

TEST(ParseConfigErrorTest, RejectsAMaximumGraceShorterThanTheMinimum) {
  EXPECT_EQ(ErrorOf({"--drain-delay", "5s", "--drain-delay-max", "2s"}),
            "--drain-delay-max: 2s is shorter than --drain-delay 5s, the accept grace's minimum");
}

// A grace as long as the drain's deadline would run into it, and the deadline forces what the
// grace accepted last.
TEST(ParseConfigErrorTest, RejectsAMaximumGraceThatReachesTheDrainTimeout) {
  EXPECT_EQ(ErrorOf({"--drain-delay-max", "25s"}),
            "--drain-delay-max: 25s is not shorter than --drain-timeout 25s, which counts from the "
            "drain's start");
  EXPECT_EQ(ErrorOf({"--drain-delay-max", "30s", "--drain-timeout", "31s"}), "");
}

// The pod is killed at terminationGracePeriodSeconds whatever lameduck is doing: settings that
// cannot finish inside it are refused, with the arithmetic.
TEST(ParseConfigErrorTest, RefusesSettingsThatDoNotFitTheTerminationGrace) {
  EXPECT_EQ(ErrorOf({"--termination-grace", "30s"}),
            "--termination-grace: 30s is too short: accept grace up to 5s + drain timeout 25s + "
            "app exit timeout 10s + 2s to spare = 42s; raise terminationGracePeriodSeconds to 42 "
            "or shorten these");
  EXPECT_TRUE(Contains(
      ErrorOf({"--termination-grace", "60s", "--drain-delay-max", "30s", "--drain-timeout", "40s"}),
      "accept grace up to 30s"));
  EXPECT_TRUE(Contains(ErrorOf({}, {{"LAMEDUCK_TERMINATION_GRACE", "10s"}}),
                       "LAMEDUCK_TERMINATION_GRACE: 10s is too short"));
  EXPECT_EQ(ErrorOf({"--termination-grace", "42s"}), "");  // exactly enough
  EXPECT_EQ(ErrorOf({"--termination-grace", "30s", "--drain-timeout", "10s", "--app-exit-timeout",
                     "5s", "--drain-delay", "3s"}),
            "");
}

TEST(ParseConfigErrorTest, NamesTheOptionAndTheChoicesOfABadLongLivedMode) {
  EXPECT_TRUE(Contains(ErrorOf({"--drain-websocket", "later"}), "--drain-websocket"));
  EXPECT_TRUE(Contains(ErrorOf({"--drain-websocket", "later"}), "close or wait"));
}

TEST(ParseConfigErrorTest, NamesTheOptionOfABadPort) {
  EXPECT_EQ(ErrorOf({"--listen", "0.0.0.0:99999"}), "--listen: invalid port in \"0.0.0.0:99999\"");
}

TEST(ParseConfigErrorTest, NamesTheEnvironmentVariableWhenTheValueCameFromThere) {
  EXPECT_EQ(ErrorOf({}, {{"LAMEDUCK_DRAIN_DELAY", "x"}}),
            "LAMEDUCK_DRAIN_DELAY: invalid duration \"x\" (use a number with ms, s, m or h, e.g. "
            "250ms, 5s)");
}

TEST(ParseConfigErrorTest, ReportsAnUnknownOptionWithASuggestion) {
  EXPECT_EQ(ErrorOf({"--dran-delay", "5s"}),
            "unknown option --dran-delay (did you mean --drain-delay?)");
  EXPECT_EQ(ErrorOf({"--drain_delay=5s"}),
            "unknown option --drain_delay (did you mean --drain-delay?)");
}

TEST(ParseConfigErrorTest, ReportsAnUnknownOptionWithoutASuggestionWhenNoneIsClose) {
  EXPECT_EQ(ErrorOf({"--frobnicate"}), "unknown option --frobnicate (see lameduck --help)");
  EXPECT_EQ(ErrorOf({"-x"}), "unknown option -x (see lameduck --help)");
}

TEST(ParseConfigErrorTest, ReportsAStrayArgument) {
  EXPECT_TRUE(Contains(ErrorOf({"myapp"}), "unexpected argument \"myapp\""));
}

TEST(ParseConfigErrorTest, ReportsAMissingValueAtTheEnd) {
  EXPECT_EQ(ErrorOf({"--drain-delay"}), "--drain-delay: missing value");
}

TEST(ParseConfigErrorTest, ReportsAMissingValueBeforeTheNextOption) {
  EXPECT_EQ(ErrorOf({"--drain-delay", "--listen", "0.0.0.0:1"}), "--drain-delay: missing value");
  EXPECT_EQ(ErrorOf({"--app-process", "--", "app"}), "--app-process: missing value");
}

TEST(ParseConfigErrorTest, ReportsAMissingAppAfterDoubleDash) {
  EXPECT_TRUE(Contains(ErrorOf({"--"}), "missing APP"));
}

TEST(ParseConfigErrorTest, KeepsTheMessageOnOneLineWhateverTheValue) {
  std::string message = ErrorOf({"--drain-delay", "5\nx"});
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  EXPECT_TRUE(Contains(message, "\"5\\x0ax\""));
}

TEST(ParseConfigErrorTest, RejectsZeroMaxConnections) {
  EXPECT_EQ(ErrorOf({"--max-connections=0"}),
            "--max-connections: invalid number \"0\" (must be at least 1)");
  EXPECT_EQ(ErrorOf({"--workers=0"}), "--workers: invalid number \"0\" (must be at least 1)");
  EXPECT_EQ(ErrorOf({"--workers=65"}), "--workers: invalid number \"65\" (must be at most 64)");
  EXPECT_TRUE(Contains(ErrorOf({"--workers=two"}), "--workers: invalid number"));
  EXPECT_TRUE(Contains(ErrorOf({"--max-connections=10k"}), "--max-connections: invalid number"));
}

TEST(ParseConfigErrorTest, RejectsHeaderLimitsOutside1KiBTo1MiB) {
  EXPECT_EQ(ErrorOf({"--max-header-bytes=1023"}),
            "--max-header-bytes: invalid size \"1023\" (must be between 1KiB and 1MiB)");
  EXPECT_TRUE(Contains(ErrorOf({"--max-header-bytes=2MiB"}), "between 1KiB and 1MiB"));
  EXPECT_EQ(ErrorOf({"--max-header-bytes=1KiB"}), "");
  EXPECT_EQ(ErrorOf({"--max-header-bytes=1MiB"}), "");
}

TEST(ParseConfigErrorTest, RejectsZeroTimeoutsButAllowsAZeroDrainDelay) {
  for (const char* option : {"--drain-timeout", "--app-exit-timeout", "--header-timeout",
                             "--idle-timeout", "--connect-timeout", "--upstream-timeout"}) {
    EXPECT_EQ(ErrorOf({option, "0s"}),
              std::string(option) + ": invalid duration \"0s\" (must be more than 0)");
  }
  EXPECT_EQ(ErrorOf({"--drain-delay", "0s"}), "");
}

TEST(ParseConfigErrorTest, RejectsAReadinessPathWithoutALeadingSlash) {
  EXPECT_TRUE(Contains(ErrorOf({"--upstream-ready", "healthz"}),
                       "--upstream-ready: invalid path \"healthz\""));
}

TEST(ParseConfigErrorTest, RejectsAnExitUrlThatIsNotHttp) {
  EXPECT_TRUE(Contains(ErrorOf({"--app-exit-url", "127.0.0.1/quit"}),
                       "--app-exit-url: invalid URL \"127.0.0.1/quit\""));
  EXPECT_TRUE(Contains(ErrorOf({"--app-exit-url", "https://x/quit"}), "https is not supported"));
  EXPECT_TRUE(Contains(ErrorOf({"--app-exit-url", "http://"}), "--app-exit-url: invalid URL"));
}

TEST(ParseConfigErrorTest, RejectsANonPositivePid) {
  for (const char* pid : {"0", "-1", "abc", "99999999999"}) {
    EXPECT_EQ(ErrorOf({"--app-pid", pid}),
              "--app-pid: invalid pid \"" + std::string(pid) + "\" (must be a positive integer)");
  }
}

TEST(ParseConfigErrorTest, RejectsAnUnknownSignal) {
  EXPECT_TRUE(
      Contains(ErrorOf({"--app-signal", "SIGFOO"}), "--app-signal: invalid signal \"SIGFOO\""));
}

TEST(ParseConfigErrorTest, RejectsAnUnknownLogFormatOrLevel) {
  EXPECT_EQ(ErrorOf({"--log-format", "xml"}),
            "--log-format: invalid log format \"xml\" (use json or text)");
  EXPECT_EQ(ErrorOf({"--log-level", "trace"}),
            "--log-level: invalid log level \"trace\" (use debug, info, warn or error)");
}

TEST(ParseConfigErrorTest, RejectsAnUpstreamOnPortZero) {
  EXPECT_TRUE(Contains(ErrorOf({"--upstream", "127.0.0.1:0"}), "--upstream: port 0"));
}

TEST(ParseConfigErrorTest, RejectsAnEmptyListenEntry) {
  EXPECT_EQ(ErrorOf({"--listen", "0.0.0.0:1,"}), "--listen: empty address in \"0.0.0.0:1,\"");
}

TEST(ParseConfigErrorTest, RejectsAnEmptyOrOverlongAdminSocketPath) {
  EXPECT_TRUE(Contains(ErrorOf({"--admin-socket=unix:"}), "--admin-socket: invalid socket path"));
  EXPECT_TRUE(
      Contains(ErrorOf({"--admin-socket", "/" + std::string(200, 'a')}), "longer than 107 bytes"));
}

TEST(ParseConfigErrorTest, RejectsTwoWaysToTellTheAppToExit) {
  EXPECT_EQ(ErrorOf({"--app-pid=1", "--app-process=app"}),
            "--app-pid and --app-process cannot be used together (choose one way to tell the app "
            "to exit)");
  EXPECT_EQ(ErrorOf({"--app-exit-url=http://x/q"}, {{"LAMEDUCK_APP_PIDFILE", "/p"}}),
            "LAMEDUCK_APP_PIDFILE and --app-exit-url cannot be used together (choose one way to "
            "tell the app to exit)");
}

TEST(ParseConfigErrorTest, RejectsAnAppExitOptionTogetherWithALaunchedApp) {
  EXPECT_EQ(ErrorOf({"--app-pid=1", "--", "/app"}),
            "--app-pid cannot be used with an APP after \"--\" (lameduck signals the APP it "
            "launched itself)");
}

TEST(ParseConfigErrorTest, RejectsAnAdminTokenWithoutEchoingIt) {
  std::string message = ErrorOf({"--admin-token", "has space"});
  EXPECT_TRUE(Contains(message, "--admin-token: invalid token"));
  EXPECT_EQ(message.find("has space"), std::string::npos) << message;
}

TEST_F(ConfigFileTest, NamesTheConfigFileThatCannotBeRead) {
  std::string path = (dir_ / "missing.json").string();
  EXPECT_EQ(ErrorOf({"--config", path}),
            "--config " + path + ": cannot read file (No such file or directory)");
  EXPECT_EQ(ErrorOf({}, {{"LAMEDUCK_CONFIG", path}}),
            "LAMEDUCK_CONFIG " + path + ": cannot read file (No such file or directory)");
}

TEST_F(ConfigFileTest, ReportsWhereTheJsonIsInvalid) {
  std::string path = Write("c.json", "{\n  \"drain-delay\": 5s\n}");
  EXPECT_EQ(ErrorOf({"--config", path}),
            "--config " + path + ": invalid JSON at byte 21 (line 2, column 19)");
}

TEST_F(ConfigFileTest, RejectsAConfigFileThatIsNotAnObject) {
  std::string path = Write("c.json", R"(["--drain-delay", "5s"])");
  EXPECT_TRUE(Contains(ErrorOf({"--config", path}), ": expected a JSON object"));
}

TEST_F(ConfigFileTest, ReportsAnUnknownKeyWithASuggestion) {
  std::string path = Write("c.json", R"({"dran-delay": "5s"})");
  EXPECT_EQ(ErrorOf({"--config", path}),
            "--config " + path + ": unknown key \"dran-delay\" (did you mean \"drain-delay\"?)");
}

TEST_F(ConfigFileTest, NamesTheKeyOfABadValue) {
  std::string path = Write("c.json", R"({"drain-delay": "5x"})");
  EXPECT_EQ(ErrorOf({"--config", path}),
            "--config " + path +
                ": key \"drain-delay\": invalid duration \"5x\" (use a number with ms, s, m or h, "
                "e.g. 250ms, 5s)");
}

TEST_F(ConfigFileTest, RejectsABareNumberForADuration) {
  std::string path = Write("c.json", R"({"drain-delay": 5})");
  EXPECT_TRUE(Contains(ErrorOf({"--config", path}),
                       ": key \"drain-delay\": invalid duration \"5\" (missing unit"));
}

TEST_F(ConfigFileTest, RejectsValuesOfTheWrongJsonType) {
  std::string path = Write("c.json", R"({"drain-delay": ["5s"]})");
  EXPECT_EQ(
      ErrorOf({"--config", path}),
      "--config " + path + ": key \"drain-delay\": expected a string or a number, got [\"5s\"]");
  path = Write("d.json", R"({"listen": true})");
  EXPECT_TRUE(Contains(ErrorOf({"--config", path}),
                       ": key \"listen\": expected a string or a list of strings, got true"));
}

TEST_F(ConfigFileTest, RejectsAConfigKeyInsideTheConfigFile) {
  std::string path = Write("c.json", R"({"config": "/other.json"})");
  EXPECT_TRUE(Contains(ErrorOf({"--config", path}), "cannot name another"));
}

TEST_F(ConfigFileTest, NamesBothSourcesOfConflictingOptions) {
  std::string path = Write("c.json", R"({"app-process": "app"})");
  EXPECT_EQ(ErrorOf({"--config", path, "--app-pid=1"}),
            "--app-pid and \"app-process\" in --config " + path +
                " cannot be used together (choose one way to tell the app to exit)");
}

// The admin token

TEST_F(ConfigFileTest, TrimsTheTokenFile) {
  std::string path = Write("token", "  s3cret-token\r\n\n");
  EXPECT_EQ(ParseConfig({"--admin-token-file", path}, {}).admin_token, "s3cret-token");
}

TEST_F(ConfigFileTest, NamesTheOptionOfAnUnreadableTokenFile) {
  std::string path = (dir_ / "missing").string();
  EXPECT_EQ(ErrorOf({"--admin-token-file", path}),
            "--admin-token-file: cannot read \"" + path + "\" (No such file or directory)");
}

TEST_F(ConfigFileTest, RejectsAnEmptyTokenFile) {
  std::string path = Write("token", "\n");
  EXPECT_EQ(ErrorOf({"--admin-token-file", path}), "--admin-token-file: \"" + path + "\" is empty");
}

TEST_F(ConfigFileTest, RejectsBothATokenAndATokenFile) {
  std::string path = Write("token", "s3cret");
  EXPECT_EQ(ErrorOf({"--admin-token-file", path}, {{"LAMEDUCK_ADMIN_TOKEN", "other"}}),
            "LAMEDUCK_ADMIN_TOKEN and --admin-token-file cannot be used together (give the admin "
            "token one way)");
}

TEST_F(ConfigFileTest, NeverShowsTheTokenInTheJson) {
  std::string path = Write("token", "s3cret-token\n");
  Config config = ParseConfig({"--admin-token-file", path}, {});
  nlohmann::json json = ToJson(config);
  EXPECT_EQ(json.dump().find("s3cret-token"), std::string::npos) << json.dump();
  EXPECT_EQ(json["admin_token"], "set");
}

// ToJson and UsageText

TEST(ToJsonTest, LeavesAnUnsetTokenOut) {
  EXPECT_FALSE(ToJson(ParseConfig({}, {})).contains("admin_token"));
}

TEST(ToJsonTest, ShowsTheEffectiveConfigurationWithUnitsInKeys) {
  nlohmann::json json = ToJson(ParseConfig({"--listen=127.0.0.1:1,127.0.0.1:2", "--app-signal=9",
                                            "--admin-token=x", "--", "/app", "--password=p"},
                                           {}));
  EXPECT_EQ(json["listen"], nlohmann::json({"127.0.0.1:1", "127.0.0.1:2"}));
  EXPECT_EQ(json["upstream"], "127.0.0.1:3000");
  EXPECT_EQ(json["admin"], "0.0.0.0:9901");
  EXPECT_EQ(json["drain_delay_ms"], 5000);
  EXPECT_EQ(json["drain_timeout_ms"], 25000);
  EXPECT_EQ(json["header_timeout_ms"], 10000);
  EXPECT_EQ(json["max_header_bytes"], 65536);
  EXPECT_EQ(json["max_connections"], 10000);
  EXPECT_EQ(json["app_signal"], "SIGKILL");
  EXPECT_EQ(json["log_format"], "json");
  EXPECT_EQ(json["log_level"], "info");
  EXPECT_EQ(json["app_command"], "/app");  // arguments may hold secrets
  EXPECT_EQ(json.dump().find("password"), std::string::npos);
  EXPECT_FALSE(json.contains("app_pid"));
  EXPECT_FALSE(json.contains("admin_token_file"));
}

TEST(ToJsonTest, HidesCredentialsInTheExitUrl) {
  nlohmann::json json =
      ToJson(ParseConfig({"--app-exit-url", "http://user:pw@127.0.0.1:3000/quit?a=b@c"}, {}));
  EXPECT_EQ(json["app_exit_url"], "http://***@127.0.0.1:3000/quit?a=b@c");
  json = ToJson(ParseConfig({"--app-exit-url", "http://127.0.0.1:3000/quit?a=b@c"}, {}));
  EXPECT_EQ(json["app_exit_url"], "http://127.0.0.1:3000/quit?a=b@c");
}

TEST(UsageTextTest, ListsEveryOptionWithItsDefault) {
  std::string usage(UsageText());
  for (const char* line : {"--listen ADDR",          "--upstream ADDR",
                           "--admin ADDR",           "--admin-socket PATH",
                           "--admin-token TOKEN",    "--admin-token-file PATH",
                           "--upstream-ready PATH",  "--drain-delay DUR",
                           "--drain-timeout DUR",    "--app-pid PID",
                           "--app-pidfile PATH",     "--app-process NAME",
                           "--app-exit-url URL",     "--app-signal SIGNAL",
                           "--app-exit-timeout DUR", "--header-timeout DUR",
                           "--idle-timeout DUR",     "--connect-timeout DUR",
                           "--upstream-timeout DUR", "--max-header-bytes SIZE",
                           "--max-connections N",    "--workers N",
                           "--log-format FORMAT",    "--log-level LEVEL",
                           "--config FILE"}) {
    EXPECT_TRUE(Contains(usage, line));
  }
  for (const char* value :
       {"(default: 0.0.0.0:8080)", "(default: 127.0.0.1:3000)", "(default: 0.0.0.0:9901)",
        "(default: 5s)", "(default: 25s)", "(default: SIGTERM)", "(default: 10s)", "(default: 60s)",
        "(default: 64KiB)", "(default: 10000)", "(default: json)", "(default: info)"}) {
    EXPECT_TRUE(Contains(usage, value));
  }
}

TEST(UsageTextTest, FitsIn100Columns) {
  std::string_view usage = UsageText();
  size_t start = 0;
  while (start < usage.size()) {
    size_t end = usage.find('\n', start);
    if (end == std::string_view::npos) end = usage.size();
    EXPECT_LE(end - start, 100u) << usage.substr(start, end - start);
    start = end + 1;
  }
}

}  // namespace
}  // namespace lameduck::coordinator

namespace lameduck::coordinator {
namespace {

// Found by fuzz_config (tests/fuzz/regressions/fuzz_config/config-number-overflow).
TEST_F(ConfigFileTest, ANumberTooLargeForJsonIsAnErrorNamingTheFileNotACrash) {
  std::string path = Write("huge.json", R"({"max-connections": 1e400})");
  std::string error = ErrorOf({"--config", path});
  EXPECT_TRUE(Contains(error, "--config " + path)) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos);
}

}  // namespace
}  // namespace lameduck::coordinator
