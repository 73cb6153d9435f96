#include "aim/model/aim_encoder.h"

#include <torch/torch.h>

#include "aim/model/layer_selection.h"

namespace aim::model {

AimEncoderImpl::AimEncoderImpl(const ModelConfig& cfg) : cfg_(cfg) {
  cfg_.validate();
  preprocessor = register_module("preprocessor", Preprocessor(cfg_));
  trunk = register_module("trunk", Trunk(cfg_));
}

torch::Tensor AimEncoderImpl::features(const torch::Tensor& images, const std::vector<int64_t>& blocks) {
  auto out = trunk->forward(preprocessor->forward(images), AttentionMask(), blocks, /*normed_output=*/false);
  return average_blocks(out.blocks);
}

torch::Tensor AimEncoderImpl::forward(const torch::Tensor& images) {
  return trunk->forward(preprocessor->forward(images), AttentionMask()).normed;
}

}  // namespace aim::model
