#include "aim/train/metrics_log.h"

#include <cmath>
#include <filesystem>
#include <sstream>

#include "aim/error.h"
#include "aim/io/atomic_file.h"
#include "aim/io/json_lines.h"

namespace aim::train {

MetricsLog::MetricsLog(const std::string& path, int64_t resume_step, const std::string& tensorboard_dir) {
  if (std::filesystem::exists(path)) {
    std::ostringstream kept;  // a torn last line from a crash is dropped with the lost tail
    for (const auto& j : io::read_json_lines(path))
      if (j.value("step", int64_t(0)) <= resume_step) kept << j.dump() << '\n';
    io::write_file_atomic(path, kept.str());
  }
  out_.open(path, std::ios::app);
  if (!out_) throw Error("cannot open '" + path + "' for writing");
  if (!tensorboard_dir.empty()) {
    io::truncate_event_files(tensorboard_dir, resume_step);
    tb_ = std::make_unique<io::TensorBoardWriter>(tensorboard_dir);
    tb_->add_session_start(resume_step + 1);  // a TensorBoard that read the lost tail drops it
  }
}

void MetricsLog::write(const nlohmann::json& record) {
  out_ << record.dump() << '\n';
  out_.flush();
  if (!tb_) return;
  std::vector<std::pair<std::string, double>> scalars;
  // What metrics.jsonl shows as a number: JSON has no NaN or infinity, dump() writes null.
  for (const auto& [key, value] : record.items())
    if (key != "step" && value.is_number() && std::isfinite(value.get<double>()))
      scalars.emplace_back(key, value.get<double>());
  tb_->add_scalars(record.at("step").get<int64_t>(), scalars);
}

}  // namespace aim::train
