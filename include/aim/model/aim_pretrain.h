#pragma once
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "aim/loss/next_patch_loss.h"
#include "aim/model/model_config.h"
#include "aim/model/preprocessor.h"
#include "aim/model/pretrain_head.h"
#include "aim/model/trunk.h"

namespace aim::model {

struct PretrainOutput {
  torch::Tensor trunk_out;  // post-trunk-normed tokens [B, K, d], sequence order
  torch::Tensor pred;       // [B, K, P*P*C] in sequence order (position i predicts i+1)
  loss::LossTerms loss;
};

/// AIM as pre-trained: preprocessor -> token order -> prefix-causal trunk -> head -> loss.
/// Names: preprocessor.*, trunk.*, pretrain_head.* (spec §10).
class AimPretrainModelImpl : public torch::nn::Module {
 public:
  explicit AimPretrainModelImpl(const ModelConfig& cfg);

  /// images: normalized [B, C, H, W]; prefix: int64 [B] (0 = causal, see
  /// sample_prefix_lengths). The loss covers targets at sequence positions j >= S.
  PretrainOutput forward(const torch::Tensor& images, const torch::Tensor& prefix);

  const ModelConfig& config() const { return cfg_; }
  /// perm [K] int64 of the configured order, undefined for raster.
  const torch::Tensor& order() const { return order_; }

  Preprocessor preprocessor{nullptr};
  Trunk trunk{nullptr};
  PretrainHead pretrain_head{nullptr};

 private:
  ModelConfig cfg_;
  torch::Tensor order_;
};
TORCH_MODULE(AimPretrainModel);

}  // namespace aim::model
