// Applying a saved probe: --eval-only (evaluate_saved_probe), --export-hub
// (export_hub_from_files), and the probe file's own record of its features and classes.
#include "saved_probe.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <filesystem>

#include "aim/error.h"
#include "aim/io/weights_file.h"
#include "aim/model/hub_config.h"
#include "aim/model/layer_selection.h"
#include "aim/model/trunk_weights.h"
#include "aim/probe/class_labels.h"
#include "aim/probe/feature_extractor.h"
#include "aim/probe/hub_export.h"
#include "aim/probe/probe_head.h"
#include "aim/probe/probe_runner.h"
#include "aim/runtime/device.h"
#include "head_grid.h"

namespace fs = std::filesystem;

namespace aim::probe {
namespace detail {

std::string join_blocks(const std::vector<int64_t>& blocks) {
  std::string out;
  for (int64_t b : blocks) out += (out.empty() ? "" : ",") + std::to_string(b);
  return out;
}

data::LoaderConfig val_loader_config(const config::RunConfig& cfg, const dist::DistEnv& env) {
  return config::probe_loader_config(cfg, /*train_split=*/false, /*augment=*/false, env.rank, env.world_size);
}

std::vector<std::string> probe_file_class_names(const std::string& probe_path) {
  if (!fs::is_regular_file(probe_path)) return {};
  const auto meta = io::read_weights_metadata(probe_path);
  auto it = meta.find("class_names");
  return it == meta.end() ? std::vector<std::string>{} : decode_class_names(it->second, probe_path);
}

config::RunConfig with_probe_file_features(const config::RunConfig& cfg, const std::string& probe_path, bool log) {
  config::RunConfig c = cfg;
  // A saved probe is applied to the trunk it was trained with: never a fresh LoRA on top.
  c.probe.lora_rank = 0;
  // The configured blocks as indices, for comparing with the file's ("last" and "14-19"
  // may name the same blocks).
  std::vector<int64_t> configured;
  try {
    configured = model::select_blocks(cfg.probe.blocks, cfg.model);
  } catch (const Error&) {
  }
  const std::string configured_text =
      cfg.probe.blocks + (configured.empty() ? " gives no valid blocks" : " gives " + join_blocks(configured));
  if (model::is_hub_dir(probe_path) && c.probe.features == "trunk") {
    // A hub directory's head was trained on its config.json's probe_layers.
    const auto layers = model::read_hub_config(probe_path).probe_layers;
    if (layers != configured && log)
      spdlog::warn("hub directory '{}' was trained on trunk blocks {}; using them (probe.blocks={})", probe_path,
                   join_blocks(layers), configured_text);
    c.probe.blocks = join_blocks(layers);
    if (cfg.probe.weights != probe_path) {  // ... and belongs to the trunk stored next to it
      if (log) spdlog::warn("hub directory '{}' holds its own trunk; using it (probe.weights={})", probe_path, cfg.probe.weights);
      c.probe.weights = probe_path;
    }
    return c;
  }
  if (!fs::is_regular_file(probe_path)) return c;  // load_probe names the missing file
  const auto meta = io::read_weights_metadata(probe_path);
  auto get = [&](const char* key) {
    auto it = meta.find(key);
    return it == meta.end() ? std::string() : it->second;
  };
  // A LoRA run's head belongs to the adapted trunk (its merged export), not to probe.weights.
  const std::string adapted = get("adapted_trunk");
  if (!adapted.empty() && adapted != cfg.probe.weights) {
    if (!fs::exists(adapted))
      throw Error("probe file '" + probe_path + "' was trained with LoRA on the trunk saved as '" + adapted +
                  "', which no longer exists");
    if (log)
      spdlog::warn("probe file '{}' was trained with LoRA; using its adapted trunk {} (probe.weights={})", probe_path,
                   adapted, cfg.probe.weights);
    c.probe.weights = adapted;
  }
  const std::string features = get("features");
  if (!features.empty() && features != cfg.probe.features) {
    if (log)
      spdlog::warn("probe file '{}' was trained on features={}; using them (the config says probe.features={})",
                   probe_path, features, cfg.probe.features);
    c.probe.features = features;
  }
  if (c.probe.features != "trunk") return c;
  std::string blocks = get("block_indices");  // resolved indices; "blocks" is the spec as configured
  if (blocks.empty()) blocks = get("blocks");
  if (blocks.empty()) return c;
  const auto trained = model::select_blocks(blocks, c.model, "probe file '" + probe_path + "' blocks");
  if (trained != configured && log)
    spdlog::warn("probe file '{}' was trained on trunk blocks {}; using them (probe.blocks={})", probe_path,
                 join_blocks(trained), configured_text);
  c.probe.blocks = join_blocks(trained);
  return c;
}

}  // namespace detail

EvalReport evaluate_saved_probe(const config::RunConfig& configured, const dist::DistEnv& env,
                                dist::Communicator* comm, const std::string& probe_path) {
  const config::RunConfig cfg = detail::with_probe_file_features(configured, probe_path, env.rank == 0);
  const torch::Device device = runtime::select_device(cfg.train.device, env.local_rank);
  FeatureExtractor fx(cfg, device);
  ProbeHead head = load_probe(probe_path, fx.heads());
  if (head->dim() != fx.dim())
    throw Error("probe file '" + probe_path + "' expects features of width " + std::to_string(head->dim()) +
                " but the configured " + (cfg.probe.features == "pixels" ? "pixels give " : "trunk gives ") +
                std::to_string(fx.dim()));
  data::Loader val(detail::val_loader_config(cfg, env));
  // Labels by class name where both sides know them, else by position with equal counts.
  const auto file_names = detail::probe_file_class_names(probe_path);
  const auto val_names = split_class_names(cfg.probe.val_data);
  const LabelMap labels =
      match_classes(file_names, "probe file '" + probe_path + "'", val_names, "probe.val", cfg.probe.class_match);
  const bool by_name = !file_names.empty() && !val_names.empty() && cfg.probe.class_match != "position";
  const int64_t data_classes = cfg.probe.classes > 0 ? cfg.probe.classes : val.source_classes().at(0);
  const bool fewer_ok = cfg.probe.class_match != "names";
  if (!by_name && data_classes > 0 &&
      (data_classes > head->classes() || (data_classes < head->classes() && !fewer_ok)))
    throw Error("probe file '" + probe_path + "' classifies " + std::to_string(head->classes()) +
                " classes but probe.val has " + std::to_string(data_classes) +
                (data_classes < head->classes() ? " (probe.class_match=subset evaluates on a subset of the classes)"
                                                : ""));
  head->to(device, torch::kFloat);
  std::vector<ProbeHead> heads = {head};
  const auto sums = detail::evaluate_loader(heads, fx, val, labels, head->classes(), nullptr, device, comm, "probe.val");
  EvalReport r;
  r.samples = sums.samples();
  if (r.samples == 0) throw Error("probe.val: no samples to evaluate");
  r.loss = sums.heads[0][0].item<double>() / r.samples;
  r.top1 = sums.heads[0][1].item<double>() / r.samples;
  r.top5 = sums.heads[0][2].item<double>() / r.samples;
  r.classes = head->classes();
  return r;
}

void export_hub_from_files(const config::RunConfig& configured, const std::string& probe_path, const std::string& dir) {
  const config::RunConfig cfg = detail::with_probe_file_features(configured, probe_path, true);
  if (cfg.probe.features != "trunk")
    throw Error("--export-hub: probe file '" + probe_path + "' was trained on features=" + cfg.probe.features +
                "; a hub model directory needs a trunk");
  if (cfg.probe.weights == "random" || cfg.probe.weights.empty())
    throw Error("--export-hub: probe.weights must name trunk weights (a file or directory), got '" +
                cfg.probe.weights + "'");
  const auto blocks = model::select_blocks(cfg.probe.blocks, cfg.model, "probe.blocks");
  model::AimEncoder encoder(cfg.model);
  const std::string source = model::load_trunk_weights(encoder, cfg.probe.weights);
  ProbeHead head = load_probe(probe_path, cfg.model.heads);
  HubCard card;
  card.trunk = source;
  card.trunk_source = cfg.probe.weights;
  card.recipe = "probe file " + probe_path;
  const auto meta = io::read_weights_metadata(probe_path);
  if (auto it = meta.find("top1"); it != meta.end()) {
    try {
      card.top1 = std::stod(it->second);
    } catch (const std::exception&) {
    }
  }
  export_hub(dir, cfg.model, model::merged_trunk_tensors(encoder), head, blocks, card);
}

std::vector<std::string> prediction_class_names(const config::RunConfig& configured, const std::string& probe_path) {
  const auto from_file = detail::probe_file_class_names(probe_path);
  std::vector<std::string> from_config = split_class_names(configured.probe.val_data);
  if (from_config.empty()) from_config = split_class_names(configured.probe.train_data);
  if (from_file.empty()) return from_config;  // official heads, older probe files
  // The file's names are the head's; a config naming other classes would label them wrongly.
  match_classes(from_file, "probe file '" + probe_path + "'", from_config, "the configured split",
                configured.probe.class_match);
  return from_file;
}

}  // namespace aim::probe
