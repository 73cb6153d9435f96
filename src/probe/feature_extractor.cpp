#include "aim/probe/feature_extractor.h"

#include <torch/torch.h>

#include "aim/compat.h"
#include "aim/data/loader.h"
#include "aim/model/layer_selection.h"
#include "aim/model/trunk_weights.h"
#include "aim/runtime/device.h"

namespace aim::probe {

FeatureExtractor::FeatureExtractor(const config::RunConfig& cfg, torch::Device device,
                                   const std::string& weights_override)
    : device_(device),
      pixels_(cfg.probe.features == "pixels"),
      bf16_(device.is_cuda() && cfg.train.precision == "bf16"),
      mean_(data::channel_mean(cfg.model.channels)),
      std_(data::channel_std(cfg.model.channels)) {
  const auto& m = cfg.model;
  if (pixels_) {
    dim_ = m.channels * m.img_size * m.img_size;
    tokens_ = 1;
    source_ = "pixels";
    return;
  }
  blocks_ = model::select_blocks(cfg.probe.blocks, m, "probe.blocks");
  const std::string weights = weights_override.empty() ? cfg.probe.weights : weights_override;
  torch::manual_seed(cfg.probe.seed);  // the random baseline starts where pre-training would
  encoder_ = model::AimEncoder(m);
  const model::LoraSpec lora{cfg.probe.lora_rank, cfg.probe.lora_alpha};
  if (weights == "random") {
    source_ = "random init (seed " + std::to_string(cfg.probe.seed) + ")";
    encoder_->trunk->enable_lora(lora);
  } else {
    source_ = model::load_trunk_weights(encoder_, weights, lora);
  }
  encoder_->to(device_);
  encoder_->eval();
  for (auto& p : encoder_->parameters()) p.set_requires_grad(false);
  for (auto& p : encoder_->trunk->lora_parameters()) p.set_requires_grad(true);
  dim_ = m.width;
  tokens_ = m.num_tokens();
  heads_ = m.heads;
}

torch::Tensor FeatureExtractor::operator()(const torch::Tensor& images_u8) {
  torch::NoGradGuard no_grad;
  return run(images_u8);
}

torch::Tensor FeatureExtractor::trainable(const torch::Tensor& images_u8) { return run(images_u8); }

std::vector<torch::Tensor> FeatureExtractor::lora_parameters() const {
  return encoder_ ? encoder_->trunk->lora_parameters() : std::vector<torch::Tensor>{};
}

torch::Tensor FeatureExtractor::run(const torch::Tensor& images_u8) {
  auto images = data::normalize_images(images_u8, device_, mean_, std_);
  if (pixels_) return images.flatten(1).unsqueeze(1);
  if (bf16_) compat::set_cuda_autocast(true, at::kBFloat16);
  auto f = encoder_->features(images, blocks_);
  if (bf16_) {
    compat::set_cuda_autocast(false, at::kBFloat16);
    compat::clear_autocast_cache();
  }
  return f.to(torch::kFloat);
}

}  // namespace aim::probe
