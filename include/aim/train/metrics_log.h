#pragma once
#include <cstdint>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

namespace aim::train {

/// metrics.jsonl: one JSON object per line, flushed per record so a crash loses nothing
/// already reported. On resume, records after the resumed step are dropped first (they
/// belong to the lost tail of the interrupted run), so the file reads as one clean run.
class MetricsLog {
 public:
  MetricsLog(const std::string& path, int64_t resume_step);
  void write(const nlohmann::json& record);

 private:
  std::ofstream out_;
};

}  // namespace aim::train
