#pragma once
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "aim/io/tensorboard_writer.h"

namespace aim::train {

/// metrics.jsonl: one JSON object per line, flushed per record so a crash loses nothing
/// already reported. On resume, records after the resumed step are dropped first (they
/// belong to the lost tail of the interrupted run), so the file reads as one clean run.
///
/// With a `tensorboard_dir`, every record also becomes one TensorBoard event at its "step":
/// each numeric field is a scalar tagged with its JSON key (`loss`, `val_loss`, ...; fields the
/// file shows as null, i.e. null and non-finite numbers, and non-numeric ones are left out). The event files there are cut at the resumed step the
/// same way, and this run writes a new file next to them that starts with a SessionLog START
/// at the first step it trains, so a TensorBoard left running drops the lost tail too.
class MetricsLog {
 public:
  MetricsLog(const std::string& path, int64_t resume_step, const std::string& tensorboard_dir = "");
  void write(const nlohmann::json& record);

 private:
  std::ofstream out_;
  std::unique_ptr<io::TensorBoardWriter> tb_;
};

}  // namespace aim::train
