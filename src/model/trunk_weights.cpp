#include "aim/model/trunk_weights.h"

#include <algorithm>
#include <filesystem>

#include "aim/error.h"
#include "aim/io/safetensors.h"
#include "aim/io/sharded_checkpoint.h"
#include "aim/io/state_dict.h"
#include "aim/io/weights_file.h"
#include "aim/model/hub_config.h"

namespace fs = std::filesystem;

namespace aim::model {
namespace {

/// Newest complete step_N under dir/checkpoints (a directory without a manifest never is).
std::string newest_checkpoint(const fs::path& run_dir) {
  const fs::path dir = run_dir / "checkpoints";
  if (!fs::is_directory(dir)) return "";
  int64_t best = -1;
  std::string best_path;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step_", 0) != 0 || !io::ckpt::is_checkpoint_dir(e.path().string())) continue;
    const std::string digits = name.substr(5, name.find('.') == std::string::npos ? std::string::npos : name.find('.') - 5);
    if (digits.empty() || !std::all_of(digits.begin(), digits.end(), ::isdigit)) continue;
    const int64_t step = std::stoll(digits);
    // step_N over the step_N.partial that a crash left before its rename.
    if (step > best || (step == best && name.find('.') == std::string::npos)) best = step, best_path = e.path().string();
  }
  return best_path;
}

bool is_lora_name(const std::string& name) {
  const auto dot = name.rfind('.');
  const std::string leaf = dot == std::string::npos ? name : name.substr(dot + 1);
  return leaf == "lora_A" || leaf == "lora_B";
}

/// The rank of the LoRA tensor `name` (lora_A: rows / slices, lora_B: columns), for messages.
int64_t tensors_rank(const io::NamedTensors& tensors, const std::string& name) {
  for (const auto& [n, t] : tensors)
    if (n == name && t.dim() == 2) {
      if (name.size() >= 6 && name.compare(name.size() - 6, 6, "lora_B") == 0) return t.size(1);
      const bool fused = name.find(".qkv.") != std::string::npos;  // q and v slices stacked
      return fused ? t.size(0) / 2 : t.size(0);
    }
  return 0;
}

}  // namespace

TrunkWeights resolve_trunk_weights(const std::string& weights) {
  const fs::path p(weights);
  if (weights.empty()) throw Error("probe.weights: empty; expected a .safetensors file or a run directory");
  if (!fs::exists(p)) throw Error("probe.weights: '" + weights + "' does not exist");
  if (fs::is_regular_file(p)) return {weights, "", ""};
  if (is_hub_dir(weights)) {
    const std::string file = hub_weights_file(weights);
    if (!fs::is_regular_file(p / kHubConfigFile))
      throw Error("probe.weights: directory '" + weights + "' has " + fs::path(file).filename().string() +
                  " but no " + kHubConfigFile + " (a hub model directory needs both; config.json names the architecture)");
    if (file.empty())
      throw Error("probe.weights: directory '" + weights + "' has " + kHubConfigFile + " but no weights (looked for " +
                  [] {
                    std::string names;
                    for (const auto& n : hub_weights_names()) names += (names.empty() ? "" : ", ") + n;
                    return names;
                  }() + ")");
    return {file, "", weights};
  }
  if (io::ckpt::is_checkpoint_dir(p.string())) return {weights, "model.", ""};
  if (fs::is_regular_file(p / "trunk.safetensors")) return {(p / "trunk.safetensors").string(), "", ""};
  const std::string ckpt = newest_checkpoint(p);
  if (!ckpt.empty()) return {ckpt, "model.", ""};
  throw Error("probe.weights: directory '" + weights +
              "' holds neither trunk.safetensors nor a complete checkpoint (checkpoints/step_N/manifest.json)");
}

std::string load_trunk_weights(model::AimEncoder& encoder, const std::string& weights) {
  return load_trunk_weights(encoder, weights, LoraSpec{});
}

std::string load_trunk_weights(model::AimEncoder& encoder, const std::string& weights, const LoraSpec& lora) {
  const TrunkWeights w = resolve_trunk_weights(weights);
  // A training checkpoint: the trunk's parameters assembled from every rank's part; else a
  // weights file of any format io::load_weights_file tells apart.
  io::NamedTensors tensors = w.prefix == "model."
                                 ? io::ckpt::read_checkpoint_weights(w.file, {"preprocessor.", "trunk."})
                                 : io::load_weights_file(w.file).tensors;
  std::vector<std::string> lora_names;
  for (const auto& [name, t] : tensors)
    if (is_lora_name(name)) lora_names.push_back(name);
  if (!w.hub_dir.empty()) {
    const HubConfig hub = read_hub_config(w.hub_dir);
    check_hub_matches_model(hub, encoder->config(), w.hub_dir);
    check_hub_matches_weights(hub, tensors, w.hub_dir);
  }
  if (!lora_names.empty() && lora.rank == 0)
    throw Error("probe.weights: '" + w.file + "' holds LoRA tensors (" + lora_names.front() + ", " +
                std::to_string(lora_names.size()) + " in all): set probe.lora_rank to their rank (" +
                std::to_string(tensors_rank(tensors, lora_names.front())) + ") to load them, or use its merged export");
  // LoRA tensors in the file are loaded (strictly, so their rank must match); a plain file
  // loads first and LoRA starts fresh on top, as loralib initialises it.
  const bool lora_from_file = !lora_names.empty();
  if (lora_from_file) encoder->trunk->enable_lora(lora);
  io::load_state_dict(*encoder, tensors, w.file, {"preprocessor.", "trunk."});
  if (!lora_from_file && lora.rank > 0) encoder->trunk->enable_lora(lora);
  return w.file;
}

io::NamedTensors merged_trunk_tensors(const model::AimEncoder& encoder) {
  std::map<std::string, torch::Tensor> merged;
  const auto& blocks = *encoder->trunk->blocks;
  for (size_t i = 0; i < blocks.size(); ++i) {
    const auto& attn = blocks[i]->as<BlockImpl>()->attn;
    if (!attn->lora().on()) continue;
    const std::string at = "trunk.blocks." + std::to_string(i) + ".attn.";
    merged[at + "qkv.weight"] = merged_qkv_weight(attn->qkv->weight, attn->lora());
    merged[at + "proj.weight"] = merged_proj_weight(attn->proj->weight, attn->lora());
  }
  io::NamedTensors out;
  for (auto& [name, t] : io::filter_prefixes(io::state_dict(*encoder), {"preprocessor.", "trunk."})) {
    if (is_lora_name(name)) continue;
    auto it = merged.find(name);
    out.emplace_back(name, it == merged.end() ? t.detach() : it->second);
  }
  return out;
}

void export_trunk_tensors(const std::string& path, const io::NamedTensors& tensors,
                          std::map<std::string, std::string> metadata) {
  metadata["format"] = "pt";
  io::NamedTensors out;
  for (const auto& [name, t] : tensors) out.emplace_back(name, t.detach().cpu().contiguous());
  io::save_safetensors(path, out, metadata);
}

void export_trunk(const std::string& path, const torch::nn::Module& model,
                  std::map<std::string, std::string> metadata) {
  metadata["format"] = "pt";  // what Hugging Face loaders look for
  io::NamedTensors tensors;
  for (auto& [name, t] : io::filter_prefixes(io::state_dict(model), {"preprocessor.", "trunk."}))
    tensors.emplace_back(name, t.detach().cpu().contiguous());
  io::save_safetensors(path, tensors, metadata);
}

}  // namespace aim::model
