#pragma once
// Small shared helpers for the test suites.
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "aim/model/model_config.h"

namespace aim::test {

/// This checkout's source tree and binary folder (generated: tests/test_paths.cpp.in).
const char* source_dir();
const char* bin_dir();
#define AIM_SOURCE_DIR (::aim::test::source_dir())
#define AIM_BIN_DIR (::aim::test::bin_dir())

/// The binaries and the tiny config the end-to-end tests run (one home: in the unity build of the
/// suite, per-file copies of these would meet).
inline const std::string kTrainBin = std::string(AIM_BIN_DIR) + "/aim-train";
inline const std::string kTinyYaml = std::string(AIM_SOURCE_DIR) + "/configs/test-tiny.yaml";

/// True where every test dependency is known to be installed: under CI=true, and when the
/// README's test command (scripts/test.sh, which installs them first) runs the suite. There
/// a missing dependency is a failure, not a skip that would hide an untested path.
inline bool dependencies_required() {
  const char* ci = std::getenv("CI");
  const char* strict = std::getenv("AIM_TESTS_REQUIRE_DEPS");
  return (ci && std::string(ci) == "true") || (strict && std::string(strict) == "1");
}

/// Skips the test when `available` is false, or fails it where dependencies_required().
#define AIM_REQUIRE_DEPENDENCY(available, what)                                                     \
  do {                                                                                              \
    if (!(available)) {                                                                             \
      if (::aim::test::dependencies_required())                                                     \
        FAIL() << what << " is missing, but scripts/test.sh (setup + build) provides it (a skip here would hide " \
               << "an untested path)";                                                              \
      GTEST_SKIP() << what << " is missing";                                                        \
    }                                                                                               \
  } while (0)

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

/// A whole file as a string ("" when missing).
inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

/// `key` per step from <out_dir>/metrics.jsonl. A line still being written by a running
/// trainer is skipped rather than thrown on.
inline std::map<int64_t, double> metric_by_step(const std::string& out_dir, const std::string& key = "loss") {
  std::map<int64_t, double> out;
  std::ifstream in(out_dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_discarded() && j.contains(key) && j[key].is_number()) out[j["step"].get<int64_t>()] = j[key].get<double>();
  }
  return out;
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
