// The resolved config as YAML: every key of every section, in key-table order, re-loadable
// into an equal RunConfig (config.yaml of every run, and the fingerprints).
#include <algorithm>
#include <map>

#include "aim/io/fnv1a.h"
#include "sections.h"

namespace aim::config {


std::string to_yaml(const RunConfig& cfg) {
  using namespace detail;  // in the function: a unity build must not carry it into the next file
  YAML::Emitter e;
  e << YAML::BeginMap;

  e << YAML::Key << "model" << YAML::Value << YAML::BeginMap;
  for (const auto& f : model_fields()) {
    e << YAML::Key << f.name << YAML::Value;
    f.write(e, cfg.model);
  }
  e << YAML::EndMap;

  static const data::SourceConfig kDefaultSource;
  auto write_source = [&](const data::SourceConfig& s) {
    e << YAML::BeginMap;
    for (const auto& f : source_fields()) {
      if (!relevant(s.kind, f.name) && emit_field(f, s) == emit_field(f, kDefaultSource)) continue;
      e << YAML::Key << f.name << YAML::Value;
      f.write(e, s);
    }
    e << YAML::EndMap;
  };
  e << YAML::Key << "data" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "sources" << YAML::Value << YAML::BeginSeq;
  for (const auto& s : cfg.data.sources) write_source(s);
  e << YAML::EndSeq;
  e << YAML::Key << "val" << YAML::Value;
  if (cfg.data.val) write_source(*cfg.data.val);
  else e << YAML::Null;
  e << YAML::Key << "augment" << YAML::Value << YAML::BeginMap;
  for (const auto& f : augment_fields()) {
    e << YAML::Key << f.name << YAML::Value;
    f.write(e, cfg.data.augment);
  }
  e << YAML::EndMap;
  for (const auto& f : data_fields()) {
    if (!f.write) continue;
    e << YAML::Key << f.name << YAML::Value;
    f.write(e, cfg.data);
  }
  e << YAML::EndMap;

  e << YAML::Key << "optim" << YAML::Value << YAML::BeginMap;
  for (const auto& f : optim_fields()) {
    e << YAML::Key << f.name << YAML::Value;
    f.write(e, cfg.optim);
  }
  e << YAML::EndMap;

  e << YAML::Key << "train" << YAML::Value << YAML::BeginMap;
  for (const auto& f : train_fields()) {
    e << YAML::Key << f.name << YAML::Value;
    f.write(e, cfg.train);
  }
  e << YAML::EndMap;

  e << YAML::Key << "probe" << YAML::Value << YAML::BeginMap;
  for (const auto& f : probe_fields()) {
    e << YAML::Key << f.name << YAML::Value;
    const auto& split = f.name == "train" ? cfg.probe.train_data : cfg.probe.val_data;
    if (f.write) f.write(e, cfg.probe);
    else if (split) write_source(*split);
    else e << YAML::Null;
  }
  e << YAML::EndMap;

  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

namespace {

// "section.key" -> value text, for every scalar (a sequence of scalars is one value).
void flatten_to_pairs(const YAML::Node& n, const std::string& key, std::vector<std::pair<std::string, std::string>>& out) {
  if (n.IsMap()) {
    for (const auto& kv : n) flatten_to_pairs(kv.second, key.empty() ? kv.first.as<std::string>() : key + "." + kv.first.as<std::string>(), out);
    return;
  }
  if (n.IsSequence()) {
    bool scalars = true;
    for (const auto& e : n) scalars = scalars && (e.IsScalar() || e.IsNull());
    if (!scalars) {
      for (size_t i = 0; i < n.size(); ++i) flatten_to_pairs(n[i], key + "[" + std::to_string(i) + "]", out);
      return;
    }
  }
  YAML::Emitter e;
  e << YAML::Flow << n;
  out.emplace_back(key, e.c_str());
}

}  // namespace

std::vector<KeyChange> config_changes(const std::string& before_yaml, const std::string& after_yaml) {
  std::vector<std::pair<std::string, std::string>> before, after;
  try {
    flatten_to_pairs(YAML::Load(before_yaml), "", before);
    flatten_to_pairs(YAML::Load(after_yaml), "", after);
  } catch (const YAML::Exception& e) {
    throw Error(std::string("config_changes: not a YAML config: ") + e.what());
  }
  std::map<std::string, std::string> old(before.begin(), before.end());
  std::vector<KeyChange> changes;
  for (const auto& [k, v] : after) {
    auto it = old.find(k);
    if (it == old.end()) changes.push_back({k, "(absent)", v});
    else if (it->second != v) changes.push_back({k, it->second, v});
    if (it != old.end()) old.erase(it);
  }
  for (const auto& [k, v] : before)
    if (old.count(k)) changes.push_back({k, v, "(absent)"});
  return changes;
}

std::string fingerprint(const RunConfig& cfg) {
  // FNV-1a over the resolved YAML. Nothing in the config differs per rank today; a field
  // that may (a per-rank path, say) must be blanked here before hashing.
  const std::string yaml = to_yaml(cfg);
  return io::fnv1a_hex(yaml.data(), yaml.size());
}

namespace {

// Keys that do not change what a checkpoint's state depends on: where and how often things
// are written or logged, how the batch is split over micro-batches, devices, threads,
// timeouts, the loader's plumbing, validation and the probe. One home for the list:
// run_identity leaves them out, and a refusal to resume lists only the other keys.
const std::vector<std::string> kOperationalKeys = {
    "train.out_dir",       "train.log_every",        "train.ckpt_every",      "train.keep_checkpoints",
    "train.val_every",     "train.val_batches",      "train.max_nonfinite",   "train.peak_tflops",
    "train.micro_batch_size", "train.device",        "train.threads",         "train.dist_timeout_s",
    "train.resume",        "train.bucket_mb",        "train.tensorboard",     "train.activation_checkpointing",
    "train.memory_gb",     "train.memory_check",     "train.ckpt_every_min",  "train.ckpt_async",
    "data.workers",        "data.prefetch",          "data.stream_lanes",     "data.max_member_mb",
    "data.max_bad_streak", "data.shard_retries",     "data.shard_retry_backoff_s", "data.shard_timeout_s",
    "data.val",            "probe",
};

bool under(const std::string& key, const std::string& prefix) {
  return key == prefix || key.rfind(prefix + ".", 0) == 0 || key.rfind(prefix + "[", 0) == 0;
}

}  // namespace

bool affects_training(const std::string& key) {
  for (const auto& k : kOperationalKeys)
    if (under(key, k)) return false;
  return true;
}

std::string run_identity(const RunConfig& cfg) {
  // The (key, value) pairs that matter and differ from the defaults of the config's preset,
  // sorted: a key added later at its default value leaves every existing identity as it was.
  RunConfig reference;
  reference.train = train_defaults(cfg.model.preset);
  std::vector<std::pair<std::string, std::string>> mine, defaults;
  flatten_to_pairs(YAML::Load(to_yaml(cfg)), "", mine);
  flatten_to_pairs(YAML::Load(to_yaml(reference)), "", defaults);
  const std::map<std::string, std::string> base(defaults.begin(), defaults.end());
  std::vector<std::string> kept;
  for (const auto& [k, v] : mine) {
    if (!affects_training(k)) continue;
    auto it = base.find(k);
    if (it != base.end() && it->second == v) continue;
    kept.push_back(k + "=" + v);
  }
  std::sort(kept.begin(), kept.end());
  std::string text;
  for (const auto& line : kept) text += line + "\n";
  return io::fnv1a_hex(text.data(), text.size());
}

}  // namespace aim::config
