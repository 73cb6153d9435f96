#include "aim/loss/next_patch_loss.h"

#include <torch/torch.h>

namespace aim::loss {
namespace {

// Losses are reduced in float32 at least (bf16/fp16 activations under autocast), and in
// float64 when the model runs in float64 (parity tests).
torch::Dtype accumulation_dtype(const torch::Tensor& t) {
  return t.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}

}  // namespace

torch::Tensor patchify(const torch::Tensor& images, int64_t patch) {
  const auto B = images.size(0), C = images.size(1), H = images.size(2), W = images.size(3);
  TORCH_CHECK(H % patch == 0 && W % patch == 0, "patchify: image ", H, "x", W,
              " not divisible by patch ", patch);
  const auto gh = H / patch, gw = W / patch;
  return images.reshape({B, C, gh, patch, gw, patch})
      .permute({0, 2, 4, 3, 5, 1})  // [B, gh, gw, p, q, C]
      .reshape({B, gh * gw, patch * patch * C});
}

torch::Tensor unpatchify(const torch::Tensor& patches, int64_t patch, int64_t channels, int64_t grid) {
  const auto B = patches.size(0);
  return patches.reshape({B, grid, grid, patch, patch, channels})
      .permute({0, 5, 1, 3, 2, 4})  // [B, C, gh, p, gw, q]
      .reshape({B, channels, grid * patch, grid * patch});
}

torch::Tensor patch_targets(const torch::Tensor& images, int64_t patch, model::TargetKind kind) {
  auto t = patchify(images.detach(), patch);
  t = t.to(accumulation_dtype(t));
  if (kind == model::TargetKind::kRawPixels) return t;
  auto mean = t.mean(-1, /*keepdim=*/true);
  auto var = t.var(-1, /*unbiased=*/true, /*keepdim=*/true);
  return (t - mean) / (var + 1e-6).sqrt();
}

LossTerms next_patch_loss(const torch::Tensor& pred, const torch::Tensor& target,
                          const torch::Tensor& prefix) {
  const auto K = pred.size(1);
  const auto dtype = accumulation_dtype(pred);
  auto err = (pred.slice(1, 0, K - 1).to(dtype) - target.slice(1, 1, K).to(dtype)).pow(2).mean(-1);  // [B, K-1]
  auto j = torch::arange(1, K, torch::TensorOptions().dtype(torch::kInt64).device(pred.device()));
  auto keep = (j.view({1, -1}) >= prefix.view({-1, 1})).to(dtype);
  LossTerms out;
  out.sum = (err * keep).sum();
  out.count = keep.sum();
  out.mean = out.sum / out.count.clamp_min(1.0);
  return out;
}

}  // namespace aim::loss
