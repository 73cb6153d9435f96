#include "aim/model/mlp.h"

#include <torch/torch.h>

namespace aim::model {

MlpImpl::MlpImpl(int64_t dim, int64_t hidden) {
  fc1 = register_module("fc1", torch::nn::Linear(torch::nn::LinearOptions(dim, hidden).bias(false)));
  fc2 = register_module("fc2", torch::nn::Linear(torch::nn::LinearOptions(hidden, dim).bias(false)));
  torch::NoGradGuard no_grad;
  torch::nn::init::xavier_uniform_(fc1->weight);
  torch::nn::init::xavier_uniform_(fc2->weight);
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  return fc2->forward(torch::gelu(fc1->forward(x)));
}

}  // namespace aim::model
