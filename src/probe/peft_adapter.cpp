#include "aim/probe/peft_adapter.h"

#include <spdlog/fmt/fmt.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "aim/error.h"
#include "aim/io/atomic_file.h"
#include "aim/model/block.h"

namespace fs = std::filesystem;

namespace aim::probe {
namespace {

// peft's saved names: the PeftModel's base_model.model.<module path>, without the adapter name.
constexpr const char* kPrefix = "base_model.model.";

struct AdaptedBlock {
  size_t index;
  const model::LoraWeights* lora;
};

std::vector<AdaptedBlock> adapted_blocks(const model::AimEncoder& encoder) {
  std::vector<AdaptedBlock> out;
  const auto& blocks = *encoder->trunk->blocks;
  for (size_t i = 0; i < blocks.size(); ++i) {
    const auto& attn = blocks[i]->as<model::BlockImpl>()->attn;
    if (attn->lora().on()) out.push_back({i, &attn->lora()});
  }
  if (out.empty()) throw Error("peft adapter: the trunk carries no LoRA tensors (probe.lora_rank = 0)");
  return out;
}

}  // namespace

io::NamedTensors peft_adapter_tensors(const model::AimEncoder& encoder) {
  io::NamedTensors out;
  for (const auto& [i, w] : adapted_blocks(encoder)) {
    const int64_t r = w->qkv_B.size(1), d = w->qkv_B.size(0) / 2;
    auto f32 = [](const torch::Tensor& t) { return t.detach().to(torch::kCPU, torch::kFloat).contiguous(); };
    // qkv: one rank-2r LoRA; B's q rows use A's first r rows, its v rows A's last r rows.
    auto b = torch::zeros({3 * d, 2 * r}, torch::kFloat);
    b.narrow(0, 0, d).narrow(1, 0, r).copy_(f32(w->qkv_B.narrow(0, 0, d)));
    b.narrow(0, 2 * d, d).narrow(1, r, r).copy_(f32(w->qkv_B.narrow(0, d, d)));
    const std::string at = std::string(kPrefix) + "trunk.blocks." + std::to_string(i) + ".attn.";
    out.emplace_back(at + "qkv.lora_A.weight", f32(w->qkv_A));
    out.emplace_back(at + "qkv.lora_B.weight", b);
    out.emplace_back(at + "proj.lora_A.weight", f32(w->proj_A));
    out.emplace_back(at + "proj.lora_B.weight", f32(w->proj_B));
  }
  return out;
}

std::string peft_adapter_config(const model::AimEncoder& encoder, const std::string& base_model) {
  const auto blocks = adapted_blocks(encoder);
  const model::LoraWeights& w = *blocks.front().lora;
  const int64_t r = w.proj_A.size(0);
  const double alpha = w.scaling * static_cast<double>(r);  // loralib: scaling = alpha / r
  nlohmann::ordered_json j = {
      {"peft_type", "LORA"},
      {"task_type", nullptr},
      {"base_model_name_or_path", base_model},
      {"revision", nullptr},
      {"inference_mode", true},
      {"r", r},
      {"lora_alpha", alpha},
      {"lora_dropout", 0.0},
      {"bias", "none"},
      {"fan_in_fan_out", false},
      {"use_rslora", false},
      {"use_dora", false},
      {"init_lora_weights", true},
      // A regex (peft matches it against the whole module name): the trunk's attention
      // projections only, not the patch embedding's `proj`.
      {"target_modules", "trunk\\.blocks\\.\\d+\\.attn\\.(qkv|proj)"},
      {"rank_pattern", {{"qkv", 2 * r}}},
      {"alpha_pattern", {{"qkv", 2 * alpha}}},
      {"modules_to_save", nullptr},
      {"layers_to_transform", nullptr},
      {"layers_pattern", nullptr},
  };
  return j.dump(2) + "\n";
}

void write_peft_adapter(const std::string& dir, const model::AimEncoder& encoder, const std::string& base_model) {
  const io::NamedTensors tensors = peft_adapter_tensors(encoder);
  fs::create_directories(dir);
  io::save_safetensors((fs::path(dir) / "adapter_model.safetensors").string(), tensors, {{"format", "pt"}});
  io::write_file_atomic((fs::path(dir) / "adapter_config.json").string(), peft_adapter_config(encoder, base_model));
}

}  // namespace aim::probe
