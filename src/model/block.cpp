#include "aim/model/block.h"

#include <torch/torch.h>

namespace aim::model {

torch::nn::LayerNorm make_layer_norm(int64_t dim, double eps) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(eps).elementwise_affine(true));
}

BlockImpl::BlockImpl(int64_t dim, int64_t heads, int64_t mlp_ratio, double eps) {
  norm_1 = register_module("norm_1", make_layer_norm(dim, eps));
  attn = register_module("attn", Attention(dim, heads));
  norm_2 = register_module("norm_2", make_layer_norm(dim, eps));
  mlp = register_module("mlp", Mlp(dim, mlp_ratio * dim));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x, const AttentionMask& mask) {
  auto h = x + attn->forward(norm_1->forward(x), mask);
  return h + mlp->forward(norm_2->forward(h));
}

MlpBlockImpl::MlpBlockImpl(int64_t dim, int64_t mlp_ratio, double eps, bool identity_attn) {
  if (identity_attn) norm_1 = register_module("norm_1", make_layer_norm(dim, eps));
  norm_2 = register_module("norm_2", make_layer_norm(dim, eps));
  mlp = register_module("mlp", Mlp(dim, mlp_ratio * dim));
}

torch::Tensor MlpBlockImpl::forward(const torch::Tensor& x) {
  auto h = norm_1 ? x + norm_1->forward(x) : x;
  return h + mlp->forward(norm_2->forward(h));
}

}  // namespace aim::model
