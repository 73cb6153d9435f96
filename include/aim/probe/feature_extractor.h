#pragma once
#include <string>
#include <vector>

#include <torch/types.h>

#include "aim/config/run_config.h"
#include "aim/model/aim_encoder.h"

namespace aim::probe {

/// Frozen features for a probe: the mean of the chosen trunk blocks' outputs (before the
/// post-trunk norm) of a bidirectional pass, [B, K, d] float32 — or, with
/// probe.features=pixels, the normalized image itself as one token [B, 1, C*H*W] (the
/// pixel-space linear baseline).
class FeatureExtractor {
 public:
  /// Builds the trunk and loads probe.weights (strictly), or seeds a random trunk for
  /// weights=random; with probe.lora_rank > 0 adds LoRA (model/lora.h) to it. `weights_override` replaces probe.weights when not empty.
  FeatureExtractor(const config::RunConfig& cfg, torch::Device device, const std::string& weights_override = "");

  /// uint8 images [B, C, H, W] (as the loader gives them) -> float32 features on the device.
  torch::Tensor operator()(const torch::Tensor& images_u8);

  /// The same features with autograd on, for LoRA training (probe.lora_rank > 0): gradients
  /// reach the LoRA tensors, never the frozen trunk weights.
  torch::Tensor trainable(const torch::Tensor& images_u8);

  /// The trunk's LoRA tensors (trainable); empty without LoRA.
  std::vector<torch::Tensor> lora_parameters() const;
  /// The encoder (undefined for pixel features), for exporting the adapted trunk.
  const model::AimEncoder& encoder() const { return encoder_; }

  int64_t dim() const { return dim_; }
  int64_t tokens() const { return tokens_; }
  int64_t heads() const { return heads_; }
  const std::vector<int64_t>& blocks() const { return blocks_; }
  /// What the features come from, for logs and results.json ("runs/x/trunk.safetensors").
  const std::string& source() const { return source_; }

 private:
  torch::Tensor run(const torch::Tensor& images_u8);

  torch::Device device_;
  bool pixels_, bf16_;
  model::AimEncoder encoder_{nullptr};
  std::vector<int64_t> blocks_;
  std::vector<double> mean_, std_;
  int64_t dim_ = 0, tokens_ = 0, heads_ = 1;
  std::string source_;
};

}  // namespace aim::probe
