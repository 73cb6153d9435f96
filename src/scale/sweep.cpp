#include "aim/scale/sweep.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <set>

#include "aim/config/run_config.h"
#include "aim/error.h"

namespace fs = std::filesystem;

namespace aim::scale {
namespace {

const std::vector<std::string> kKeys = {"base", "overrides", "axes", "points", "out_dir", "jobs", "probe", "launcher"};

/// A YAML value as override text: scalars as written, sequences/maps in flow style.
std::string value_text(const YAML::Node& n) {
  if (n.IsScalar()) return n.Scalar();
  if (n.IsNull()) return "null";
  YAML::Emitter e;
  e << YAML::Flow << n;
  return e.c_str();
}

/// A point name usable as one directory name: no separators, quotes or blanks.
std::string dir_safe(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == ' ') continue;
    out += (c == '/' || c == '\'' || c == '"' || c == '\\' || c == '*' || c == '?') ? '_' : c;
  }
  return out;
}

}  // namespace

SweepConfig load_sweep(const std::string& path, const std::vector<std::string>& extra_overrides) {
  if (!fs::is_regular_file(path)) throw Error("sweep file '" + path + "' does not exist");
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw Error(path + ": YAML error: " + e.what());
  }
  if (!root.IsMap()) throw Error(path + ": expected a map with base, axes/points, out_dir, ...");
  SweepConfig s;
  s.origin = path;
  auto fail = [&](const std::string& key, const std::string& msg) -> Error {
    return Error(path + ": " + key + ": " + msg);
  };
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string k = it->first.as<std::string>();
    if (std::find(kKeys.begin(), kKeys.end(), k) == kKeys.end()) {
      std::string valid;
      for (const auto& v : kKeys) valid += (valid.empty() ? "" : ", ") + v;
      throw fail(k, "unknown key; valid keys: " + valid);
    }
  }
  try {
    if (!root["base"] || !root["base"].IsScalar()) throw fail("base", "required: the aim-train config every point starts from");
    s.base = root["base"].as<std::string>();
    if (!fs::is_regular_file(s.base)) throw fail("base", "config '" + s.base + "' does not exist");
    if (root["overrides"]) {
      if (!root["overrides"].IsSequence()) throw fail("overrides", "expected a list of key=value strings");
      for (const auto& o : root["overrides"]) s.overrides.push_back(o.as<std::string>());
    }
    if (root["axes"] && !root["axes"].IsNull()) {
      if (!root["axes"].IsMap()) throw fail("axes", "expected a map of config key -> list of values");
      for (auto it = root["axes"].begin(); it != root["axes"].end(); ++it) {
        const std::string key = it->first.as<std::string>();
        std::vector<std::string> values;
        if (it->second.IsSequence()) {
          for (const auto& v : it->second) values.push_back(value_text(v));
        } else {
          values.push_back(value_text(it->second));
        }
        if (values.empty()) throw fail("axes." + key, "has no values");
        s.axes.emplace_back(key, values);
      }
    }
    if (root["points"] && !root["points"].IsNull()) {
      if (!root["points"].IsSequence()) throw fail("points", "expected a list of maps {config key: value}");
      for (size_t i = 0; i < root["points"].size(); ++i) {
        const auto p = root["points"][i];
        if (!p.IsMap() || p.size() == 0) throw fail("points[" + std::to_string(i) + "]", "expected a non-empty map");
        std::vector<std::pair<std::string, std::string>> values;
        for (auto it = p.begin(); it != p.end(); ++it) values.emplace_back(it->first.as<std::string>(), value_text(it->second));
        s.points.push_back(values);
      }
    }
    if (s.axes.empty() && s.points.empty()) throw fail("axes", "a sweep needs axes or points");
    if (root["out_dir"]) s.out_dir = root["out_dir"].as<std::string>();
    if (s.out_dir.empty()) throw fail("out_dir", "must not be empty");
    if (root["jobs"]) s.jobs = root["jobs"].as<int>();
    if (s.jobs < 1) throw fail("jobs", "must be >= 1, got " + std::to_string(s.jobs));
    if (root["probe"]) s.probe = root["probe"].as<bool>();
    if (root["launcher"]) s.launcher = root["launcher"].as<std::string>();
  } catch (const YAML::Exception& e) {
    throw Error(path + ": wrong type: " + e.what());
  }
  s.overrides.insert(s.overrides.end(), extra_overrides.begin(), extra_overrides.end());
  s.extra_overrides = extra_overrides;
  return s;
}

std::vector<SweepPoint> expand_points(const SweepConfig& sweep) {
  std::vector<std::vector<std::pair<std::string, std::string>>> combos = {{}};
  for (const auto& [key, values] : sweep.axes) {
    std::vector<std::vector<std::pair<std::string, std::string>>> next;
    for (const auto& c : combos)
      for (const auto& v : values) {
        auto d = c;
        d.emplace_back(key, v);
        next.push_back(d);
      }
    combos = next;
  }
  if (sweep.axes.empty()) combos.clear();
  combos.insert(combos.end(), sweep.points.begin(), sweep.points.end());
  std::vector<SweepPoint> out;
  std::set<std::string> names;
  for (const auto& c : combos) {
    SweepPoint p;
    p.values = c;
    for (const auto& [k, v] : c) p.name += (p.name.empty() ? "" : ",") + k + "=" + v;
    p.name = dir_safe(p.name);
    if (!names.insert(p.name).second) throw Error(sweep.origin + ": point '" + p.name + "' appears twice");
    p.dir = (fs::path(sweep.out_dir) / p.name).string();
    out.push_back(p);
  }
  return out;
}

std::vector<std::string> point_overrides(const SweepConfig& sweep, const SweepPoint& point) {
  std::vector<std::string> args = sweep.overrides;
  for (const auto& [k, v] : point.values) args.push_back(k + "=" + v);
  args.push_back("train.out_dir=" + point.dir);
  if (sweep.probe) {
    args.push_back("probe.at_end=true");
    args.push_back("probe.weights=");  // the point's own export
    args.push_back("probe.out_dir=");  // <train.out_dir>/probe
  }
  return args;
}

std::vector<std::string> train_arguments(const SweepConfig& sweep, const SweepPoint& point) {
  std::vector<std::string> args = {"--config", sweep.base};
  for (auto& o : point_overrides(sweep, point)) args.push_back(std::move(o));
  return args;
}

void validate_points(const SweepConfig& sweep, const std::vector<SweepPoint>& points) {
  for (const auto& p : points) {
    try {
      config::validate(config::load_run_config(sweep.base, point_overrides(sweep, p)), 1, /*check_paths=*/true);
    } catch (const Error& e) {
      throw Error(sweep.origin + ": point " + p.name + ": " + e.what());
    }
  }
}

std::string shell_quote(const std::string& w) {
  if (!w.empty() && w.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=.,/:@%") ==
                        std::string::npos)
    return w;
  std::string out = "'";
  for (char c : w) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::vector<std::string> plan_commands(const SweepConfig& sweep, const std::vector<SweepPoint>& points,
                                       const std::string& aim_train) {
  // A scheduler runs the lines wherever its jobs start: every path absolute.
  SweepConfig anywhere = sweep;
  anywhere.base = fs::absolute(sweep.base).lexically_normal().string();
  anywhere.out_dir = fs::absolute(sweep.out_dir).lexically_normal().string();
  std::vector<std::string> out;
  for (auto p : points) {
    p.dir = (fs::path(anywhere.out_dir) / p.name).string();
    std::string line = sweep.launcher.empty() ? "" : sweep.launcher + " ";
    line += shell_quote(fs::absolute(aim_train).lexically_normal().string());
    for (const auto& a : train_arguments(anywhere, p)) line += " " + shell_quote(a);
    out.push_back(line);
  }
  return out;
}

std::vector<std::string> relative_data_paths(const SweepConfig& sweep, const SweepPoint& point) {
  const auto cfg = config::load_run_config(sweep.base, point_overrides(sweep, point));
  std::vector<std::string> out;
  auto check = [&](const std::string& key, const data::SourceConfig& s) {
    std::vector<std::pair<std::string, std::string>> paths;
    if (s.kind == "idx") paths.emplace_back(key + ".path", s.path);
    if (s.kind == "image_folder") paths.emplace_back(key + ".root", s.root);
    if (s.kind == "webdataset")
      for (size_t i = 0; i < s.shards.size(); ++i) paths.emplace_back(key + ".shards." + std::to_string(i), s.shards[i]);
    for (const auto& [k, path] : paths) {
      const bool remote = path.rfind("pipe:", 0) == 0 || path.find("://") != std::string::npos;
      if (!path.empty() && !remote && fs::path(path).is_relative()) out.push_back(k + " = " + path);
    }
  };
  for (size_t i = 0; i < cfg.data.sources.size(); ++i) check("data.sources." + std::to_string(i), cfg.data.sources[i]);
  if (cfg.data.val) check("data.val", *cfg.data.val);
  if (sweep.probe && cfg.probe.train_data) check("probe.train", *cfg.probe.train_data);
  if (sweep.probe && cfg.probe.val_data) check("probe.val", *cfg.probe.val_data);
  return out;
}

}  // namespace aim::scale
