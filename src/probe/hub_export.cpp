#include "aim/probe/hub_export.h"

#include <spdlog/fmt/fmt.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include <yaml-cpp/yaml.h>

#include "aim/error.h"
#include "aim/io/atomic_file.h"
#include "aim/io/state_dict.h"
#include "aim/model/hub_config.h"
#include "aim/probe/class_labels.h"

namespace fs = std::filesystem;

namespace aim::probe {
namespace {

/// The LICENSE of the trunk's source: in a hub directory given as probe.weights, or beside a
/// weights file; "" when there is none.
std::string license_beside(const std::string& source) {
  if (source.empty() || source == "random") return "";
  const fs::path dir = fs::is_directory(source) ? fs::path(source) : fs::path(source).parent_path();
  for (const char* name : {"LICENSE", "LICENSE.txt", "LICENSE.md", "LICENCE"})
    if (fs::is_regular_file(dir / name)) return (dir / name).string();
  return "";
}

/// license / license_name / license_link from the YAML header of a hub directory's README.md
/// (the official apple/aim-* cards carry them), in that order.
std::vector<std::pair<std::string, std::string>> license_fields(const std::string& source) {
  std::vector<std::pair<std::string, std::string>> out;
  if (source.empty() || !fs::is_directory(source)) return out;
  std::ifstream in(fs::path(source) / "README.md");
  std::string line, header;
  if (!std::getline(in, line) || line != "---") return out;
  while (std::getline(in, line) && line != "---") header += line + "\n";
  try {
    const YAML::Node y = YAML::Load(header);
    for (const char* key : {"license", "license_name", "license_link"})
      if (y[key] && y[key].IsScalar()) out.emplace_back(key, y[key].as<std::string>());
  } catch (const std::exception&) {
  }
  return out;
}

std::string yaml_quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) out += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
  return out + "\"";
}

std::string model_card(const std::string& dir, const model::ModelConfig& m, ProbeHead& head, const std::string& layers,
                       const HubCard& card) {
  // The header the hub reads: what library loads it, the task, licence, tags, data, metric.
  std::string yaml = "---\nlibrary_name: ml-aim\npipeline_tag: image-classification\n";
  auto license = license_fields(card.trunk_source);
  const std::string license_file = license_beside(card.trunk_source);
  if (license.empty() && !license_file.empty()) license = {{"license", "other"}, {"license_link", "LICENSE"}};
  for (const auto& [k, v] : license) yaml += k + ": " + yaml_quoted(k == "license_link" && !license_file.empty() ? "LICENSE" : v) + "\n";
  if (license.empty())
    yaml += "# license: the trunk's licence was not found beside probe.weights; add it before publishing\n";
  yaml += "tags:\n- aim\n- autoregressive-image-models\n- vision\n- attentive-probe\n";
  if (!card.datasets.empty()) {
    yaml += "datasets:\n";
    for (const auto& d : card.datasets) yaml += "- " + yaml_quoted(d) + "\n";
  }
  yaml += "metrics:\n- accuracy\n---\n\n";

  const std::string path = fs::absolute(dir).lexically_normal().string();
  std::string md = yaml + fmt::format(
      "# AIM ({}) with an attentive probe\n\n"
      "Written by `aim-probe` in the layout of the official AIM v1 package (`pip install "
      "git+https://github.com/apple/ml-aim.git`, its `aim-v1` package): load this directory by its path with\n\n"
      "```python\nfrom aim.v1.torch.models import AIMForImageClassification\n"
      "model = AIMForImageClassification.from_pretrained({})\n```\n\n"
      "(or by its repository id once uploaded).\n\n"
      "## Architecture\n\n"
      "| | |\n|---|---|\n| preset | {} |\n| image size | {} px, {} channels |\n| patch size | {} ({} tokens) |\n"
      "| width / blocks / heads | {} / {} / {} |\n| probe | attentive, blocks {} averaged, {} classes |\n\n"
      "## Data and recipe\n\n- trunk: {}\n- probe data: {}\n- recipe: {}\n",
      m.preset, yaml_quoted(path), m.preset, m.img_size, m.channels, m.patch_size, m.num_tokens(), m.width, m.depth,
      m.heads, layers, head->classes(), card.trunk.empty() ? "(not recorded)" : card.trunk,
      card.data.empty() ? "(not recorded)" : card.data, card.recipe.empty() ? "(not recorded)" : card.recipe);
  if (!card.class_names.empty()) {
    md += "- classes (logit index: name):";
    for (size_t i = 0; i < card.class_names.size(); ++i) md += fmt::format(" {}: {}{}", i, card.class_names[i], i + 1 < card.class_names.size() ? "," : "");
    md += "\n";
  }
  if (card.top1 >= 0)
    md += fmt::format("\n## Accuracy\n\ntop-1 {:.2f} % on {} evaluation images.\n", 100 * card.top1, card.val_samples);
  if (!license_file.empty()) {
    md += "\n## Licence\n\nThe trunk's licence, copied from `" + license_file + "`: see `LICENSE`.\n";
    std::error_code ec;
    fs::copy_file(license_file, fs::path(dir) / "LICENSE", fs::copy_options::overwrite_existing, ec);
    if (ec) throw Error("--export-hub: could not copy " + license_file + " to " + dir + "/LICENSE: " + ec.message());
  }
  return md;
}

}  // namespace

void export_hub(const std::string& dir, const model::ModelConfig& m, const io::NamedTensors& trunk, ProbeHead& head,
                const std::vector<int64_t>& blocks, const HubCard& card) {
  if (head->kind() != "attentive")
    throw Error("--export-hub: the official AIMForImageClassification has an attentive head; this probe is " +
                head->kind() + " (train it with probe.kind=attentive)");
  if (head->dim() != m.width)
    throw Error("--export-hub: the probe expects features of width " + std::to_string(head->dim()) +
                " but the trunk's width is " + std::to_string(m.width));
  fs::create_directories(dir);
  const model::HubConfig hub = model::hub_config_for(m, blocks, head->classes());
  io::NamedTensors tensors;
  for (const auto& [name, t] : trunk) {
    if (name.find("lora_") != std::string::npos)
      throw Error("--export-hub: trunk tensor " + name + " is a LoRA tensor; export the merged trunk");
    tensors.emplace_back(name, t.detach().to(torch::kCPU, torch::kFloat).contiguous());
  }
  for (auto& [name, t] : io::state_dict(*head))
    tensors.emplace_back(name, t.is_floating_point() ? t.detach().to(torch::kCPU, torch::kFloat).contiguous()
                                                      : t.detach().cpu().contiguous());
  // Metadata lets aim-probe --eval-only read the probe back from model.safetensors alone.
  std::string layers;
  for (int64_t b : blocks) layers += (layers.empty() ? "" : ",") + std::to_string(b);
  std::map<std::string, std::string> meta = {{"format", "pt"},
                                             {"probe_kind", "attentive"},
                                             {"features", "trunk"},
                                             {"classes", std::to_string(head->classes())},
                                             {"dim", std::to_string(m.width)},
                                             {"heads", std::to_string(m.heads)},
                                             {"block_indices", layers}};
  if (!card.class_names.empty()) meta["class_names"] = encode_class_names(card.class_names);
  io::save_safetensors((fs::path(dir) / model::kHubWeightsFile).string(), tensors, meta);
  model::write_hub_config(dir, hub);

  io::write_file_atomic((fs::path(dir) / "README.md").string(), model_card(dir, m, head, layers, card));
}

}  // namespace aim::probe
