#pragma once
// Reading a JSON-lines file (metrics.jsonl): one object per line, flushed per record, so a
// run killed mid-write can leave a torn last line, which readers skip.
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace aim::io {

/// Every line of `path` that parses as JSON, in order; empty when the file is missing.
inline std::vector<nlohmann::json> read_json_lines(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_discarded()) out.push_back(std::move(j));
  }
  return out;
}

}  // namespace aim::io
