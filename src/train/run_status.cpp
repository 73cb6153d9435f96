#include "aim/train/run_status.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "aim/io/atomic_file.h"

namespace fs = std::filesystem;

namespace aim::train {
namespace {

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

}  // namespace

std::optional<RunStatus> read_run_status(const std::string& dir) {
  std::ifstream in(fs::path(dir) / kRunStatusFile);
  if (!in) return std::nullopt;
  try {
    const auto j = nlohmann::json::parse(in);
    RunStatus s;
    s.status = j.at("status").get<std::string>();
    s.reason = j.value("reason", "");
    s.exit_code = j.value("exit_code", 0);
    s.pid = j.value("pid", 0L);
    s.host = j.value("host", "");
    s.time = j.value("time", "");
    return s;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

void RunStatusFile::set_dir_from_overrides(const std::vector<std::string>& overrides) {
  const std::string key = "train.out_dir=";
  for (const auto& o : overrides)
    if (o.rfind(key, 0) == 0) dir_ = o.substr(key.size());  // the last one wins, as in the config reader
}

void RunStatusFile::start(const std::string& out_dir) {
  dir_ = out_dir;
  end("running", 0);
}

int RunStatusFile::end(const std::string& status, int exit_code, const std::string& reason) {
  if (dir_.empty()) return exit_code;
  const nlohmann::json j = {{"status", status},         {"reason", reason},  {"exit_code", exit_code},
                            {"pid", static_cast<long>(::getpid())}, {"host", host_name()}, {"time", utc_now()}};
  try {
    fs::create_directories(dir_);
    io::write_file_atomic((fs::path(dir_) / kRunStatusFile).string(), j.dump(2) + "\n");
  } catch (const std::exception& e) {
    spdlog::warn("could not record the run's status '{}' in {}/{}: {}", status, dir_, kRunStatusFile, e.what());
  }
  return exit_code;
}

}  // namespace aim::train
