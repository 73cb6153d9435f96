#include "aim/data/bad_sample_log.h"

#include <spdlog/spdlog.h>

#include "aim/io/fnv1a.h"

namespace aim::data {

void BadSampleLog::report(const std::string& source, const std::string& where,
                          const std::string& why) {
  std::lock_guard<std::mutex> lock(mu_);
  ++total_;
  ++by_source_[source];
  // Reasons are grouped by their text before any " (" detail, e.g. "too many pixels".
  ++by_reason_[why.substr(0, why.find(" ("))];
  const std::string id = source + "\n" + where;
  if (!seen_.insert(io::fnv1a64(id.data(), id.size())).second) return;  // warned about in an earlier epoch
  auto now = std::chrono::steady_clock::now();
  const auto distinct = static_cast<int64_t>(seen_.size());
  if (distinct <= kVerboseFirst) {
    spdlog::warn("data: skipping bad sample in source '{}': {}: {}{}", source, where, why,
                 distinct == kVerboseFirst ? " (further bad samples are summarized every 30 s)" : "");
    last_summary_ = now;
    return;
  }
  ++since_summary_;
  if (now - last_summary_ >= std::chrono::seconds(30)) {
    spdlog::warn("data: {} more bad samples skipped ({} distinct, {} skips in total); latest: source '{}': {}: {}",
                 since_summary_, seen_.size(), total_, source, where, why);
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
  return static_cast<int64_t>(seen_.size());
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
