#pragma once
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/optim/adamw.h>

namespace aim::optim {

struct OptimConfig {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.05;
  double warmup = 0.025;    // fraction of all iterations spent in linear warmup
  double warmup_start = 1e-6;
  double grad_clip = 1.0;   // global L2 norm; <= 0 disables clipping
};

/// Weight decay applies to weight matrices only: not to biases, norm parameters, position
/// embeddings or learned queries (spec §7). The rule is by name and rank, so it holds for
/// every module we build: decay iff ndim >= 2 and the name has no "norm", "pos" or "token".
bool decays(const std::string& name, const torch::Tensor& param);

/// AdamW with two parameter groups: [0] decayed, [1] not decayed.
std::unique_ptr<torch::optim::AdamW> make_adamw(const torch::nn::Module& module, const OptimConfig& cfg);
/// The same AdamW over given tensors, already split into the weight-decay group and the rest
/// (train.sharding=optimizer: this rank's pieces of the parameters).
std::unique_ptr<torch::optim::AdamW> make_adamw(std::vector<torch::Tensor> decay, std::vector<torch::Tensor> no_decay,
                                                const OptimConfig& cfg);

/// Learning rate at iteration `step` of `total` (spec §7): linear from warmup_start to lr
/// over the first warmup*total iterations, then cosine from lr to 0 at `total`.
double learning_rate(int64_t step, int64_t total, const OptimConfig& cfg);

/// Drops gradients (set to none rather than zeroed: no memset, and the first backward
/// writes instead of accumulating). LibTorch 1.13's zero_grad() cannot do this.
void clear_gradients(torch::optim::Optimizer& opt);

/// Sets every group's lr.
void set_learning_rate(torch::optim::Optimizer& opt, double lr);

}  // namespace aim::optim
