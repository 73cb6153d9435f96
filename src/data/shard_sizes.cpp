#include "aim/data/shard_sizes.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "aim/data/shard_stream.h"
#include "aim/error.h"

namespace aim::data {

namespace {

// {"<shard>.tar": count, ...}; `where` names the file or URL in errors.
std::map<std::string, int64_t> parse_sizes(const std::string& text, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error("data: " + where + ": not JSON (" + e.what() + "); expected {\"<shard>.tar\": count, ...}");
  }
  if (!j.is_object()) throw Error("data: " + where + ": expected an object {\"<shard>.tar\": count, ...}");
  std::map<std::string, int64_t> counts;
  for (const auto& [name, v] : j.items()) {
    // open_clip's files hold integers; some writers store them as strings.
    int64_t n = -1;
    if (v.is_number_integer()) n = v.get<int64_t>();
    else if (v.is_string() && !v.get<std::string>().empty() &&
             v.get<std::string>().find_first_not_of("0123456789") == std::string::npos)
      n = std::stoll(v.get<std::string>());
    if (n < 0) throw Error("data: " + where + ": the count of '" + name + "' is " + v.dump() + ", expected a sample count >= 0");
    counts[name] = n;
  }
  return counts;
}

// The body of a small remote file through the shards' own stream (curl, its timeouts and rate
// floor), and whether the transfer failed on the way (a timeout, a drip, a dropped connection:
// the body is then a part of the file). curl's --fail makes a 404 an empty body.
struct Fetched {
  std::string body;
  bool cut = false;
  std::string note;  // how the transfer ended, when it was cut
};

Fetched fetch_small(const std::string& url, double timeout_s) {
  constexpr size_t kMaxBytes = 64u << 20;  // a sizes.json of 2 billion samples is ~40 MB
  Fetched f;
  ShardStream in(url, timeout_s);
  if (!in.ok() || in.file() == nullptr) return f;
  char buf[1 << 16];
  for (size_t got; (got = std::fread(buf, 1, sizeof buf, in.file())) > 0 && f.body.size() <= kMaxBytes;)
    f.body.append(buf, got);
  const std::string note = in.failure_note();  // ends curl; for a whole transfer it says only how curl exited
  if (in.failure() == StreamFailure::kTransient || in.failure() == StreamFailure::kAborted) {
    f.cut = true;
    f.note = note;
  }
  return f;
}

}  // namespace

int64_t ShardSizes::of(const std::string& shard_path, double remote_timeout_s) {
  const ShardLocation where = shard_location(shard_path);
  if (where == ShardLocation::kPipe || (where == ShardLocation::kHttp && remote_timeout_s <= 0)) return -1;
  std::string dir, name;
  if (where == ShardLocation::kHttp) {
    const std::string url = shard_path.substr(0, shard_path.find_first_of("?#"));  // a signed URL's query is its own
    const size_t slash = url.rfind('/');
    if (slash == std::string::npos || slash < url.find("://") + 3) return -1;
    dir = url.substr(0, slash);
    name = url.substr(slash + 1);
  } else {
    const std::filesystem::path p(shard_path);
    dir = p.parent_path().string();
    name = p.filename().string();
  }
  auto it = by_dir_.find(dir);
  if (it == by_dir_.end()) {
    std::map<std::string, int64_t> counts;
    if (where == ShardLocation::kHttp) {
      const std::string url = dir + "/sizes.json";
      const Fetched f = fetch_small(url, remote_timeout_s);
      if (f.cut) {  // not the index's fault: go without it, as without one
        spdlog::warn("data: {} could not be read ({}); shards there are counted by reading them", url, f.note);
      } else if (!f.body.empty()) {  // empty: not there (404) or no server
        counts = parse_sizes(f.body, url);
      }
    } else {
      const auto file = std::filesystem::path(dir) / "sizes.json";
      std::ifstream in(file);
      if (in) counts = parse_sizes(std::string(std::istreambuf_iterator<char>(in), {}), file.string());
    }
    it = by_dir_.emplace(dir, std::move(counts)).first;
  }
  auto c = it->second.find(name);
  return c == it->second.end() ? -1 : c->second;
}

}  // namespace aim::data
