#include "aim/data/bad_sample_log.h"

#include <spdlog/spdlog.h>

namespace aim::data {

void BadSampleLog::report(const std::string& source, const std::string& where,
                          const std::string& why) {
  std::lock_guard<std::mutex> lock(mu_);
  ++total_;
  ++by_source_[source];
  // Reasons are grouped by their text before any " (" detail, e.g. "too many pixels".
  ++by_reason_[why.substr(0, why.find(" ("))];
  auto now = std::chrono::steady_clock::now();
  if (total_ <= kVerboseFirst) {
    spdlog::warn("data: skipping bad sample in source '{}': {}: {}{}", source, where, why,
                 total_ == kVerboseFirst ? " (further bad samples are summarized every 30 s)" : "");
    last_summary_ = now;
    return;
  }
  ++since_summary_;
  if (now - last_summary_ >= std::chrono::seconds(30)) {
    spdlog::warn("data: {} more bad samples skipped ({} in total); latest: source '{}': {}: {}",
                 since_summary_, total_, source, where, why);
    since_summary_ = 0;
    last_summary_ = now;
  }
}

int64_t BadSampleLog::total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return total_;
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
