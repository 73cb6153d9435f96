#include "aim/model/aim_pretrain.h"

#include <torch/torch.h>

#include "aim/model/token_order.h"

namespace aim::model {

AimPretrainModelImpl::AimPretrainModelImpl(const ModelConfig& cfg) : cfg_(cfg) {
  cfg_.validate();
  preprocessor = register_module("preprocessor", Preprocessor(cfg_));
  trunk = register_module("trunk", Trunk(cfg_));
  pretrain_head = register_module("pretrain_head", PretrainHead(cfg_));
  if (cfg_.order != "raster") order_ = token_order(cfg_.order, cfg_.grid(), cfg_.order_seed);
}

PretrainOutput AimPretrainModelImpl::forward(const torch::Tensor& images, const torch::Tensor& prefix) {
  auto tokens = preprocessor->forward(images);
  torch::Tensor order;
  if (order_.defined()) {
    order = order_.to(tokens.device());
    tokens = tokens.index_select(1, order);
  }
  AttentionMask mask(prefix, cfg_.num_tokens(), cfg_.heads);
  PretrainOutput out;
  out.trunk_out = trunk->forward(tokens, mask).normed;
  out.pred = pretrain_head->forward(out.trunk_out, order);
  auto target = loss::patch_targets(images, cfg_.patch_size, cfg_.target);
  if (order.defined()) target = target.index_select(1, order);
  out.loss = loss::next_patch_loss(out.pred, target, prefix.to(out.pred.device()));
  return out;
}

}  // namespace aim::model
