#include "aim/train/metrics_log.h"

#include <filesystem>
#include <sstream>

#include "aim/error.h"
#include "aim/io/atomic_file.h"

namespace aim::train {

MetricsLog::MetricsLog(const std::string& path, int64_t resume_step) {
  if (std::filesystem::exists(path)) {
    std::ifstream in(path);
    std::ostringstream kept;
    std::string line;
    while (std::getline(in, line)) {
      try {
        auto j = nlohmann::json::parse(line);
        if (j.value("step", int64_t(0)) <= resume_step) kept << line << '\n';
      } catch (const std::exception&) {
        // a torn last line from a crash: drop it
      }
    }
    io::write_file_atomic(path, kept.str());
  }
  out_.open(path, std::ios::app);
  if (!out_) throw Error("cannot open '" + path + "' for writing");
}

void MetricsLog::write(const nlohmann::json& record) {
  out_ << record.dump() << '\n';
  out_.flush();
}

}  // namespace aim::train
