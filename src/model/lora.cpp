#include "aim/model/lora.h"

#include <torch/torch.h>

#include <cmath>

#include "aim/error.h"

namespace aim::model {

LoraWeights add_lora(torch::nn::Linear& qkv, torch::nn::Linear& proj, const LoraSpec& spec) {
  const int64_t r = spec.rank, d = proj->weight.size(1);
  const auto opts = qkv->weight.options();
  LoraWeights w;
  w.scaling = spec.scaling();
  // loralib's names on the projections themselves (qkv.lora_A, not qkv_lora.A): the
  // official LoraAttention's state dict is this one.
  w.qkv_A = qkv->register_parameter("lora_A", torch::empty({2 * r, d}, opts));
  w.qkv_B = qkv->register_parameter("lora_B", torch::zeros({2 * d, r}, opts));
  w.proj_A = proj->register_parameter("lora_A", torch::empty({r, d}, opts));
  w.proj_B = proj->register_parameter("lora_B", torch::zeros({d, r}, opts));
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(w.qkv_A, std::sqrt(5.0));
  torch::nn::init::kaiming_uniform_(w.proj_A, std::sqrt(5.0));
  return w;
}

torch::Tensor lora_qkv_delta(const torch::Tensor& x, const LoraWeights& w) {
  // MergedLinear with two enabled slices: rows 0..r-1 of A feed the q block of B (its first d
  // rows), rows r..2r-1 the v block (its last d rows); the k slice gets nothing.
  const int64_t r = w.qkv_B.size(1), d = w.qkv_B.size(0) / 2;
  auto a = torch::nn::functional::linear(x, w.qkv_A) * w.scaling;  // [.., 2r]
  auto dq = torch::nn::functional::linear(a.narrow(-1, 0, r), w.qkv_B.narrow(0, 0, d));
  auto dv = torch::nn::functional::linear(a.narrow(-1, r, r), w.qkv_B.narrow(0, d, d));
  return torch::cat({dq, torch::zeros_like(dq), dv}, -1);
}

torch::Tensor lora_proj_delta(const torch::Tensor& x, const LoraWeights& w) {
  return torch::nn::functional::linear(torch::nn::functional::linear(x, w.proj_A), w.proj_B) * w.scaling;
}

torch::Tensor merged_qkv_weight(const torch::Tensor& qkv_weight, const LoraWeights& w) {
  torch::NoGradGuard no_grad;
  const int64_t r = w.qkv_B.size(1), d = w.qkv_B.size(0) / 2;
  auto out = qkv_weight.detach().clone();
  out.narrow(0, 0, d) += w.scaling * w.qkv_B.narrow(0, 0, d).matmul(w.qkv_A.narrow(0, 0, r));
  out.narrow(0, 2 * d, d) += w.scaling * w.qkv_B.narrow(0, d, d).matmul(w.qkv_A.narrow(0, r, r));
  return out;
}

torch::Tensor merged_proj_weight(const torch::Tensor& proj_weight, const LoraWeights& w) {
  torch::NoGradGuard no_grad;
  return proj_weight.detach() + w.scaling * w.proj_B.matmul(w.proj_A);
}

void check_lora_rank(int64_t rank, int64_t width, const std::string& key) {
  if (rank < 0) throw Error(key + ": must be >= 0 (0 = off; the paper uses 8), got " + std::to_string(rank));
  if (rank > width)
    throw Error(key + ": rank " + std::to_string(rank) + " is larger than the trunk width " + std::to_string(width) +
                " (a LoRA update has rank at most the width; the paper uses 8)");
}

int64_t lora_parameters(const ModelConfig& cfg, int64_t rank) { return 6 * rank * cfg.width * cfg.depth; }

}  // namespace aim::model
