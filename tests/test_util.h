#pragma once
// Small shared helpers for the test suites.
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <random>
#include <string>

#include "aim/model/model_config.h"

namespace aim::test {

/// A fresh temporary directory, removed when the object dies.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("aim-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// Runs a shell command; returns its stdout+stderr followed by "\n[exit N]".
inline std::string capture(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = pclose(p);
  return out + "\n[exit " + std::to_string(WEXITSTATUS(status)) + "]";
}

/// A model small enough for exhaustive gradient checks: 16x16 RGB, patch 4 -> 16 tokens.
inline model::ModelConfig tiny_config() {
  model::ModelConfig c;
  c.preset = "test-tiny";
  c.img_size = 16;
  c.patch_size = 4;
  c.channels = 3;
  c.width = 32;
  c.depth = 2;
  c.heads = 2;
  c.head_width = 48;
  c.head_blocks = 2;
  return c;
}

}  // namespace aim::test
