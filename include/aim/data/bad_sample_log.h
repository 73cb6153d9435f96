#pragma once
// Bad samples (corrupt files, missing shards, ...) are skipped, counted and reported with a
// rate-limited warning naming where they were, so one broken shard cannot flood the log
// and a broken dataset is still visible.
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace aim::data {

class BadSampleLog {
 public:
  /// where: "shard.tar:key" or a file path; why: a short reason ("truncated jpeg ...").
  void report(const std::string& source, const std::string& where, const std::string& why);
  int64_t total() const;
  std::map<std::string, int64_t> by_source() const;
  std::map<std::string, int64_t> by_reason() const;
  /// Warnings printed individually before switching to periodic summaries.
  static constexpr int kVerboseFirst = 20;

 private:
  mutable std::mutex mu_;
  int64_t total_ = 0, since_summary_ = 0;
  std::map<std::string, int64_t> by_source_, by_reason_;
  std::chrono::steady_clock::time_point last_summary_{};
};

}  // namespace aim::data
