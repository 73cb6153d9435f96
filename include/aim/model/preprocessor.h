#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "aim/model/model_config.h"

namespace aim::model {

/// Conv2d(C -> d, kernel = stride = patch) with bias, then LayerNorm (spec §2).
/// State-dict names: proj.{weight,bias}, norm.{weight,bias}.
class PatchifierImpl : public torch::nn::Module {
 public:
  explicit PatchifierImpl(const ModelConfig& cfg);
  /// images [B, C, H, W] -> tokens [B, K, d] in raster order.
  torch::Tensor forward(const torch::Tensor& images);

  torch::nn::Conv2d proj{nullptr};
  torch::nn::LayerNorm norm{nullptr};
};
TORCH_MODULE(Patchifier);

/// Patch embedding plus the fixed 2-D sin-cos positions. The positions are not
/// parameters or state (the official checkpoints do not carry them), so they are kept
/// out of the state dict and rebuilt for whatever device the input lives on.
class PreprocessorImpl : public torch::nn::Module {
 public:
  explicit PreprocessorImpl(const ModelConfig& cfg);
  torch::Tensor forward(const torch::Tensor& images);

  Patchifier patchifier{nullptr};

 private:
  int64_t grid_, width_;
  torch::Tensor pos_;  // [1, K, d]
};
TORCH_MODULE(Preprocessor);

/// The fixed sin-cos table `cached` on the device and in the dtype of `like`. The move to the
/// device is stored back into `cached` (once); the dtype cast is per call and never stored,
/// so the float32 table survives a bf16 forward.
torch::Tensor cached_on(torch::Tensor& cached, const torch::Tensor& like);

}  // namespace aim::model
