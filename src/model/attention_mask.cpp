#include "aim/model/attention_mask.h"

#include <torch/torch.h>

#include "aim/error.h"

namespace aim::model {

AttentionMask::AttentionMask(torch::Tensor prefix, int64_t num_tokens, int64_t heads)
    : prefix_(prefix.to(torch::kInt64)), num_tokens_(num_tokens), heads_(heads) {
  TORCH_CHECK(prefix_.dim() == 1, "prefix lengths must be 1-D [B], got ", prefix_.sizes());
  if (prefix_.numel() > 0) {
    auto lo = prefix_.min().item<int64_t>(), hi = prefix_.max().item<int64_t>();
    TORCH_CHECK(lo >= 0 && hi < num_tokens, "prefix lengths must lie in [0, ", num_tokens,
                "), got [", lo, ", ", hi, "]");
    all_causal_ = hi == 0;
  }
}

torch::Tensor AttentionMask::allowed(const torch::Device& device) const {
  TORCH_CHECK(!bidirectional(), "a bidirectional mask has no tensor form");
  if (!allowed_cache_.defined() || allowed_cache_.device() != device) {
    auto opts = torch::TensorOptions().dtype(torch::kInt64).device(device);
    auto i = torch::arange(num_tokens_, opts);
    // Pinned prefixes (aim-train on CUDA) are copied without blocking the host.
    auto s = prefix_.to(device, /*non_blocking=*/prefix_.is_pinned()).view({-1, 1, 1});
    auto causal = i.view({1, -1, 1}) >= i.view({1, 1, -1});  // [1, K(q), K(k)]
    auto in_prefix = i.view({1, 1, -1}) < s;                  // [B, 1, K(k)]
    allowed_cache_ = (causal | in_prefix).unsqueeze(1);       // [B, 1, K, K]
  }
  return allowed_cache_;
}

const torch::Tensor& AttentionMask::additive(const torch::Device& device, torch::Dtype dtype) const {
  TORCH_CHECK(!bidirectional(), "a bidirectional mask has no tensor form");
  if (!additive_cache_.defined() || additive_cache_.device() != device ||
      additive_cache_.scalar_type() != dtype) {
    auto ok = allowed(device);
    const auto B = ok.size(0);
    auto bias = torch::zeros(ok.sizes(), torch::TensorOptions().dtype(dtype).device(device));
    bias.masked_fill_(ok.logical_not(), -std::numeric_limits<float>::infinity());
    additive_cache_ = bias.expand({B, heads_, num_tokens_, num_tokens_})
                          .reshape({B * heads_, num_tokens_, num_tokens_});
  }
  return additive_cache_;
}

torch::Tensor sample_prefix_lengths(int64_t batch, int64_t num_tokens, AttentionMode mode,
                                    at::Generator& gen) {
  if (mode == AttentionMode::kPrefixCausal)
    return torch::randint(1, num_tokens, {batch}, gen, torch::TensorOptions().dtype(torch::kInt64));
  if (mode == AttentionMode::kCausal) return torch::zeros({batch}, torch::kInt64);
  throw Error("sample_prefix_lengths: bidirectional attention has no prefix");
}

}  // namespace aim::model
