// A test fixture that runs the built ropepp program in a fresh temporary folder.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

class BinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    namespace fs = std::filesystem;
    if (!fs::exists(ROPEPP_BINARY)) GTEST_SKIP() << "the ropepp program is not built at " << ROPEPP_BINARY;
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    folder_ = fs::temp_directory_path() / ("ropepp_cli_" + std::string(info->test_suite_name()) + "_" +
                                           std::string(info->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(folder_);
    fs::create_directories(folder_);
  }

  void TearDown() override {
    if (!folder_.empty()) std::filesystem::remove_all(folder_);
  }

  // Runs `ropepp ARGUMENTS` with stdout and stderr into log.txt; returns the exit status.
  int run(const std::string& arguments) {
    const std::string command =
        std::string(ROPEPP_BINARY) + " " + arguments + " >" + (folder_ / "log.txt").string() + " 2>&1";
    const int status = std::system(command.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  std::string read(const std::filesystem::path& path) const {
    std::ifstream file(path, std::ios::binary);
    std::stringstream text;
    text << file.rdbuf();
    return text.str();
  }

  std::filesystem::path folder_;
};
