#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "aim/model/attention_mask.h"
#include "aim/model/lora.h"

namespace aim::model {

/// Multi-head self-attention without biases (spec §2): one fused qkv projection
/// (`qkv.weight`, 3d x d, rows ordered q|k|v and head-major inside each) and `proj`.
class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int64_t dim, int64_t heads);
  /// x: [B, K, d]. mask: bidirectional when default-constructed.
  torch::Tensor forward(const torch::Tensor& x, const AttentionMask& mask);
  void reset_parameters();

  /// Adds LoRA to qkv (q and v slices) and proj (model/lora.h); the frozen weights stay.
  void enable_lora(const LoraSpec& spec);
  const LoraWeights& lora() const { return lora_; }

  torch::nn::Linear qkv{nullptr}, proj{nullptr};

 private:
  int64_t dim_, heads_;
  LoraWeights lora_;  // undefined tensors when LoRA is off
};
TORCH_MODULE(Attention);

}  // namespace aim::model
