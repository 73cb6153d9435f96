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

PretrainOutput AimPretrainModelImpl::forward(const torch::Tensor& images, const torch::Tensor& prefix,
                                             HeadTokens head_tokens) {
  auto tokens = preprocessor->forward(images);
  torch::Tensor order;
  if (order_.defined()) {
    // The fixed order moves to the device once, not with a blocking copy every forward.
    if (order_.device() != tokens.device()) order_ = order_.to(tokens.device());
    order = order_;
    tokens = tokens.index_select(1, order);
  }
  const auto prefix_host = prefix.to(torch::kCPU);  // no-op for the usual CPU prefix
  AttentionMask mask(prefix_host, cfg_.num_tokens(), cfg_.heads);
  PretrainOutput out;
  out.trunk_out = trunk->forward(tokens, mask).normed;
  auto target = loss::patch_targets(images, cfg_.patch_size, cfg_.target);
  if (order.defined()) target = target.index_select(1, order);
  if (head_tokens == HeadTokens::kAll) {
    out.pred = pretrain_head->forward(out.trunk_out, order);
    out.loss = loss::next_patch_loss(out.pred, target, prefix_host.to(out.pred.device()));
    return out;
  }
  const int64_t K = cfg_.num_tokens();
  out.rows = loss::loss_rows(prefix_host, K);
  const auto device = out.trunk_out.device();
  // non_blocking only overlaps from pinned memory; a pageable source would block the host.
  auto rows = (device.is_cuda() ? out.rows.pin_memory() : out.rows).to(device, /*non_blocking=*/true);
  auto picked = out.trunk_out.reshape({-1, out.trunk_out.size(-1)}).index_select(0, rows);
  out.pred = pretrain_head->forward_rows(picked, rows.remainder(K), order);
  out.loss = loss::next_patch_loss_rows(out.pred, target, rows);
  return out;
}

}  // namespace aim::model
