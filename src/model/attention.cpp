#include "aim/model/attention.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <cmath>
#include <mutex>
#include <optional>

#include "aim/compat.h"
#include "aim/error.h"

namespace aim::model {

AttentionImpl::AttentionImpl(int64_t dim, int64_t heads) : dim_(dim), heads_(heads) {
  qkv = register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(dim, 3 * dim).bias(false)));
  proj = register_module("proj", torch::nn::Linear(torch::nn::LinearOptions(dim, dim).bias(false)));
  reset_parameters();
}

void AttentionImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  torch::nn::init::xavier_uniform_(qkv->weight);
  torch::nn::init::xavier_uniform_(proj->weight);
}

void AttentionImpl::enable_lora(const LoraSpec& spec) {
  if (lora_.on()) throw Error("attention: LoRA is already enabled");
  check_lora_rank(spec.rank, dim_, "lora rank");
  if (spec.rank > 0) lora_ = add_lora(qkv, proj, spec);
}

#if AIM_HAS_SDPA
namespace {

// Which fused kernel a CUDA run gets decides its speed and memory (the masked prefix steps
// cannot use flash attention): said once per process and kind of mask, at the first use.
void log_sdpa_backend_once(int kind, const char* what, const torch::Tensor& q, const torch::Tensor& k,
                           const torch::Tensor& v, const std::optional<torch::Tensor>& allowed, bool is_causal) {
  static std::once_flag flags[3];
  if (!q.is_cuda()) return;
  std::call_once(flags[kind], [&] {
    spdlog::info("attention kernel for {} steps ({} x {} tokens, head dim {}, {}): {}", what, q.size(0), q.size(2),
                 q.size(3), c10::toString(q.scalar_type()), compat::sdpa_backend(q, k, v, allowed, is_causal));
  });
}

}  // namespace
#endif

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const AttentionMask& mask) {
  const auto B = x.size(0), K = x.size(1);
  const auto hd = dim_ / heads_;
  // [B, K, 3, H, hd] -> [3, B, H, K, hd]
  auto qkv_lin = qkv->forward(x);
  if (lora_.on()) qkv_lin = qkv_lin + lora_qkv_delta(x, lora_);
  auto qkv_out = qkv_lin.view({B, K, 3, heads_, hd}).permute({2, 0, 3, 1, 4});
  auto q = qkv_out[0], k = qkv_out[1], v = qkv_out[2];
  torch::Tensor out;  // [B, H, K, hd]
#if AIM_HAS_SDPA
  // Fused kernels (flash / memory-efficient) on LibTorch 2.x. Pure causal steps use
  // is_causal, which unlocks flash attention; prefix steps pass the boolean mask.
  if (mask.bidirectional()) {
    log_sdpa_backend_once(0, "bidirectional", q, k, v, std::nullopt, false);
    out = compat::scaled_dot_product_attention(q, k, v, std::nullopt, false);
  } else if (mask.all_causal()) {
    log_sdpa_backend_once(1, "causal", q, k, v, std::nullopt, true);
    out = compat::scaled_dot_product_attention(q, k, v, std::nullopt, true);
  } else {
    const auto allowed = mask.allowed(x.device());
    log_sdpa_backend_once(2, "prefix-causal (masked)", q, k, v, allowed, false);
    out = compat::scaled_dot_product_attention(q, k, v, allowed, false);
  }
#else
  // LibTorch 1.13: explicit attention, arranged so the mask rides along for free:
  // scale q (K*hd values) rather than scores (K*K), and add the -inf mask inside the
  // score GEMM with baddbmm instead of a separate masked_fill pass.
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  auto q3 = (q * scale).reshape({B * heads_, K, hd});
  auto k3 = k.reshape({B * heads_, K, hd});
  auto v3 = v.reshape({B * heads_, K, hd});
  auto scores = mask.bidirectional()
                    ? torch::bmm(q3, k3.transpose(1, 2))
                    : torch::baddbmm(mask.additive(x.device(), x.scalar_type()), q3, k3.transpose(1, 2));
  out = torch::bmm(torch::softmax(scores, -1), v3).view({B, heads_, K, hd});
#endif
  auto merged_heads = out.transpose(1, 2).reshape({B, K, dim_});
  if (lora_.on()) return proj->forward(merged_heads) + lora_proj_delta(merged_heads, lora_);
  return proj->forward(merged_heads);
}

}  // namespace aim::model
