// The device-side normalisation of uint8 batches (declared in loader.h, beside the Batch it
// applies to): the cast to float happens after the copy, so 4x fewer bytes cross the link.
#include <torch/torch.h>

#include "aim/data/loader.h"

namespace aim::data {

std::vector<double> channel_mean(int64_t c) {
  return c == 1 ? std::vector<double>{0.449} : std::vector<double>{0.485, 0.456, 0.406};
}
std::vector<double> channel_std(int64_t c) {
  return c == 1 ? std::vector<double>{0.226} : std::vector<double>{0.229, 0.224, 0.225};
}

ChannelAffine channel_affine(int64_t C, const torch::Device& device, const std::vector<double>& mean,
                             const std::vector<double>& std) {
  std::vector<float> scale(C), shift(C);
  for (int64_t c = 0; c < C; ++c) {
    // One channel (gray model) uses the average statistics.
    double mu = 0, sd = 0;
    if (static_cast<int64_t>(mean.size()) == C) {
      mu = mean[c];
      sd = std[c];
    } else {
      for (size_t k = 0; k < mean.size(); ++k) {
        mu += mean[k] / mean.size();
        sd += std[k] / std.size();
      }
    }
    scale[c] = static_cast<float>(1.0 / (255.0 * sd));
    shift[c] = static_cast<float>(-mu / sd);
  }
  return {torch::tensor(scale).view({1, C, 1, 1}).to(device), torch::tensor(shift).view({1, C, 1, 1}).to(device)};
}

torch::Tensor normalize_images(const torch::Tensor& u8, const ChannelAffine& affine, torch::ScalarType dtype) {
  TORCH_CHECK(u8.dim() == 4, "normalize_images expects [B, C, H, W]");
  TORCH_CHECK(u8.size(1) == affine.scale.size(1), "normalize_images: ", u8.size(1), " channels, the affine map has ",
              affine.scale.size(1));
  auto x = u8.to(affine.scale.device(), /*non_blocking=*/u8.is_pinned()).to(torch::kFloat);
  return x.mul_(affine.scale).add_(affine.shift).to(dtype);
}

torch::Tensor normalize_images(const torch::Tensor& u8, const torch::Device& device,
                               const std::vector<double>& mean, const std::vector<double>& std,
                               torch::ScalarType dtype) {
  TORCH_CHECK(u8.dim() == 4, "normalize_images expects [B, C, H, W]");
  return normalize_images(u8, channel_affine(u8.size(1), device, mean, std), dtype);
}

}  // namespace aim::data
