#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "aim/model/attention.h"
#include "aim/model/mlp.h"

namespace aim::model {

/// LayerNorm with weight 1 / bias 0 and a configurable eps (spec §2).
torch::nn::LayerNorm make_layer_norm(int64_t dim, double eps);

/// Pre-norm transformer block of the trunk: x += attn(norm_1(x)); x += mlp(norm_2(x)).
class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(int64_t dim, int64_t heads, int64_t mlp_ratio, double eps);
  torch::Tensor forward(const torch::Tensor& x, const AttentionMask& mask);

  torch::nn::LayerNorm norm_1{nullptr}, norm_2{nullptr};
  Attention attn{nullptr};
  Mlp mlp{nullptr};
};
TORCH_MODULE(Block);

/// Block of the pre-training head: no attention. With identity_attn (the released code's
/// quirk, spec §4) the attention slot is an identity, so the first residual adds
/// norm_1(x); without it the block is x += mlp(norm_2(x)) and has no norm_1.
class MlpBlockImpl : public torch::nn::Module {
 public:
  MlpBlockImpl(int64_t dim, int64_t mlp_ratio, double eps, bool identity_attn);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::LayerNorm norm_1{nullptr}, norm_2{nullptr};
  Mlp mlp{nullptr};
};
TORCH_MODULE(MlpBlock);

}  // namespace aim::model
