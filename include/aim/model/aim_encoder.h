#pragma once
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <vector>

#include "aim/model/model_config.h"
#include "aim/model/preprocessor.h"
#include "aim/model/trunk.h"

namespace aim::model {

/// The part of AIM kept after pre-training: `preprocessor.*` and `trunk.*`, laid out like
/// the official checkpoints so their weights load by name. Runs bidirectionally.
class AimEncoderImpl : public torch::nn::Module {
 public:
  explicit AimEncoderImpl(const ModelConfig& cfg);

  /// Probe features: the mean of the chosen blocks' outputs (before the post-trunk
  /// norm), [B, K, d]. The pass stops after the deepest chosen block.
  torch::Tensor features(const torch::Tensor& images, const std::vector<int64_t>& blocks);

  /// Post-trunk-normed tokens [B, K, d] of a full bidirectional pass.
  torch::Tensor forward(const torch::Tensor& images);

  const ModelConfig& config() const { return cfg_; }

  Preprocessor preprocessor{nullptr};
  Trunk trunk{nullptr};

 private:
  ModelConfig cfg_;
};
TORCH_MODULE(AimEncoder);

}  // namespace aim::model
