#pragma once
// Bad samples (corrupt files, missing shards, ...) are skipped, counted and reported with a
// rate-limited warning naming where they were, so one broken shard cannot flood the log
// and a broken dataset is still visible. Each bad sample is warned about once: meeting it
// again in a later epoch counts as one more skip, not as one more bad file.
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <unordered_set>

namespace aim::data {

class BadSampleLog {
 public:
  /// where: "shard.tar:key" or a file path; why: a short reason ("truncated jpeg ...").
  void report(const std::string& source, const std::string& where, const std::string& why);
  /// Skips: every report, the same sample again in a later epoch included.
  int64_t total() const;
  /// Distinct bad samples (by source and where).
  int64_t unique() const;
  std::map<std::string, int64_t> by_source() const;
  std::map<std::string, int64_t> by_reason() const;
  /// Warnings printed individually before switching to periodic summaries.
  static constexpr int kVerboseFirst = 20;

 private:
  mutable std::mutex mu_;
  int64_t total_ = 0, since_summary_ = 0;
  std::unordered_set<uint64_t> seen_;  // hashes of "source\nwhere": 8 bytes per bad sample
  std::map<std::string, int64_t> by_source_, by_reason_;
  std::chrono::steady_clock::time_point last_summary_{};
};

}  // namespace aim::data
