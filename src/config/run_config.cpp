// The public face of the config module: load (YAML file + overrides), validate, and derive
// loader settings. Each section's keys, reader and checks live in <section>_section.cpp.
#include "aim/config/run_config.h"

#include <algorithm>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "sections.h"

namespace aim::config {

namespace fs = std::filesystem;
// detail:: is brought in per function: a unity build would carry a namespace-scope using-directive
// into the files compiled after this one.

bool RunConfig::operator==(const RunConfig& o) const {
  using namespace detail;
  return same(model, o.model) && data == o.data && same(optim, o.optim) && train == o.train && probe == o.probe;
}

namespace {

RunConfig convert(const detail::Node& root, const detail::Ctx& c) {
  using namespace detail;
  RunConfig cfg;
  cfg.model = read_model(root["model"], c);
  read_data_section(cfg.data, root["data"], c);
  read_section(cfg.optim, root["optim"], optim_fields(), "optim", c);
  cfg.train = train_defaults(cfg.model.preset);  // keys the file sets override these below
  read_section(cfg.train, root["train"], train_fields(), "train", c);
  read_probe_section(cfg.probe, root["probe"], c);
  return cfg;
}

}  // namespace

RunConfig config_from_yaml_string(const std::string& yaml, const std::vector<std::string>& overrides,
                                  const std::string& origin) {
  using namespace detail;
  Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    std::string where = origin;
    if (!e.mark.is_null()) where += ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
    throw Error(where + ": YAML syntax error: " + e.msg);
  }
  Ctx c{origin, {}};
  if (!root.IsDefined() || root.IsNull()) root = Node(YAML::NodeType::Map);
  if (!root.IsMap())
    throw Error(origin + ": expected a map with the sections model, data, optim and train at the top level");

  std::string file_preset = "aim-600m";
  {
    const Node& croot = root;
    const Node m = croot["model"];
    if (m.IsDefined() && m.IsMap() && m["preset"].IsDefined() && m["preset"].IsScalar())
      file_preset = m["preset"].Scalar();
  }
  bool preset_overridden = false;
  for (const auto& o : overrides)
    if (apply_override(root, o, c) == "model.preset") preset_overridden = true;

  check_keys(root, c);
  if (preset_overridden) drop_restated_model_keys(root, file_preset, c);
  const Node& croot = root;
  return convert(croot, c);
}

RunConfig load_run_config(const std::string& yaml_path, const std::vector<std::string>& overrides) {
  if (!fs::exists(yaml_path)) throw Error("config file '" + yaml_path + "' does not exist");
  if (fs::is_directory(yaml_path)) throw Error("config file '" + yaml_path + "' is a directory");
  std::ifstream in(yaml_path, std::ios::binary);
  if (!in) throw Error("config file '" + yaml_path + "' cannot be read");
  std::stringstream ss;
  ss << in.rdbuf();
  return config_from_yaml_string(ss.str(), overrides, yaml_path);
}

void validate(const RunConfig& cfg, int world_size, bool check_paths) {
  using namespace detail;
  if (world_size < 1) fail("world_size", "must be >= 1, got " + std::to_string(world_size));
  cfg.model.validate();
  // The encoder of every probe is bidirectional whatever this key says; pre-training with
  // it would need a target no patch can see, and the trainer would silently train causal.
  if (cfg.model.attention == model::AttentionMode::kBidirectional)
    fail("model.attention", "bidirectional is how probes run the trunk (aim-probe does that whatever this key "
                            "says); pre-training needs prefix (the paper's) or causal");
  // validate() accepts any preset name (custom models); the YAML reader restricts it.
  validate_train_section(cfg.train, world_size);
  validate_optim_section(cfg.optim);
  validate_data_section(cfg.data, world_size, check_paths);
  if (cfg.probe.at_end) validate_probe_section(cfg, world_size, check_paths, /*from_training=*/true);
}

void validate_probe(const RunConfig& cfg, int world_size, bool check_paths, bool needs_train_split) {
  using namespace detail;
  if (world_size < 1) fail("world_size", "must be >= 1, got " + std::to_string(world_size));
  cfg.model.validate();
  validate_probe_section(cfg, world_size, check_paths, /*from_training=*/false, needs_train_split);
  if (cfg.data.workers < 0) fail("data.workers", "must be >= 0, got " + std::to_string(cfg.data.workers));
  if (cfg.data.prefetch < 1) fail("data.prefetch", "must be >= 1, got " + std::to_string(cfg.data.prefetch));
  if (!(cfg.data.augment.eval_crop_pct > 0 && cfg.data.augment.eval_crop_pct <= 1))
    fail("data.augment.eval_crop_pct", "must be in (0, 1], got " + num(cfg.data.augment.eval_crop_pct));
}

data::LoaderConfig loader_config(const RunConfig& cfg, bool train, int rank, int world_size) {
  data::LoaderConfig lc;
  if (train) {
    lc.sources = cfg.data.sources;
  } else {
    if (!cfg.data.val) throw Error("data.val: not set; validation needs a source (e.g. {kind: idx, split: test})");
    lc.sources = {*cfg.data.val};
  }
  lc.img_size = static_cast<int>(cfg.model.img_size);
  lc.channels = static_cast<int>(cfg.model.channels);
  lc.train = train;
  lc.augment = cfg.data.augment;
  lc.batch_size = cfg.train.micro_batch_size;
  // Train: the loader lays out whole optimizer steps (world-size free resume, see loader.h).
  if (train) lc.accumulation = std::max<int64_t>(1, cfg.train.batch_size / (cfg.train.micro_batch_size * world_size));
  lc.rank = rank;
  lc.world_size = world_size;
  lc.workers = cfg.data.workers;
  lc.prefetch = cfg.data.prefetch;
  lc.seed = cfg.train.seed;
  lc.stream_lanes = cfg.data.stream_lanes;
  lc.max_member_bytes = static_cast<uint64_t>(cfg.data.max_member_mb) << 20;
  lc.max_bad_streak = cfg.data.max_bad_streak;
  lc.remote = {cfg.data.shard_retries, cfg.data.shard_retry_backoff_s, cfg.data.shard_timeout_s};
  return lc;
}

data::LoaderConfig probe_loader_config(const RunConfig& cfg, bool train_split, bool augment, int rank,
                                       int world_size) {
  const auto& p = cfg.probe;
  const auto& split = train_split ? p.train_data : p.val_data;
  if (!split) throw Error(std::string(train_split ? "probe.train" : "probe.val") + ": not set");
  data::LoaderConfig lc;
  lc.sources = {*split};
  lc.sources[0].weight = 1.0;
  lc.img_size = static_cast<int>(cfg.model.img_size);
  lc.channels = static_cast<int>(cfg.model.channels);
  lc.train = augment;
  lc.augment = cfg.data.augment;  // eval_crop_pct
  lc.augment.scale_min = p.crop_scale_min;
  lc.augment.scale_max = p.crop_scale_max;
  lc.augment.hflip = p.hflip;
  lc.augment.color_jitter = 0;  // probes train on lightly augmented views
  lc.batch_size = p.batch_size / world_size;
  lc.rank = rank;
  lc.world_size = world_size;
  lc.workers = cfg.data.workers;
  lc.prefetch = cfg.data.prefetch;
  lc.seed = p.seed;
  lc.stream_lanes = cfg.data.stream_lanes;
  lc.max_member_bytes = static_cast<uint64_t>(cfg.data.max_member_mb) << 20;
  lc.max_bad_streak = cfg.data.max_bad_streak;
  lc.remote = {cfg.data.shard_retries, cfg.data.shard_retry_backoff_s, cfg.data.shard_timeout_s};
  return lc;
}

}  // namespace aim::config
