#include "aim/compat.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <c10/util/Exception.h>

namespace aim::compat {

at::Tensor scaled_dot_product_attention(const at::Tensor& q, const at::Tensor& k,
                                        const at::Tensor& v,
                                        const std::optional<at::Tensor>& allowed,
                                        bool is_causal) {
#if AIM_HAS_SDPA
  c10::optional<at::Tensor> mask;  // a distinct type before 2.4, an alias of std::optional after
  if (allowed) mask = *allowed;
  return at::scaled_dot_product_attention(q, k, v, mask, /*dropout_p=*/0.0, is_causal);
#else
  (void)q; (void)k; (void)v; (void)allowed; (void)is_causal;
  TORCH_CHECK(false, "aim::compat::scaled_dot_product_attention needs LibTorch >= 2.0");
#endif
}

void set_cuda_autocast(bool enabled, at::ScalarType dtype) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  at::autocast::set_autocast_enabled(at::kCUDA, enabled);
  at::autocast::set_autocast_dtype(at::kCUDA, dtype);
#else
  at::autocast::set_enabled(enabled);
  at::autocast::set_autocast_gpu_dtype(dtype);
#endif
}

void clear_autocast_cache() { at::autocast::clear_cache(); }

const char* torch_version() { return TORCH_VERSION; }

}  // namespace aim::compat
