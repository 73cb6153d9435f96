#include "aim/model/preprocessor.h"

#include <torch/torch.h>

#include "aim/model/block.h"
#include "aim/model/sincos.h"

namespace aim::model {

PatchifierImpl::PatchifierImpl(const ModelConfig& cfg) {
  proj = register_module(
      "proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(cfg.channels, cfg.width, cfg.patch_size)
                                    .stride(cfg.patch_size)
                                    .bias(true)));
  norm = register_module("norm", make_layer_norm(cfg.width, cfg.norm_eps));
  torch::NoGradGuard no_grad;
  // Xavier on the weight seen as a (d, C*P*P) matrix, as for a Linear (MAE, spec §2).
  auto w = proj->weight.view({cfg.width, -1});
  torch::nn::init::xavier_uniform_(w);
  proj->bias.zero_();
}

torch::Tensor PatchifierImpl::forward(const torch::Tensor& images) {
  auto x = proj->forward(images).flatten(2).transpose(1, 2);  // [B, K, d]
  return norm->forward(x);
}

PreprocessorImpl::PreprocessorImpl(const ModelConfig& cfg) : grid_(cfg.grid()), width_(cfg.width) {
  patchifier = register_module("patchifier", Patchifier(cfg));
  pos_ = sincos_2d(grid_, width_).unsqueeze(0);
}

torch::Tensor PreprocessorImpl::forward(const torch::Tensor& images) {
  auto x = patchifier->forward(images);
  return x + cached_on(pos_, x);
}

torch::Tensor cached_on(torch::Tensor& cached, const torch::Tensor& like) {
  // Only the device move is stored: the table stays float32, so a bf16 forward under
  // autocast does not round it for every later float32 forward (validation, export, probes).
  // The per-call cast of a [K, d] table is tiny next to the activations it is added to.
  if (cached.device() != like.device()) cached = cached.to(like.device());
  return cached.scalar_type() == like.scalar_type() ? cached : cached.to(like.scalar_type());
}

}  // namespace aim::model
