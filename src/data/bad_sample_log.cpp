#include "aim/data/bad_sample_log.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "aim/io/fnv1a.h"

namespace aim::data {

bool BadSampleLog::remember(uint64_t h) {
  if (h == 0) h = 1;  // 0 marks an empty slot
  if (static_cast<int64_t>(table_.size()) < 2 * (distinct_ + 1)) {
    if (distinct_ >= kMaxTracked) {
      full_ = true;
      // Still a repeat if it is there; a new one is counted but not remembered.
      const size_t mask = table_.size() - 1;
      for (size_t i = h & mask;; i = (i + 1) & mask) {
        if (table_[i] == h) return false;
        if (table_[i] == 0) return false;
      }
    }
    std::vector<uint64_t> old = std::move(table_);
    table_.assign(std::max<size_t>(64, old.size() * 2), 0);
    const size_t mask = table_.size() - 1;
    for (uint64_t v : old)
      if (v != 0) {
        size_t i = v & mask;
        while (table_[i] != 0) i = (i + 1) & mask;
        table_[i] = v;
      }
  }
  const size_t mask = table_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    if (table_[i] == h) return false;
    if (table_[i] == 0) {
      table_[i] = h;
      ++distinct_;
      return true;
    }
  }
}

void BadSampleLog::report(const std::string& source, const std::string& where,
                          const std::string& why) {
  std::lock_guard<std::mutex> lock(mu_);
  ++total_;
  ++by_source_[source];
  // Reasons are grouped by their text before any " (" detail, e.g. "too many pixels".
  ++by_reason_[why.substr(0, why.find(" ("))];
  const std::string id = source + "\n" + where;
  if (!remember(io::fnv1a64(id.data(), id.size()))) {
    if (!full_) return;  // warned about in an earlier epoch
  }
  auto now = std::chrono::steady_clock::now();
  const int64_t distinct = distinct_;
  if (distinct <= kVerboseFirst) {
    spdlog::warn("data: skipping bad sample in source '{}': {}: {}{}", source, where, why,
                 distinct == kVerboseFirst ? " (further bad samples are summarized every 30 s)" : "");
    last_summary_ = now;
    return;
  }
  ++since_summary_;
  if (now - last_summary_ >= std::chrono::seconds(30)) {
    spdlog::warn("data: {} more bad samples skipped ({}{} distinct, {} skips in total); latest: source '{}': {}: {}",
                 since_summary_, full_ ? "at least " : "", distinct_, total_, source, where, why);
    since_summary_ = 0;
    last_summary_ = now;
  }
}

int64_t BadSampleLog::total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_;
}

int64_t BadSampleLog::unique() const {
  std::lock_guard<std::mutex> lock(mu_);
  return distinct_;
}

bool BadSampleLog::unique_exact() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !full_;
}

std::map<std::string, int64_t> BadSampleLog::by_source() const {
  std::lock_guard<std::mutex> lock(mu_);
  return by_source_;
}

std::map<std::string, int64_t> BadSampleLog::by_reason() const {
  std::lock_guard<std::mutex> lock(mu_);
  return by_reason_;
}

}  // namespace aim::data
