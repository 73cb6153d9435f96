#pragma once
#include <torch/types.h>

#include "aim/model/model_config.h"

namespace aim::model {

/// Per-step attention masking, built once and shared by every block (spec §3).
/// Query i may attend key k iff k <= i or k < S_b, with S_b the image's prefix length;
/// S_b = 0 is plain causal. An undefined AttentionMask (no prefix tensor) means
/// bidirectional attention, as downstream.
class AttentionMask {
 public:
  AttentionMask() = default;  // bidirectional

  /// prefix: int64 [B] with 0 <= S_b < K.
  AttentionMask(torch::Tensor prefix, int64_t num_tokens, int64_t heads);

  bool bidirectional() const { return !prefix_.defined(); }
  /// True when every image is plain causal (S_b = 0): fused kernels take is_causal.
  bool all_causal() const { return all_causal_; }
  const torch::Tensor& prefix() const { return prefix_; }

  /// bool [B, 1, K, K], true where attention is allowed (for fused SDPA kernels).
  torch::Tensor allowed(const torch::Device& device) const;

  /// float [B*H, K, K]: 0 where allowed, -inf elsewhere, laid out for baddbmm so the mask
  /// costs nothing extra in the score GEMM. Cached per device/dtype for the step.
  const torch::Tensor& additive(const torch::Device& device, torch::Dtype dtype) const;

 private:
  torch::Tensor prefix_;
  int64_t num_tokens_ = 0;
  int64_t heads_ = 0;
  bool all_causal_ = false;
  mutable torch::Tensor allowed_cache_;
  mutable torch::Tensor additive_cache_;
};

/// Draws S per image for pre-training: uniform on 1..K-1 for prefix attention (spec §3),
/// 0 for causal. Returns int64 [batch] on CPU.
torch::Tensor sample_prefix_lengths(int64_t batch, int64_t num_tokens, AttentionMode mode,
                                    at::Generator& gen);

}  // namespace aim::model
