#pragma once
// The one place that knows LibTorch versions differ. Debian 12 ships LibTorch 1.13,
// GPU users build against LibTorch 2.x; everything else in aim is version-agnostic.
#include <torch/version.h>

#if TORCH_VERSION_MAJOR >= 2
#define AIM_HAS_SDPA 1  // at::scaled_dot_product_attention is public API from 2.0
#else
#define AIM_HAS_SDPA 0  // 1.13 only has the private, math-only _scaled_dot_product_attention
#endif

#include <ATen/core/Tensor.h>
#include <optional>

namespace aim::compat {

/// Scaled dot-product attention on [B, H, K, hd] tensors with an optional boolean
/// "may attend" mask broadcastable to [B, H, K, K]. Only defined where the fused kernels
/// exist (LibTorch 2.x); callers check AIM_HAS_SDPA.
at::Tensor scaled_dot_product_attention(const at::Tensor& q, const at::Tensor& k,
                                        const at::Tensor& v,
                                        const std::optional<at::Tensor>& allowed,
                                        bool is_causal);

/// Torch version as "major.minor.patch", for logs and run summaries.
const char* torch_version();

}  // namespace aim::compat
