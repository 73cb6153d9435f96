#include "aim/loss/next_patch_loss.h"

#include <torch/torch.h>

#include <algorithm>

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

torch::Tensor patch_targets(const torch::Tensor& images, int64_t patch, TargetKind kind) {
  auto t = patchify(images.detach(), patch);
  t = t.to(accumulation_dtype(t));
  if (kind == TargetKind::kRawPixels) return t;
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

torch::Tensor loss_rows(const torch::Tensor& prefix, int64_t num_tokens) {
  TORCH_CHECK(prefix.dim() == 1, "loss_rows: prefix must be 1-D [B], got ", prefix.sizes());
  auto s = prefix.to(torch::kCPU, torch::kInt64).contiguous();
  const auto* sp = s.data_ptr<int64_t>();
  const int64_t B = s.numel(), K = num_tokens;
  int64_t m = 0;
  for (int64_t b = 0; b < B; ++b) {
    TORCH_CHECK(sp[b] >= 0 && sp[b] < K, "loss_rows: prefix ", sp[b], " outside [0, ", K, ")");
    m += K - std::max<int64_t>(sp[b], 1);
  }
  auto rows = torch::empty({m}, torch::kInt64);
  auto* out = rows.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = std::max<int64_t>(sp[b], 1) - 1; i <= K - 2; ++i) *out++ = b * K + i;
  return rows;
}

LossTerms next_patch_loss_rows(const torch::Tensor& pred_rows, const torch::Tensor& target,
                               const torch::Tensor& rows) {
  const auto dtype = accumulation_dtype(pred_rows);
  const auto D = target.size(-1);
  auto next = (rows + 1).to(target.device());
  auto t = target.reshape({-1, D}).index_select(0, next).to(dtype);
  auto err = (pred_rows.to(dtype) - t).pow(2).mean(-1);  // [M]
  LossTerms out;
  out.sum = err.sum();
  out.count = torch::full({}, static_cast<double>(rows.numel()), torch::TensorOptions().dtype(dtype).device(err.device()));
  out.mean = out.sum / out.count.clamp_min(1.0);
  return out;
}

}  // namespace aim::loss
