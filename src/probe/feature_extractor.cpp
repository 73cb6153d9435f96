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
  if (weights == "random") {
    source_ = "random init (seed " + std::to_string(cfg.probe.seed) + ")";
  } else {
    source_ = model::load_trunk_weights(encoder_, weights);
  }
  encoder_->to(device_);
  encoder_->eval();
  for (auto& p : encoder_->parameters()) p.set_requires_grad(false);
  dim_ = m.width;
  tokens_ = m.num_tokens();
  heads_ = m.heads;
}

torch::Tensor FeatureExtractor::operator()(const torch::Tensor& images_u8) {
  torch::NoGradGuard no_grad;
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
