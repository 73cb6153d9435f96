#pragma once
// Bad samples (corrupt files, missing shards, ...) are skipped, counted and reported with a
// rate-limited warning naming where they were, so one broken shard cannot flood the log
// and a broken dataset is still visible. Each bad sample is warned about once: meeting it
// again in a later epoch counts as one more skip, not as one more bad file.
//
// Memory is bounded: distinct bad samples are remembered as 64-bit hashes in a flat table
// (at most 16 bytes each), up to kMaxTracked of them (16 MB); past that, new ones are still
// counted in every total but no longer told apart from repeats, and unique() becomes a
// lower bound (unique_exact() false). An unordered_set cost ~42 bytes per bad sample: 1.7 GB
// per rank at 2 % bad samples of a 2-billion-image dataset.
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace aim::data {

class BadSampleLog {
 public:
  /// where: "shard.tar:key" or a file path; why: a short reason ("truncated jpeg ...").
  void report(const std::string& source, const std::string& where, const std::string& why);
  /// Skips: every report, the same sample again in a later epoch included.
  int64_t total() const;
  /// Distinct bad samples (by source and where): exact up to kMaxTracked, then a lower bound.
  int64_t unique() const;
  bool unique_exact() const;
  static constexpr int64_t kMaxTracked = int64_t{1} << 20;
  std::map<std::string, int64_t> by_source() const;
  std::map<std::string, int64_t> by_reason() const;
  /// Warnings printed individually before switching to periodic summaries.
  static constexpr int kVerboseFirst = 20;

 private:
  mutable std::mutex mu_;
  int64_t total_ = 0, since_summary_ = 0;
  /// Inserts a hash into the open-addressing table; false if it was there (or the table is full).
  bool remember(uint64_t hash);
  std::vector<uint64_t> table_;  // hashes of "source\nwhere" (0: empty slot), load <= 1/2
  int64_t distinct_ = 0;
  bool full_ = false;
  std::map<std::string, int64_t> by_source_, by_reason_;
  std::chrono::steady_clock::time_point last_summary_{};
};

}  // namespace aim::data
