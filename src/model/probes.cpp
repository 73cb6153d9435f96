#include "aim/model/probes.h"

#include <torch/torch.h>

#include <cmath>

namespace aim::model {
namespace {

torch::nn::BatchNorm1d make_probe_bn(int64_t dim) {
  return torch::nn::BatchNorm1d(torch::nn::BatchNorm1dOptions(dim).affine(false).eps(1e-6));
}

}  // namespace

AttentionPoolingProbeImpl::AttentionPoolingProbeImpl(int64_t dim, int64_t heads, int64_t classes)
    : dim_(dim), heads_(heads) {
  TORCH_CHECK(dim % heads == 0, "probe: width ", dim, " not divisible by heads ", heads);
  bn = register_module("bn", make_probe_bn(dim));
  cls_token = register_parameter("cls_token", torch::randn({1, 1, dim}) * 0.02);
  k = register_module("k", torch::nn::Linear(torch::nn::LinearOptions(dim, dim).bias(false)));
  v = register_module("v", torch::nn::Linear(torch::nn::LinearOptions(dim, dim).bias(false)));
  linear = register_module("linear", torch::nn::Linear(torch::nn::LinearOptions(dim, classes).bias(false)));
  torch::NoGradGuard no_grad;
  torch::nn::init::xavier_uniform_(k->weight);
  torch::nn::init::xavier_uniform_(v->weight);
  torch::nn::init::normal_(linear->weight, 0.0, 0.01);
}

torch::Tensor AttentionPoolingProbeImpl::pool(const torch::Tensor& features) {
  const auto B = features.size(0), N = features.size(1);
  const auto hd = dim_ / heads_;
  auto x = bn->forward(features.transpose(1, 2)).transpose(1, 2);  // stats over B x N
  auto q = cls_token.expand({B, 1, dim_}).reshape({B, 1, heads_, hd}).permute({0, 2, 1, 3});
  auto kk = k->forward(x).reshape({B, N, heads_, hd}).permute({0, 2, 1, 3});
  auto vv = v->forward(x).reshape({B, N, heads_, hd}).permute({0, 2, 1, 3});
  auto attn = torch::softmax(torch::matmul(q * (1.0 / std::sqrt(static_cast<double>(hd))), kk.transpose(-2, -1)), -1);
  return torch::matmul(attn, vv).transpose(1, 2).reshape({B, dim_});  // one query
}

torch::Tensor AttentionPoolingProbeImpl::forward(const torch::Tensor& features) {
  return linear->forward(pool(features));
}

LinearProbeImpl::LinearProbeImpl(int64_t dim, int64_t classes) {
  bn = register_module("bn", make_probe_bn(dim));
  linear = register_module("linear", torch::nn::Linear(torch::nn::LinearOptions(dim, classes).bias(true)));
  torch::NoGradGuard no_grad;
  torch::nn::init::normal_(linear->weight, 0.0, 0.01);
  linear->bias.zero_();
}

torch::Tensor LinearProbeImpl::forward(const torch::Tensor& features) {
  return linear->forward(bn->forward(features.mean(1)));
}

}  // namespace aim::model
