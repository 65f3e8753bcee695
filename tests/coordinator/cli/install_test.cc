// `lameduck install`: copying the running binary, and its one-line failures.
#include "coordinator/cli/install.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

namespace lameduck::coordinator {
namespace {

namespace fs = std::filesystem;
using Args = std::vector<std::string>;

std::string ReadFile(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  EXPECT_TRUE(file) << "cannot read " << path;
  return {std::istreambuf_iterator<char>(file), {}};
}

bool IsOneLine(std::string_view text) {
  return !text.empty() && text.find('\n') == text.size() - 1;
}

class InstallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("lameduck-install-test-" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
};

TEST_F(InstallTest, CopiesTheRunningBinaryExecutable) {
  fs::path target = dir_ / "lameduck";
  std::ostringstream err;
  ASSERT_EQ(RunInstall({target.string()}, err), 0) << err.str();
  EXPECT_EQ(err.str(), "");
  EXPECT_TRUE(ReadFile(target) == ReadFile("/proc/self/exe")) << "the copy differs";
  struct stat info {};
  ASSERT_EQ(stat(target.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0755u);
  EXPECT_FALSE(fs::exists(dir_ / "lameduck.tmp"));
}

TEST_F(InstallTest, ReplacesAnExistingFile) {
  fs::path target = dir_ / "lameduck";
  std::ofstream(target) << "old";
  std::ostringstream err;
  ASSERT_EQ(RunInstall({target.string()}, err), 0) << err.str();
  EXPECT_EQ(fs::file_size(target), fs::file_size("/proc/self/exe"));
}

TEST_F(InstallTest, FailsWithOneLineWhenItCannotWrite) {
  fs::path target = dir_ / "missing" / "lameduck";
  std::ostringstream err;
  EXPECT_EQ(RunInstall({target.string()}, err), 1);
  EXPECT_TRUE(IsOneLine(err.str()));
  EXPECT_NE(err.str().find("lameduck install: cannot create " + target.string() +
                           ".tmp: No such file or directory"),
            std::string::npos)
      << err.str();
}

TEST_F(InstallTest, NeedsExactlyOnePath) {
  for (const Args& args : {Args{}, Args{"a", "b"}, Args{"--to=x"}}) {
    std::ostringstream err;
    EXPECT_EQ(RunInstall(args, err), 2);
    EXPECT_NE(err.str().find("usage: lameduck install PATH"), std::string::npos) << err.str();
  }
}

}  // namespace
}  // namespace lameduck::coordinator
