#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

namespace aim::model {

/// Attentive probe of spec §8 (the official AttentionPoolingClassifier):
/// BatchNorm1d(d, affine=False, eps 1e-6) over channels with statistics over batch x
/// tokens, one learned query `cls_token` [1,1,d] split into heads (no query projection),
/// bias-free `k` and `v`, multi-head cross-attention, bias-free `linear` to classes.
/// Parameters: 2d^2 + d + d*classes.
class AttentionPoolingProbeImpl : public torch::nn::Module {
 public:
  AttentionPoolingProbeImpl(int64_t dim, int64_t heads, int64_t classes);
  /// features [B, K, d] -> logits [B, classes]
  torch::Tensor forward(const torch::Tensor& features);
  /// The pooled [B, d] vector before `linear` (useful for analysis).
  torch::Tensor pool(const torch::Tensor& features);

  torch::Tensor cls_token;
  torch::nn::Linear k{nullptr}, v{nullptr}, linear{nullptr};
  torch::nn::BatchNorm1d bn{nullptr};

 private:
  int64_t dim_, heads_;
};
TORCH_MODULE(AttentionPoolingProbe);

/// Linear probe: mean over tokens -> BatchNorm1d(d, affine=False) -> `linear` (with
/// bias). Parameters: d*classes + classes.
class LinearProbeImpl : public torch::nn::Module {
 public:
  LinearProbeImpl(int64_t dim, int64_t classes);
  torch::Tensor forward(const torch::Tensor& features);

  torch::nn::BatchNorm1d bn{nullptr};
  torch::nn::Linear linear{nullptr};
};
TORCH_MODULE(LinearProbe);

}  // namespace aim::model
