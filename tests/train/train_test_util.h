#pragma once
// Helpers of the end-to-end training tests (test_trainer.cpp, test_sharding.cpp): start
// aim-train as a child process, and compare what two runs left behind.
#include <gtest/gtest.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "aim/io/safetensors.h"

namespace aim::test::train_runs {

/// Starts args[0] with args; its stdout and stderr go to `log` (or nowhere).
inline pid_t spawn(const std::vector<std::string>& args, const std::string& log = "/dev/null") {
  pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    if (!freopen(log.c_str(), "w", stdout)) _exit(126);
    if (log != "/dev/null") dup2(fileno(stdout), 2);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

/// Runs args to the end; its exit status, or -1 when it died of a signal.
inline int run(const std::vector<std::string>& args, const std::string& log = "/dev/null") {
  int status = 0;
  waitpid(spawn(args, log), &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// The exported trunks of two runs hold the same tensors, equal within (rtol, atol).
inline void expect_same_trunks(const std::string& a_dir, const std::string& b_dir, double rtol, double atol) {
  const auto wa = io::load_safetensors(a_dir + "/trunk.safetensors").tensors;
  const auto wb = io::load_safetensors(b_dir + "/trunk.safetensors").tensors;
  ASSERT_EQ(wa.size(), wb.size());
  for (size_t i = 0; i < wa.size(); ++i)
    EXPECT_TRUE(torch::allclose(wa[i].second, wb[i].second, rtol, atol)) << wa[i].first;
}

/// Newest step_NNNNNNNNN under run_dir/checkpoints, or -1.
inline int64_t newest_checkpoint(const std::string& run_dir) {
  namespace fs = std::filesystem;
  int64_t newest = -1;
  if (!fs::exists(run_dir + "/checkpoints")) return newest;
  for (const auto& e : fs::directory_iterator(run_dir + "/checkpoints")) {
    const auto name = e.path().filename().string();
    if (name.rfind("step_", 0) == 0 && name.find('.') == std::string::npos)
      newest = std::max<int64_t>(newest, std::stoll(name.substr(5)));
  }
  return newest;
}

}  // namespace aim::test::train_runs
