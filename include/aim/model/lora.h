#pragma once
// LoRA adaptation of the trunk's attention (paper Table 8; the official LoraAttention):
// rank-r updates on the query and value slices of the fused qkv projection (loralib's
// MergedLinear with enable_lora=[True, False, True]) and on the output projection (loralib's
// Linear). The tensors live inside the projections under loralib's names and shapes, so a
// state dict reads trunk.blocks.N.attn.qkv.lora_A [2r, d], ...qkv.lora_B [2d, r],
// ...attn.proj.lora_A [r, d], ...proj.lora_B [d, r] and loads strictly into the official
// LoraAttention blocks. Off (rank 0) by default: the attention then computes exactly what it
// did before.
#include <cstdint>
#include <string>

#include <torch/nn/modules/linear.h>
#include <torch/types.h>

#include "aim/io/safetensors.h"
#include "aim/model/model_config.h"

namespace aim::model {

/// loralib's defaults: lora_alpha = 1, so the update is scaled by alpha / r.
struct LoraSpec {
  int64_t rank = 0;  // 0 = off
  double alpha = 1.0;
  double scaling() const { return rank > 0 ? alpha / static_cast<double>(rank) : 0.0; }
};

/// LoRA tensors of one attention: lora_A/lora_B registered on its qkv and proj Linears.
struct LoraWeights {
  torch::Tensor qkv_A, qkv_B, proj_A, proj_B;
  double scaling = 0;
  bool on() const { return qkv_A.defined(); }
};

/// Registers lora_A (kaiming-uniform, a=sqrt(5)) and lora_B (zeros) on qkv (q and v slices)
/// and proj, as loralib initialises them: the adapted attention starts equal to the frozen one.
LoraWeights add_lora(torch::nn::Linear& qkv, torch::nn::Linear& proj, const LoraSpec& spec);

/// x [.., d] -> the LoRA part of qkv(x), [.., 3d], zero on the key slice.
torch::Tensor lora_qkv_delta(const torch::Tensor& x, const LoraWeights& w);
/// x [.., d] -> the LoRA part of proj(x).
torch::Tensor lora_proj_delta(const torch::Tensor& x, const LoraWeights& w);

/// W + scaling * B A for the fused qkv (q and v rows only) and for proj: the plain weights
/// an un-adapted attention needs to compute what the adapted one does.
torch::Tensor merged_qkv_weight(const torch::Tensor& qkv_weight, const LoraWeights& w);
torch::Tensor merged_proj_weight(const torch::Tensor& proj_weight, const LoraWeights& w);

/// The clear error for probe.lora_rank outside [0, width] (`key` names the setting).
void check_lora_rank(int64_t rank, int64_t width, const std::string& key);

/// LoRA parameters a trunk of `cfg` gains at `rank`: 6 r d per block (qkv: 2r*d + 2d*r,
/// proj: r*d + d*r). For aim-7b at r=8 that is 6.3 M, ~0.1 % of the trunk (the paper's figure).
int64_t lora_parameters(const ModelConfig& cfg, int64_t rank);

}  // namespace aim::model
