#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include <vector>

#include "aim/model/block.h"
#include "aim/model/lora.h"
#include "aim/model/model_config.h"

namespace aim::model {

/// What a trunk pass returns: the post-trunk-normed output (for the pre-training head)
/// and the raw outputs of the requested blocks (for probes; spec §8 takes them *before*
/// the post-trunk norm).
struct TrunkOutput {
  torch::Tensor normed;               // undefined when the pass stopped early
  std::vector<torch::Tensor> blocks;  // in the order requested
};

/// The kept part of AIM: `blocks.{i}` and `post_trunk_norm` (spec §2, §10).
class TrunkImpl : public torch::nn::Module {
 public:
  explicit TrunkImpl(const ModelConfig& cfg);

  /// tokens [B, K, d]. capture: 0-indexed block ids whose outputs to return. When
  /// `normed_output` is false the pass stops after the last captured block.
  TrunkOutput forward(const torch::Tensor& tokens, const AttentionMask& mask,
                      const std::vector<int64_t>& capture = {}, bool normed_output = true);

  /// Activation checkpointing of every block (model::checkpoint): training keeps only the
  /// blocks' inputs and recomputes each block in backward. Same values and gradients.
  void set_activation_checkpointing(bool on) { checkpointing_ = on; }

  /// LoRA on every block's attention (model/lora.h); rank 0 leaves the trunk as it is.
  void enable_lora(const LoraSpec& spec);
  /// The LoRA tensors (qkv.lora_A, qkv.lora_B, proj.lora_A, proj.lora_B per block); empty when off.
  std::vector<torch::Tensor> lora_parameters() const;

  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm post_trunk_norm{nullptr};

 private:
  bool checkpointing_ = false;
};
TORCH_MODULE(Trunk);

}  // namespace aim::model
