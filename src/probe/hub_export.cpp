#include "aim/probe/hub_export.h"

#include <spdlog/fmt/fmt.h>
#include <torch/torch.h>

#include <filesystem>

#include "aim/error.h"
#include "aim/io/atomic_file.h"
#include "aim/io/state_dict.h"
#include "aim/model/hub_config.h"

namespace fs = std::filesystem;

namespace aim::probe {

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
  io::save_safetensors((fs::path(dir) / model::kHubWeightsFile).string(), tensors,
                       {{"format", "pt"}, {"probe_kind", "attentive"}, {"features", "trunk"},
                        {"classes", std::to_string(head->classes())}, {"dim", std::to_string(m.width)},
                        {"heads", std::to_string(m.heads)}, {"block_indices", layers}});
  model::write_hub_config(dir, hub);

  std::string card_md = fmt::format(
      "# AIM ({}) with an attentive probe\n\n"
      "Written by `aim-probe` in the layout of the official AIM v1 package: load it with\n\n"
      "```python\nfrom aim.v1.torch.models import AIMForImageClassification\n"
      "model = AIMForImageClassification.from_pretrained(\"{}\")\n```\n\n"
      "## Architecture\n\n"
      "| | |\n|---|---|\n| preset | {} |\n| image size | {} px, {} channels |\n| patch size | {} ({} tokens) |\n"
      "| width / blocks / heads | {} / {} / {} |\n| probe | attentive, blocks {} averaged, {} classes |\n\n"
      "## Data and recipe\n\n- trunk: {}\n- probe data: {}\n- recipe: {}\n",
      m.preset, fs::path(dir).filename().string(), m.preset, m.img_size, m.channels, m.patch_size, m.num_tokens(),
      m.width, m.depth, m.heads, layers, head->classes(), card.trunk.empty() ? "(not recorded)" : card.trunk,
      card.data.empty() ? "(not recorded)" : card.data, card.recipe.empty() ? "(not recorded)" : card.recipe);
  if (card.top1 >= 0)
    card_md += fmt::format("\n## Accuracy\n\ntop-1 {:.2f} % on {} evaluation images.\n", 100 * card.top1,
                           card.val_samples);
  io::write_file_atomic((fs::path(dir) / "README.md").string(), card_md);
}

}  // namespace aim::probe
