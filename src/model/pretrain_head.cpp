#include "aim/model/pretrain_head.h"

#include <torch/torch.h>

#include "aim/model/activation_checkpoint.h"
#include "aim/model/block.h"
#include "aim/model/preprocessor.h"
#include "aim/model/sincos.h"

namespace aim::model {

PretrainHeadImpl::PretrainHeadImpl(const ModelConfig& cfg) {
  proj_in = register_module("proj_in", torch::nn::Linear(torch::nn::LinearOptions(cfg.width, cfg.head_width).bias(true)));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.head_blocks; ++i)
    blocks->push_back(MlpBlock(cfg.head_width, cfg.head_mlp_ratio, cfg.norm_eps, cfg.head_identity_attn));
  norm = register_module("norm", make_layer_norm(cfg.head_width, cfg.norm_eps));
  proj_out = register_module("proj_out", torch::nn::Linear(torch::nn::LinearOptions(cfg.head_width, cfg.patch_dim()).bias(true)));
  pos_ = sincos_2d(cfg.grid(), cfg.head_width);
  torch::NoGradGuard no_grad;
  for (auto* lin : {&proj_in, &proj_out}) {
    torch::nn::init::xavier_uniform_((*lin)->weight);
    (*lin)->bias.zero_();
  }
}

torch::Tensor PretrainHeadImpl::forward(const torch::Tensor& x, const torch::Tensor& order) {
  auto h = proj_in->forward(x);
  const auto pos = cached_on(pos_, h);
  h = h + (order.defined() ? pos.index_select(0, order.to(pos.device())) : pos);
  return run(h);
}

torch::Tensor PretrainHeadImpl::forward_rows(const torch::Tensor& x, const torch::Tensor& positions,
                                             const torch::Tensor& order) {
  auto h = proj_in->forward(x);
  const auto pos = cached_on(pos_, h);
  auto patch = positions.to(pos.device());
  if (order.defined()) patch = order.to(pos.device()).index_select(0, patch);  // sequence -> raster patch
  return run(h + pos.index_select(0, patch));
}

torch::Tensor PretrainHeadImpl::run(torch::Tensor h) {
  for (size_t i = 0; i < blocks->size(); ++i) {
    if (checkpointing_) {
      auto block = blocks->ptr<MlpBlockImpl>(i);
      h = checkpoint([block](const torch::Tensor& t) { return block->forward(t); }, h);
    } else {
      h = blocks[i]->as<MlpBlockImpl>()->forward(h);
    }
  }
  return proj_out->forward(norm->forward(h));
}

}  // namespace aim::model
