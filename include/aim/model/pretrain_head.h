#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "aim/model/model_config.h"

namespace aim::model {

/// The pre-training prediction head (spec §4), discarded after pre-training:
///   h = proj_in(x) + sincos(head_width); h = blocks(h); pred = proj_out(norm(h)).
/// Names: proj_in, blocks.{i}.{norm_1,norm_2,mlp.fc1,mlp.fc2}, norm, proj_out.
class PretrainHeadImpl : public torch::nn::Module {
 public:
  explicit PretrainHeadImpl(const ModelConfig& cfg);
  /// x: post-trunk-normed tokens [B, K, d] in sequence order; order: perm [K] int64
  /// (undefined = raster) so each token gets the head position of its own patch.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& order);
  /// The head on selected tokens only (it is per-token: no attention): x [M, d] holds the
  /// tokens at sequence positions `positions` (int64 [M]); returns [M, P*P*C].
  torch::Tensor forward_rows(const torch::Tensor& x, const torch::Tensor& positions, const torch::Tensor& order);
  /// Activation checkpointing of every head block (see TrunkImpl).
  void set_activation_checkpointing(bool on) { checkpointing_ = on; }

  torch::nn::Linear proj_in{nullptr}, proj_out{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr};

 private:
  torch::Tensor run(torch::Tensor h);  // blocks, norm, proj_out
  torch::Tensor pos_;                  // [K, head_width], raster order
  bool checkpointing_ = false;
};
TORCH_MODULE(PretrainHead);

}  // namespace aim::model
