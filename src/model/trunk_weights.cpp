#include "aim/model/trunk_weights.h"

#include <algorithm>
#include <filesystem>

#include "aim/error.h"
#include "aim/io/safetensors.h"
#include "aim/io/state_dict.h"

namespace fs = std::filesystem;

namespace aim::model {
namespace {

bool is_checkpoint_dir(const fs::path& p) { return fs::is_regular_file(p / "state.safetensors"); }

/// Newest complete step_N under dir/checkpoints (a step_N.partial is never complete).
std::string newest_checkpoint(const fs::path& run_dir) {
  const fs::path dir = run_dir / "checkpoints";
  if (!fs::is_directory(dir)) return "";
  int64_t best = -1;
  std::string best_path;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step_", 0) != 0 || !is_checkpoint_dir(e.path())) continue;
    const std::string digits = name.substr(5);
    if (digits.empty() || !std::all_of(digits.begin(), digits.end(), ::isdigit)) continue;
    const int64_t step = std::stoll(digits);
    if (step > best) best = step, best_path = e.path().string();
  }
  return best_path;
}

}  // namespace

TrunkWeights resolve_trunk_weights(const std::string& weights) {
  const fs::path p(weights);
  if (weights.empty()) throw Error("probe.weights: empty; expected a .safetensors file or a run directory");
  if (!fs::exists(p)) throw Error("probe.weights: '" + weights + "' does not exist");
  if (fs::is_regular_file(p)) return {weights, ""};
  if (is_checkpoint_dir(p)) return {(p / "state.safetensors").string(), "model."};
  if (fs::is_regular_file(p / "trunk.safetensors")) return {(p / "trunk.safetensors").string(), ""};
  const std::string ckpt = newest_checkpoint(p);
  if (!ckpt.empty()) return {(fs::path(ckpt) / "state.safetensors").string(), "model."};
  throw Error("probe.weights: directory '" + weights +
              "' holds neither trunk.safetensors nor checkpoints/step_N/state.safetensors");
}

std::string load_trunk_weights(model::AimEncoder& encoder, const std::string& weights) {
  const TrunkWeights w = resolve_trunk_weights(weights);
  io::SafetensorsFile file = io::load_safetensors(w.file);
  io::NamedTensors tensors;
  for (auto& [name, t] : file.tensors)
    if (name.rfind(w.prefix, 0) == 0) tensors.emplace_back(name.substr(w.prefix.size()), t);
  io::load_state_dict(*encoder, tensors, w.file, {"preprocessor.", "trunk."});
  return w.file;
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
